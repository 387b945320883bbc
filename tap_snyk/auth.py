"""Authentication: which of the three ways a config names, and the Authorization of every request.

- An API token (`api_token`), sent as `token <api_token>` (or `bearer …`, per `auth_scheme`).
- An OAuth 2.0 service account with a client secret (`client_id`, `client_secret`).
- An OAuth 2.0 service account with a private key (`client_id`, `private_key`,
  `private_key_id`): each token request carries a fresh client assertion, a JWT signed RS256
  (private_key_jwt).

OAuth access tokens come from `{api origin}/oauth2/token`; one `OAuthCredentials` serves every
stream and every request in flight: it renews the token before it expires and once after a 401,
one renewal at a time. The SDK's `OAuthAuthenticator` does not fit: it asks for tokens outside the
streams' retries and rate limit, renews with no margin and never after a 401, and its
`OAuthJWTAuthenticator` sends the jwt-bearer grant rather than Snyk's client assertion.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from requests import PreparedRequest
from requests.auth import AuthBase

#: Snyk for Government (SNYK-GOV-01) takes OAuth only: API tokens are not available there.
SNYK_FOR_GOVERNMENT = "https://api.snykgov.io"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 (a path, not a password)
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: A client assertion is good for this many seconds: one token request, retries included.
ASSERTION_LIFETIME = 300
#: An access token is renewed this long before it expires, or a quarter of its life if shorter.
RENEWAL_MARGIN = 60.0
#: Snyk's default lifetime, assumed when the token endpoint does not say (`expires_in`).
DEFAULT_TOKEN_LIFETIME = 3600.0
WAYS_TO_AUTHENTICATE = (
    "`api_token`, or `client_id` + `client_secret`, or `client_id` + `private_key` + "
    "`private_key_id`"
)
_PEM = re.compile(r"\s*(-----BEGIN ([A-Z0-9 ]+)-----)(.*?)(-----END \2-----)\s*", re.DOTALL)
_JWT_LIKE = re.compile(r"[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")


@dataclass(frozen=True)
class ApiToken:
    """A personal or service-account API token, sent as it is."""

    token: str = field(repr=False)
    scheme: str = "token"

    def describe(self) -> str:
        """The way of authenticating, in a few words."""
        return f"an API token (`auth_scheme` {self.scheme})"


@dataclass(frozen=True)
class ClientSecret:
    """An OAuth 2.0 service account that proves itself with its client secret."""

    client_id: str
    client_secret: str = field(repr=False)
    #: The settings that make this way, for messages.
    settings: ClassVar[str] = "`client_id` and `client_secret`"

    def describe(self) -> str:
        """The way of authenticating, in a few words."""
        return f"OAuth 2.0 client credentials with a client secret (`client_id` {self.client_id})"

    def token_form(self, token_url: str) -> dict[str, str]:
        """The body of a token request."""
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }

    def secrets(self) -> tuple[str, ...]:
        """What must never be shown."""
        return (self.client_secret,)


@dataclass(frozen=True)
class PrivateKeyJwt:
    """An OAuth 2.0 service account that proves itself with a JWT signed by its private key."""

    client_id: str
    key_id: str
    private_key: RSAPrivateKey = field(repr=False)
    settings: ClassVar[str] = "`client_id`, `private_key` and `private_key_id`"

    def describe(self) -> str:
        """The way of authenticating, in a few words."""
        return (
            f"OAuth 2.0 client credentials with a private key JWT (`client_id` {self.client_id}, "
            f"`private_key_id` {self.key_id})"
        )

    def token_form(self, token_url: str) -> dict[str, str]:
        """The body of a token request, with a client assertion of its own."""
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.assertion(token_url),
        }

    def assertion(self, token_url: str, *, now: float | None = None) -> str:
        """A client assertion: RS256, `kid`, `iss` = `sub` = client id, `aud` = the token URL."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "jti": uuid.uuid4().hex,  # unique: a token endpoint may refuse a replayed assertion
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.key_id})

    def secrets(self) -> tuple[str, ...]:
        """What must never be shown (assertions are told by their form: see `redacted`)."""
        return ()


OAuthClient = ClientSecret | PrivateKeyJwt
AuthMethod = ApiToken | OAuthClient


def auth_method(config: Mapping[str, Any], api_origin: str, errors: list[str]) -> AuthMethod | None:
    """The one way of authenticating the config names; an error for each mistake otherwise.

    No message quotes a secret: that is the point of checking them here.
    """
    given = {
        name: value
        for name in ("api_token", "client_id", "client_secret", "private_key", "private_key_id")
        if (value := config.get(name)) not in (None, "")
    }
    oauth = sorted(given.keys() - {"api_token"})
    if "api_token" in given and api_origin == SNYK_FOR_GOVERNMENT:
        errors.append(
            f"`api_token` cannot be used with Snyk for Government (`api_url` {api_origin}): it "
            "takes OAuth only. Create a service account with OAuth 2.0 client credentials and set "
            "`client_id` with `client_secret` (or `private_key` and `private_key_id`) instead."
        )
        return None
    if "api_token" in given and oauth:
        errors.append(
            f"Both `api_token` and {', '.join(f'`{name}`' for name in oauth)} are set: "
            f"authenticate one way only ({WAYS_TO_AUTHENTICATE}); unset the others."
        )
        return None
    if not given:
        errors.append(
            "`api_token` is not set, nor an OAuth service account: set "
            f"{WAYS_TO_AUTHENTICATE}, in the tap's config (in Meltano: `meltano config set "
            "tap-snyk <setting>`) or in the environment (TAP_SNYK_API_TOKEN, TAP_SNYK_CLIENT_ID, "
            "TAP_SNYK_CLIENT_SECRET, …)."
        )
        return None
    if "api_token" in given:
        token = _clean(given["api_token"], "api_token", errors)
        scheme = str(config.get("auth_scheme") or "token")
        return ApiToken(token, scheme) if token else None
    return _oauth_client(given, errors)


def _oauth_client(given: Mapping[str, Any], errors: list[str]) -> OAuthClient | None:
    client_id = _clean(given.get("client_id"), "client_id", errors, required=True)
    if "client_secret" in given and ("private_key" in given or "private_key_id" in given):
        errors.append(
            "Both `client_secret` and `private_key`/`private_key_id` are set: a service account "
            "authenticates with one of them; unset the other."
        )
        return None
    if "client_secret" in given:
        secret = _clean(given["client_secret"], "client_secret", errors)
        return ClientSecret(client_id, secret) if client_id and secret else None
    if "private_key" not in given or "private_key_id" not in given:
        if "private_key" in given:
            missing = "`private_key_id` is not set"
        elif "private_key_id" in given:
            missing = "`private_key` is not set"
        else:
            missing = "`client_secret` is not set"
        errors.append(
            f"{missing}: an OAuth service account needs `client_id` and either "
            "`client_secret`, or `private_key` (PEM) and `private_key_id` (the key's id, `kid`, "
            "on the service account's JWKS)."
        )
        return None
    key = _private_key(given["private_key"], errors)
    key_id = _clean(given["private_key_id"], "private_key_id", errors)
    return PrivateKeyJwt(client_id, key_id, key) if client_id and key_id and key else None


def _clean(value: object, setting: str, errors: list[str], *, required: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        if required:
            errors.append(f"`{setting}` is not set: the OAuth service account's client id.")
        elif value not in (None, ""):
            errors.append(f"`{setting}` must be a string.")
        return ""
    if any(character.isspace() or not character.isprintable() for character in value):
        errors.append(
            f"`{setting}` holds spaces, line breaks or other control characters (a file saved "
            "with Windows line endings?): set it to the value alone."
        )
        return ""
    return value


def _private_key(value: object, errors: list[str]) -> RSAPrivateKey | None:
    """The RSA private key of a PEM text; the key is never quoted in a message."""
    text = pem_text(value) if isinstance(value, str) else ""
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:  # the PEM is encrypted
        errors.append(
            "`private_key` is encrypted with a passphrase: give the unencrypted PEM "
            "(e.g. `openssl pkey -in key.pem -out plain.pem`), kept out of git."
        )
        return None
    except (ValueError, UnsupportedAlgorithm):
        errors.append(
            "`private_key` is not a PEM private key: give the key's text itself, from "
            "`-----BEGIN PRIVATE KEY-----` to `-----END PRIVATE KEY-----` (not a file path; "
            "newlines may be written as \\n)."
        )
        return None
    if not isinstance(key, RSAPrivateKey):
        errors.append(
            "`private_key` is not an RSA key: Snyk verifies client assertions signed RS256, "
            "so the service account's key pair must be RSA (e.g. `openssl genrsa 2048`)."
        )
        return None
    return key


def pem_text(value: str) -> str:
    r"""A PEM as its parser wants it, from the forms env files give it.

    Newlines written as `\n`, or lost (the whole key on one line), are put back: base64 holds
    neither backslashes nor spaces, so this cannot change a key, only its layout.
    """
    text = value.replace("\\r", "").replace("\\n", "\n")
    match = _PEM.fullmatch(text)
    if match is None or ":" in match.group(3):  # no PEM, or one with headers (encrypted)
        return text
    body = re.sub(r"\s+", "", match.group(3))
    lines = [body[start : start + 64] for start in range(0, len(body), 64)]
    return "\n".join([match.group(1), *lines, match.group(4)]) + "\n"


def redacted(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text from a server, without any secret of ours nor anything shaped like a JWT in it."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[secret]")
    return _JWT_LIKE.sub("[token]", text)[:300]


def token_refusal_message(
    client: OAuthClient, token_url: str, status: int, error: str | None, description: str | None
) -> str:
    """One line for a token request Snyk refused (4xx): which settings to check, and how."""
    said = f" Snyk said: {redacted(description, client.secrets())}" if description else ""
    what = f"{status}{f' {error}' if error else ''}"
    origin = token_url.removesuffix(TOKEN_PATH)
    if status == 404:
        return (
            f"There is no OAuth token endpoint at {token_url} (404): check `api_url` ({origin}); "
            "it must be the Snyk API of your region." + said
        )
    if error in (None, "invalid_client", "unauthorized_client", "access_denied") or status == 401:
        if isinstance(client, ClientSecret):
            check = (
                "`client_secret` must be the current secret of that service account (a new "
                "secret replaces the old one)"
            )
        else:
            check = (
                "`private_key_id` must be the id (`kid`) of the public key on the service "
                "account's JWKS, and `private_key` its private key"
            )
        return (
            f"Snyk refused the OAuth client ({what}) at {token_url}: check {client.settings}. "
            f"`client_id` must be an OAuth 2.0 service account of the region of `api_url` "
            f"({origin}), and {check}." + said
        )
    return (
        f"Snyk refused to issue an access token ({what}) at {token_url}: check the service "
        f"account of `client_id` {client.client_id} in Snyk (Group or Org settings > Service "
        "accounts): it must use OAuth 2.0 client credentials." + said
    )


@dataclass(frozen=True)
class AccessToken:
    """An OAuth access token as the token endpoint issued it."""

    value: str = field(repr=False)
    lifetime: float

    @property
    def margin(self) -> float:
        """How long before its end the token is renewed: works for hour-long and 2-s tokens."""
        return min(RENEWAL_MARGIN, self.lifetime / 4)


class Credentials(AuthBase):
    """The Authorization of every request of a run: an API token, sent as it is."""

    #: The OAuth service account, when the run authenticates as one.
    client_id: str | None = None

    def __init__(self, method: ApiToken) -> None:
        self.method = method

    def describe(self) -> str:
        """The way of authenticating, in a few words."""
        return self.method.describe()

    def obtain(self) -> str | None:
        """Obtain what requests need (an OAuth access token) now; say what, if anything."""
        return None

    def authorization(self) -> str:
        """The value of the Authorization header."""
        return f"{self.method.scheme} {self.method.token}"

    def renew_after_rejection(self, rejected: str | None) -> bool:
        """After a 401: whether the request may go again (with another token); never, here."""
        return False

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        """Authorize a request, with the current token (renewing it if due)."""
        request.headers["Authorization"] = self.authorization()
        return request


class OAuthCredentials(Credentials):
    """OAuth access tokens for a service account, one at a time for every stream and thread.

    A token is renewed `AccessToken.margin` before it expires, and once after a 401 that answered
    it; the threads that need one meanwhile wait and use the new one.
    """

    def __init__(
        self,
        client: OAuthClient,
        request_token: Callable[[], AccessToken],
        *,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.client = client
        self.client_id = client.client_id
        self._request_token = request_token
        self._clock = clock
        self._logger = logger or logging.getLogger(__name__)
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._renew_at = 0.0
        self.tokens_obtained = 0

    def describe(self) -> str:
        """The way of authenticating, in a few words."""
        return self.client.describe()

    def obtain(self) -> str:
        """Ask for an access token now, before any REST request; say so."""
        with self._lock:
            token = self._renew()
        return f"access token obtained, valid for {token.lifetime:g} s"

    def authorization(self) -> str:
        """`bearer <access token>`, renewed first when it is due."""
        token = self._token
        if token is None or self._clock() >= self._renew_at:
            with self._lock:  # one renewal at a time; whoever waited finds the new token
                token = self._token
                if token is None or self._clock() >= self._renew_at:
                    token = self._renew()
        return f"bearer {token.value}"

    def renew_after_rejection(self, rejected: str | None) -> bool:
        """After a 401: renew the token it answered, unless another thread already did."""
        with self._lock:
            if self._token is None or f"bearer {self._token.value}" == rejected:
                self._logger.warning(
                    "Snyk rejected the access token before it expired (401): asking for a new one."
                )
                self._renew()
        return True

    def _renew(self) -> AccessToken:
        asked = self._clock()  # the lifetime counts from the question: the safe side
        token = self._request_token()
        self._token, self._renew_at = token, asked + token.lifetime - token.margin
        self.tokens_obtained += 1
        self._logger.log(
            logging.INFO if self.tokens_obtained == 1 else logging.DEBUG,
            "Obtained an OAuth access token for `client_id` %s, valid for %g s.",
            self.client_id,
            token.lifetime,
        )
        return token

"""OAuth 2.0 service accounts: the token endpoint `POST /oauth2/token` and what it knows.

`TokenServer` issues short-lived access tokens (grant client_credentials) to registered service
accounts (`OAuthClient`): by client secret, or by a client assertion (private_key_jwt) it verifies
as an authorization server would, with the account's public key. It answers in OAuth's own error
format (`{"error", "error_description"}`), not JSON:API.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

import jwt

from fake_snyk.data import uuid_for
from fake_snyk.jsonapi import Response

TOKEN_PATH = "/oauth2/token"  # noqa: S105 (a path, not a password)
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The longest `exp` ahead of now that the fake accepts in a client assertion ("a few minutes").
MAX_ASSERTION_LIFETIME = 600


@dataclass(frozen=True)
class OAuthClient:
    """A service account with OAuth 2.0 client credentials: a client secret, or a public key.

    `public_key` is a PEM; `key_id` its id (`kid`) on the account's JWKS.
    """

    client_id: str
    secret: str | None = None
    public_key: str | None = None
    key_id: str | None = None


def _lifetime(token_lifetime: object) -> float:
    """How long an access token lives, whatever `expires_in` says (a test may send odd ones)."""
    try:
        return float(token_lifetime)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 3599.0


class OAuthError(Exception):
    """An OAuth error answer of the token endpoint: `{"error", "error_description"}`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def response(self) -> Response:
        """The error as the token endpoint answers it."""
        body = json.dumps({"error": self.error, "error_description": self.description}).encode()
        return Response(self.status, body, {"Content-Type": "application/json"})


class TokenServer:
    """The token endpoint: the service accounts it knows and the access tokens it issued."""

    def __init__(self) -> None:
        self.clients: dict[str, OAuthClient] = {}
        self.lifetime: Any = 3599  # sent as `expires_in` as it is
        self.issued: list[str] = []  # every access token issued
        self._expiries: dict[str, float] = {}  # access token -> when it expires (monotonic)
        self._assertion_ids: set[str] = set()
        self._lock = threading.Lock()

    def answer(self, method: str, headers: Message, body: bytes, audience: str) -> Response:
        """The answer to a request of the token endpoint; `audience` is the endpoint's URL."""
        try:
            return self._issue(method, headers, body, audience)
        except OAuthError as error:
            return error.response()

    def expires_at(self, access_token: str) -> float | None:
        """When an access token issued here expires (time.monotonic()); None: not issued here."""
        with self._lock:
            return self._expiries.get(access_token)

    def revoke(self) -> int:
        """Revoke every access token issued so far; return how many were live."""
        with self._lock:
            now = time.monotonic()
            live = sum(expires > now for expires in self._expiries.values())
            self._expiries.clear()
            return live

    def _issue(self, method: str, headers: Message, body: bytes, audience: str) -> Response:
        """`POST /oauth2/token`, grant client_credentials, as Snyk's OAuth 2.0 service accounts."""
        if method != "POST":
            raise OAuthError(400, "invalid_request", "the token endpoint takes POST only")
        if (headers.get("Content-Type") or "").split(";")[0].strip() != (
            "application/x-www-form-urlencoded"
        ):
            raise OAuthError(400, "invalid_request", "send the form x-www-form-urlencoded")
        values = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if any(len(value) > 1 for value in values.values()):
            raise OAuthError(400, "invalid_request", "a parameter was given more than once")
        form = {name: value[0] for name, value in values.items()}
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "only client_credentials is served")
        client: OAuthClient | None
        if "client_assertion" in form or "client_assertion_type" in form:
            client = self._client_of_assertion(form, audience)
        else:
            client = self.clients.get(form.get("client_id", ""))
            given = form.get("client_secret", "")
            if (
                client is None
                or client.secret is None
                or not hmac.compare_digest(client.secret.encode(), given.encode())
            ):
                raise OAuthError(401, "invalid_client", "client authentication failed")
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._expiries[access_token] = time.monotonic() + _lifetime(self.lifetime)
            self.issued.append(access_token)
        document = {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": self.lifetime,
            "scope": "",
            "bot_id": uuid_for(f"bot-{client.client_id}"),
        }
        return Response(200, json.dumps(document).encode(), {"Content-Type": "application/json"})

    def _client_of_assertion(self, form: Mapping[str, str], audience: str) -> OAuthClient:
        """The client a private_key_jwt assertion proves, verified as an authorization server."""
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise OAuthError(
                400, "invalid_request", f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
            )
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claimed = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise OAuthError(
                401, "invalid_client", f"client_assertion is not a JWT: {error}"
            ) from None
        client = self.clients.get(str(claimed.get("iss")))
        if client is None or client.public_key is None:
            raise OAuthError(401, "invalid_client", "unknown client (iss)")
        if header.get("kid") != client.key_id:
            raise OAuthError(401, "invalid_client", "no key with this kid on the client's JWKS")
        if form.get("client_id", client.client_id) != client.client_id:
            raise OAuthError(401, "invalid_client", "client_id differs from the assertion's iss")
        try:
            claims = jwt.decode(
                assertion,
                client.public_key,
                algorithms=["RS256"],
                audience=audience,
                issuer=client.client_id,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            )
        except jwt.PyJWTError as error:
            raise OAuthError(401, "invalid_client", f"client_assertion refused: {error}") from None
        if claims["sub"] != client.client_id:
            raise OAuthError(401, "invalid_client", "sub must be the client id")
        if claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME:
            raise OAuthError(401, "invalid_client", "exp is too far ahead: keep it short")
        with self._lock:
            if claims["jti"] in self._assertion_ids:
                raise OAuthError(401, "invalid_client", "this assertion (jti) was used before")
            self._assertion_ids.add(claims["jti"])
        return client

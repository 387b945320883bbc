"""The ways to authenticate: exactly one per config, checked before any request, and the shared
credentials object: one renewal at a time, a margin that suits hour-long and 2-second tokens.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tap_snyk.auth import (
    AccessToken,
    ApiToken,
    ClientSecret,
    Credentials,
    OAuthCredentials,
    PrivateKeyJwt,
    pem_text,
    redacted,
)
from tap_snyk.settings import SettingsError, SnykSettings
from tests.conftest import ORG_A, KeyPair

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
GOV = "https://api.snykgov.io"


def auth(**config: object) -> object:
    return SnykSettings.from_config({"org_ids": [ORG_A], **config}, now=NOW).auth


def errors(**config: object) -> str:
    with pytest.raises(SettingsError) as raised:
        SnykSettings.from_config({"org_ids": [ORG_A], **config}, now=NOW)
    return "\n".join(raised.value.errors)


def test_an_api_token_is_one_way() -> None:
    assert auth(api_token="t") == ApiToken("t", "token")
    assert auth(api_token="t", auth_scheme="bearer") == ApiToken("t", "bearer")


def test_a_client_id_with_a_secret_is_another() -> None:
    assert auth(client_id="c", client_secret="s") == ClientSecret("c", "s")


def test_a_client_id_with_a_private_key_and_its_id_is_the_third(key_pair: KeyPair) -> None:
    method = auth(client_id="c", private_key=key_pair.private_pem, private_key_id="k")
    assert isinstance(method, PrivateKeyJwt)
    assert (method.client_id, method.key_id) == ("c", "k")


def test_no_credentials_at_all_names_the_three_ways() -> None:
    message = errors()
    assert "`api_token`, or `client_id` + `client_secret`, or `client_id` + `private_key`" in (
        message
    )


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (
            {"api_token": "t", "client_id": "c", "client_secret": "s"},
            "`client_id`, `client_secret`",
        ),
        ({"api_token": "t", "private_key_id": "k"}, "`private_key_id` are set"),
        ({"client_id": "c", "client_secret": "s", "private_key_id": "k"}, "Both `client_secret`"),
        ({"client_secret": "s"}, "`client_id` is not set"),
        ({"client_id": "c"}, "`client_secret` is not set"),
        ({"client_id": "c", "private_key_id": "k"}, "`private_key` is not set"),
    ],
)
def test_anything_but_exactly_one_way_is_a_setting_error_naming_the_settings(
    config: dict, named: str
) -> None:
    assert named in errors(**config)


def test_the_private_key_needs_its_key_id(key_pair: KeyPair) -> None:
    assert "`private_key_id` is not set" in errors(client_id="c", private_key=key_pair.private_pem)


def test_snyk_for_government_refuses_an_api_token_and_says_it_takes_oauth_only() -> None:
    message = errors(api_token="t", api_url=GOV)
    assert "Snyk for Government" in message
    assert "OAuth only" in message
    assert "`client_id`" in message


def test_snyk_for_government_is_a_known_region_for_oauth() -> None:
    settings = SnykSettings.from_config(
        {"org_ids": [ORG_A], "api_url": f"{GOV}/rest", "client_id": "c", "client_secret": "s"},
        now=NOW,
    )
    assert settings.api_origin == GOV


@pytest.mark.parametrize(
    "value",
    [
        "/home/me/key.pem",
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ],
)
def test_a_private_key_that_does_not_parse_names_the_setting_without_quoting_it(
    value: str,
) -> None:
    message = errors(client_id="c", private_key=value, private_key_id="k")
    assert "`private_key` is not a PEM private key" in message
    assert value not in message


def test_an_encrypted_private_key_asks_for_the_plain_one(key_pair: KeyPair) -> None:
    key = serialization.load_pem_private_key(key_pair.private_pem.encode(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    message = errors(client_id="c", private_key=encrypted, private_key_id="k")
    assert "`private_key` is encrypted with a passphrase" in message


def test_an_ec_key_is_refused_because_snyk_wants_rs256() -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    message = errors(client_id="c", private_key=ec_pem, private_key_id="k")
    assert "`private_key` is not an RSA key" in message


@pytest.mark.parametrize(
    "layout",
    [
        lambda pem: pem,
        lambda pem: pem.replace("\n", "\\n"),  # an env file with escaped newlines
        lambda pem: pem.replace("\n", "\r\n"),  # Windows line endings
        lambda pem: pem.replace("\n", " "),  # newlines lost on the way
        lambda pem: f"  {pem}\n\n",
    ],
    ids=["pem", "escaped", "crlf", "one-line", "padded"],
)
def test_a_pem_from_an_env_file_is_read_whatever_its_newlines(key_pair: KeyPair, layout) -> None:
    method = auth(client_id="c", private_key=layout(key_pair.private_pem), private_key_id="k")
    assert isinstance(method, PrivateKeyJwt)
    assert pem_text(layout(key_pair.private_pem)).strip() == key_pair.private_pem.strip()


def test_no_secret_shows_in_the_settings_repr(key_pair: KeyPair) -> None:
    for config in (
        {"api_token": "sekret-token"},
        {"client_id": "c", "client_secret": "sekret-client-secret"},
        {"client_id": "c", "private_key": key_pair.private_pem, "private_key_id": "k"},
    ):
        shown = repr(SnykSettings.from_config({"org_ids": [ORG_A], **config}, now=NOW))
        assert "sekret" not in shown
        assert "PRIVATE KEY" not in shown


def test_the_assertion_is_rs256_with_kid_and_the_claims_snyk_asks_for(key_pair: KeyPair) -> None:
    method = auth(client_id="c", private_key=key_pair.private_pem, private_key_id="k")
    assert isinstance(method, PrivateKeyJwt)
    url = "https://api.snykgov.io/oauth2/token"
    first, second = method.token_form(url), method.token_form(url)
    header = jwt.get_unverified_header(first["client_assertion"])
    assert (header["alg"], header["kid"]) == ("RS256", "k")
    claims = [
        jwt.decode(
            form["client_assertion"], key_pair.public_pem, algorithms=["RS256"], audience=url
        )
        for form in (first, second)
    ]
    assert claims[0]["iss"] == claims[0]["sub"] == "c"
    assert claims[0]["jti"] != claims[1]["jti"]
    assert 0 < claims[0]["exp"] - time.time() <= 300


def test_the_renewal_margin_suits_hour_long_and_two_second_tokens() -> None:
    assert AccessToken("x", 3599).margin == 60
    assert AccessToken("x", 2).margin == 0.5


def test_a_server_message_is_shown_without_secrets_or_tokens() -> None:
    text = redacted("bad secret s3cret, token eyJhbGciOi.eyJzdWIiOiJj.c2lnbmF0dXJl", ("s3cret",))
    assert "s3cret" not in text
    assert "eyJ" not in text


class _TokenEndpoint:
    """Counts token requests; each takes a while, so that threads meet."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.issued: list[str] = []
        self._lock = threading.Lock()

    def __call__(self) -> AccessToken:
        time.sleep(0.2)
        with self._lock:
            self.issued.append(f"token-{len(self.issued) + 1}")
            return AccessToken(self.issued[-1], self.lifetime)


def test_threads_share_one_token_and_one_renewal_at_a_time() -> None:
    clock = [0.0]
    endpoint = _TokenEndpoint(lifetime=2)
    credentials = OAuthCredentials(ClientSecret("c", "s"), endpoint, clock=lambda: clock[0])
    seen: list[str] = []

    def request() -> None:
        seen.append(credentials.authorization())

    def all_at_once() -> None:
        threads = [threading.Thread(target=request) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    all_at_once()
    assert endpoint.issued == ["token-1"]
    clock[0] = 1.4  # before the margin: the same token
    all_at_once()
    assert endpoint.issued == ["token-1"]
    clock[0] = 1.6  # inside the margin (2 s - 0.5 s): renewed once, for everyone
    all_at_once()
    assert endpoint.issued == ["token-1", "token-2"]
    assert seen == ["bearer token-1"] * 16 + ["bearer token-2"] * 8


def test_a_401_renews_the_token_it_answered_once_however_many_threads_saw_it() -> None:
    endpoint = _TokenEndpoint(lifetime=3600)
    credentials = OAuthCredentials(ClientSecret("c", "s"), endpoint)
    rejected = credentials.authorization()
    threads = [
        threading.Thread(target=credentials.renew_after_rejection, args=(rejected,))
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert endpoint.issued == ["token-1", "token-2"]
    assert credentials.authorization() == "bearer token-2"


def test_an_api_token_goes_as_it_is_and_is_never_renewed() -> None:
    credentials = Credentials(ApiToken("t", "bearer"))
    assert credentials.authorization() == "bearer t"
    assert credentials.renew_after_rejection("bearer t") is False

"""Secrets (API token, OAuth client secret, private key, assertions, access tokens) stay secret;
the token goes only to `api_url`; what Snyk sends is only ever data.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from fake_snyk import FakeSnyk, Fault, make_events
from tap_snyk.tap import TapSnyk
from tests.conftest import ORG_A, KeyPair, run_cli, run_tap, tap_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SECRET = "snyk-secret-token-4f9d2c"


@pytest.fixture
def secret_api(snyk_api: FakeSnyk) -> FakeSnyk:
    snyk_api.tokens.add(SECRET)
    snyk_api.add_org_events(ORG_A, make_events(30, start=NOW - timedelta(hours=3), org_id=ORG_A))
    return snyk_api


#: Each way of running the tap whose output a secret must stay out of.
EVERY_COMMAND = pytest.mark.parametrize(
    ("case", "args"),
    [
        ("sync", ()),
        ("connection check", ("--test",)),
        ("discover", ("--discover",)),
        ("about", ("--about", "--format=json")),
    ],
)


def run_cli_debug(tmp_path: Path, config: dict, *args: str) -> str:
    """Everything the tap prints, at the most talkative log level."""
    result = run_cli(
        tmp_path, config, *args, env={"LOGLEVEL": "DEBUG", "TAP_SNYK_LOGLEVEL": "DEBUG"}
    )
    return result.stdout + result.stderr


@EVERY_COMMAND
def test_the_token_appears_in_no_output_at_any_log_level(
    secret_api: FakeSnyk, tmp_path: Path, case: str, args: tuple[str, ...]
) -> None:
    config = {**tap_config(secret_api, page_size=10), "api_token": SECRET}
    output = run_cli_debug(tmp_path, config, *args)
    assert output  # the run said something
    assert SECRET not in output


@pytest.mark.parametrize(
    "fault",
    [Fault(status=401), Fault(status=500, times=1000), Fault(reset=True, times=1000)],
    ids=["401", "500-until-give-up", "resets-until-give-up"],
)
def test_the_token_appears_in_no_error(secret_api: FakeSnyk, tmp_path: Path, fault: Fault) -> None:
    secret_api.faults.append(fault)
    config = {**tap_config(secret_api), "api_token": SECRET, "max_retry_seconds": 1}
    output = run_cli_debug(tmp_path, config)
    assert "Snyk" in output
    assert SECRET not in output


@pytest.mark.parametrize("args", [(), ("--test",)], ids=["sync", "connection check"])
def test_credentials_in_api_url_are_refused_and_never_printed(
    secret_api: FakeSnyk, tmp_path: Path, args: tuple[str, ...]
) -> None:
    with_credentials = secret_api.url.replace("http://", f"http://alice:{SECRET}@")
    config = {**tap_config(secret_api), "api_url": with_credentials}
    output = run_cli_debug(tmp_path, config, *args)
    assert "`api_url` holds a user name or password" in output
    assert SECRET not in output
    assert "Traceback" not in output
    assert secret_api.requests == []


def test_the_token_is_never_in_a_request_url(secret_api: FakeSnyk) -> None:
    run_tap({**tap_config(secret_api, page_size=10), "api_token": SECRET})
    assert len(secret_api.requests) > 1
    assert all(SECRET not in request.target for request in secret_api.requests)
    assert all(
        request.header("Authorization") == f"token {SECRET}" for request in secret_api.requests
    )


def test_a_next_link_to_another_host_is_refused_and_gets_no_token(secret_api: FakeSnyk) -> None:
    with FakeSnyk() as elsewhere:
        secret_api.foreign_next_link = f"{elsewhere.url}/rest/orgs/{ORG_A}/audit_logs/search?x=1"
        # The fake gives that link to whichever paged answer goes out next: one request at a
        # time makes it the audit-log search's first page.
        config = tap_config(secret_api, page_size=10, concurrent_requests=1)
        run = run_tap({**config, "api_token": SECRET})
        assert run.exit_code == 1
        assert run.error is not None
        assert "next-page link to another host" in run.error
        assert elsewhere.requests == []
    assert len(run.records("org_audit_logs")) == 10  # the first page was delivered


def test_tls_verification_stays_on(secret_api: FakeSnyk) -> None:
    tap = TapSnyk(config=tap_config(secret_api), parse_env_config=False)
    for stream in tap.streams.values():
        assert stream.requests_session.verify is True


def test_content_is_data_whatever_it_holds(secret_api: FakeSnyk) -> None:
    hostile = {
        "__proto__": {"polluted": True},
        "$ref": "#/definitions/x",
        "{org_id}": "{api_token}",
        "created": "not a date",
        "event_id": "forged",
        "": {"": ""},
        "big": 123456789012345678901234567890,
        "nan-like": "NaN",
        "nul": "a\u0000b",
        "script": "<script>alert(1)</script>",
        "deep": [[[[[[[[[[{"x": None}]]]]]]]]]],
    }
    created = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    secret_api.add_org_events(ORG_A, [{"created": created, "event": "x.y", "content": hostile}])
    run = run_tap(tap_config(secret_api, events=["x.y"]))
    assert run.exit_code == 0
    [record] = run.records("org_audit_logs")
    assert record["content"] == hostile
    assert record["event_id"] != "forged"
    assert record["created"] == created.replace(".000Z", ".000000Z")


# -- OAuth service accounts: the client secret, the private key, assertions and access tokens --

CLIENT_SECRET = "oauth-client-secret-5e7a1b"


@pytest.fixture
def oauth_api(secret_api: FakeSnyk, key_pair: KeyPair) -> FakeSnyk:
    secret_api.add_oauth_client("secret-client", secret=CLIENT_SECRET)
    secret_api.add_oauth_client("key-client", public_key=key_pair.public_pem, key_id="kid-1")
    secret_api.token_lifetime = 2
    return secret_api


def oauth_settings(way: str, key_pair: KeyPair) -> dict[str, str]:
    if way == "client_secret":
        return {"client_id": "secret-client", "client_secret": CLIENT_SECRET}
    return {
        "client_id": "key-client",
        "private_key": key_pair.private_pem,
        "private_key_id": "kid-1",
    }


def oauth_secrets(api: FakeSnyk, key_pair: KeyPair) -> list[str]:
    """Every secret of the run: the client secret, the key's lines, assertions, access tokens."""
    key_lines = [line for line in key_pair.private_pem.splitlines() if "-----" not in line]
    assertions = [
        value
        for request in api.token_requests
        for value in parse_qs(request.body.decode()).get("client_assertion", [])
    ]
    return [CLIENT_SECRET, *key_lines, *assertions, *api.issued_tokens]


@pytest.mark.parametrize("way", ["client_secret", "private_key"])
@EVERY_COMMAND
def test_no_oauth_secret_appears_in_any_output_at_any_log_level(
    oauth_api: FakeSnyk, key_pair: KeyPair, tmp_path: Path, way: str, case: str, args: tuple
) -> None:
    config = {**tap_config(oauth_api, page_size=10), **oauth_settings(way, key_pair)}
    del config["api_token"]
    output = run_cli_debug(tmp_path, config, *args)
    assert output
    if case in ("sync", "connection check"):
        assert oauth_api.issued_tokens  # tokens were issued, and are looked for below
    for secret in oauth_secrets(oauth_api, key_pair):
        assert secret not in output
    assert "PRIVATE KEY" not in output


@pytest.mark.parametrize("way", ["client_secret", "private_key"])
@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=401, path="/oauth2/token"),
        Fault(status=503, times=1000, path="/oauth2/token"),
        Fault(revoke_tokens=True, times=2, path="/audit_logs/"),
        Fault(reset=True, times=1000, path="/audit_logs/"),
    ],
    ids=["token-refused", "token-503-until-give-up", "revoked-twice", "resets-until-give-up"],
)
def test_no_oauth_secret_appears_in_any_error(
    oauth_api: FakeSnyk, key_pair: KeyPair, tmp_path: Path, way: str, fault: Fault
) -> None:
    oauth_api.faults.append(fault)
    config = {**tap_config(oauth_api), **oauth_settings(way, key_pair), "max_retry_seconds": 1}
    del config["api_token"]
    output = run_cli_debug(tmp_path, config)
    assert "Snyk" in output
    for secret in oauth_secrets(oauth_api, key_pair):
        assert secret not in output


def test_a_wrong_secret_or_a_bad_key_is_never_quoted(snyk_api: FakeSnyk, tmp_path: Path) -> None:
    bad_key = "-----BEGIN PRIVATE KEY-----\nc2VrcmV0LWJ1dC1icm9rZW4ta2V5\n-----END PRIVATE KEY-----"
    for settings in (
        {"client_id": "nobody", "client_secret": "sekret-wrong-secret"},
        {"client_id": "nobody", "private_key": bad_key, "private_key_id": "k"},
    ):
        config = {**tap_config(snyk_api), **settings}
        del config["api_token"]
        output = run_cli_debug(tmp_path, config)
        assert "`client_secret`" in output or "`private_key`" in output
        assert "sekret-wrong-secret" not in output
        assert "c2VrcmV0LWJ1dC1icm9rZW4ta2V5" not in output

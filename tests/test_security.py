"""The token stays secret and goes only to `api_url`; what Snyk sends is only ever data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tap_snyk.tap import TapSnyk
from tests.conftest import ORG_A, run_tap, tap_config
from tests.fake_snyk import FakeSnyk, Fault, make_events

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SECRET = "snyk-secret-token-4f9d2c"


@pytest.fixture
def secret_api(snyk_api: FakeSnyk) -> FakeSnyk:
    snyk_api.tokens.add(SECRET)
    snyk_api.add_org_events(ORG_A, make_events(30, start=NOW - timedelta(hours=3), org_id=ORG_A))
    return snyk_api


def run_cli_debug(tmp_path: Path, config: dict, *args: str) -> str:
    """Everything the tap prints, at the most talkative log level."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "tap_snyk.tap", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "LOGLEVEL": "DEBUG", "TAP_SNYK_LOGLEVEL": "DEBUG"},
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    ("case", "args"),
    [
        ("sync", ()),
        ("connection check", ("--test",)),
        ("discover", ("--discover",)),
        ("about", ("--about", "--format=json")),
    ],
)
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
        run = run_tap({**tap_config(secret_api, page_size=10), "api_token": SECRET})
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

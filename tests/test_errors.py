"""Refusals end the run with one line that names the org or group and says what to do."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError

from fake_snyk import FakeSnyk, Fault, make_events, uuid_for
from tap_snyk.tap import TapSnyk
from tests.conftest import GROUP, ORG_A, ORG_B, TOKEN, run_cli, run_tap, tap_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def test_401_names_the_token_the_api_url_and_the_regions(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    run = run_tap({**tap_config(snyk_api), "api_token": "expired-token"})
    assert run.exit_code == 1
    assert run.error is not None
    assert "Snyk rejected the API token (401)" in run.error
    assert f"`api_url` ({snyk_api.url})" in run.error
    assert "https://api.eu.snyk.io" in run.error


def test_403_names_the_org_and_the_permission_it_needs(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    snyk_api.forbidden.add(ORG_A)
    run = run_tap(tap_config(snyk_api))
    assert run.exit_code == 1
    assert run.error is not None
    assert run.error.startswith(f"The API token may not read organization {ORG_A} (403)")
    assert "`org.audit_log.read`" in run.error


def test_403_on_a_group_names_the_group_permission(snyk_api: FakeSnyk) -> None:
    snyk_api.add_group_events(GROUP, [])
    snyk_api.forbidden.add(GROUP)
    run = run_tap(tap_config(snyk_api, org_ids=[], group_ids=[GROUP]))
    assert run.error is not None
    assert f"group {GROUP} (403)" in run.error
    assert "`group.audit.read`" in run.error


def test_404_names_the_org_that_does_not_exist(snyk_api: FakeSnyk) -> None:
    unknown = uuid_for("no-such-org")
    run = run_tap(tap_config(snyk_api, org_ids=[unknown]))
    assert run.exit_code == 1
    assert run.error is not None
    assert run.error.startswith(f"Snyk does not know organization {unknown} (404)")


def test_400_passes_on_snyks_own_detail(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    snyk_api.faults.append(Fault(status=400))
    run = run_tap(tap_config(snyk_api))
    assert run.error is not None
    assert run.error.startswith(f"Snyk refused the request for organization {ORG_A} (400)")
    assert "Snyk said: injected fault" in run.error


def test_events_read_before_a_refusal_are_delivered_with_their_state(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, make_events(20, start=NOW - timedelta(hours=5), org_id=ORG_A))
    snyk_api.add_org_events(ORG_B, [])
    snyk_api.forbidden.add(ORG_B)
    run = run_tap(tap_config(snyk_api, org_ids=[ORG_A, ORG_B]))
    assert run.exit_code == 1
    assert run.records("org_audit_logs")
    partitions = run.final_state["bookmarks"]["org_audit_logs"]["partitions"]
    assert partitions[0]["context"] == {"org_id": ORG_A}
    assert partitions[0]["replication_key_value"] == run.records("org_audit_logs")[-1]["created"]


def test_a_discovered_org_that_refuses_is_skipped_with_a_warning(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    locked = uuid_for("org-locked")
    snyk_api.add_group_orgs(GROUP, [ORG_B, locked])
    snyk_api.add_group_events(GROUP, [])
    snyk_api.add_org_events(ORG_A, [])
    snyk_api.add_org_events(ORG_B, make_events(5, start=NOW - timedelta(hours=2), org_id=ORG_B))
    snyk_api.add_org_events(locked, [])
    snyk_api.forbidden.add(locked)
    with caplog.at_level(logging.WARNING):
        run = run_tap(tap_config(snyk_api, group_ids=[GROUP], discover_orgs=True))
    assert run.exit_code == 0
    assert {r["org_id"] for r in run.records("org_audit_logs")} == {ORG_B}
    assert any(
        r.levelno == logging.WARNING and f"organization {locked} (403)" in r.getMessage()
        for r in caplog.records
    )


def test_configuration_errors_are_found_before_any_request(snyk_api: FakeSnyk) -> None:
    with pytest.raises(ConfigValidationError) as raised:
        TapSnyk(
            config=tap_config(snyk_api, org_ids=["acme"], events=["a"], exclude_events=["b"]),
            parse_env_config=False,
        )
    assert len(raised.value.errors) == 2
    assert snyk_api.requests == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"org_ids": [], "group_ids": []}, "No organization or group to read"),
        ({"page_size": 1000}, "`page_size` must be a whole number from 1 to 100"),
        ({"end_date": "2020-01-01T00:00:00Z"}, "`end_date` (2020-01-01T00:00:00.000000Z)"),
        ({"api_url": "file:///etc/passwd"}, "`api_url` must be the origin of a Snyk API"),
        ({"max_requests_per_minute": 5000}, "`max_requests_per_minute` must be a whole number"),
        ({"request_timeout": 0}, "`request_timeout` must be a whole number from 1 to 3600"),
        ({"lookback_hours": 100000000}, "`lookback_hours` must be a whole number from 0 to 2160"),
    ],
)
def test_each_configuration_error_names_its_setting(
    snyk_api: FakeSnyk, settings: dict, message: str
) -> None:
    with pytest.raises(ConfigValidationError) as raised:
        TapSnyk(config=tap_config(snyk_api, **settings), parse_env_config=False)
    assert any(message in error for error in raised.value.errors), raised.value.errors
    assert snyk_api.requests == []


def test_the_cli_ends_a_refusal_with_the_message_and_no_traceback(
    snyk_api: FakeSnyk, tmp_path: Path
) -> None:
    snyk_api.add_org_events(ORG_A, [])
    snyk_api.forbidden.add(ORG_A)
    result = run_cli(tmp_path, tap_config(snyk_api))
    assert result.returncode == 1
    assert f"The API token may not read organization {ORG_A} (403)" in result.stderr
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_a_host_that_does_not_resolve_fails_at_once_naming_api_url(snyk_api: FakeSnyk) -> None:
    run = run_tap(
        {**tap_config(snyk_api), "api_url": "https://api.snyk.invalid", "max_retry_seconds": 600}
    )
    assert run.exit_code == 1
    assert run.error is not None
    assert run.error.startswith(
        "Cannot reach the Snyk API at `api_url` (https://api.snyk.invalid): its host name does not"
    )


def test_an_api_that_fails_tls_fails_at_once_naming_api_url(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    https_to_plain_http = snyk_api.url.replace("http://", "https://")
    run = run_tap({**tap_config(snyk_api), "api_url": https_to_plain_http})
    assert run.exit_code == 1
    assert run.error is not None
    assert "the TLS handshake failed" in run.error
    assert "`api_url`" in run.error


def test_a_token_with_a_line_break_is_refused_without_quoting_it(snyk_api: FakeSnyk) -> None:
    with pytest.raises(ConfigValidationError) as raised:
        TapSnyk(
            config={**tap_config(snyk_api), "api_token": "sekret-123\r"}, parse_env_config=False
        )
    assert any("`api_token` holds spaces, line breaks" in e for e in raised.value.errors)
    assert "sekret-123" not in " ".join(raised.value.errors)
    assert snyk_api.requests == []

"""The run's scope: its orgs and groups worked out once, up front; the sync and `--test` agree."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fake_snyk import FakeSnyk, Fault, make_events, uuid_for
from tap_snyk.tap import TapSnyk
from tests.conftest import GROUP, ORG_A, ORG_B, run_tap, tap_config
from tests.test_check import check, report

NOW = datetime.now(timezone.utc).replace(microsecond=0)
THIRD = uuid_for("org-third")
LISTING = f"/rest/groups/{GROUP}/orgs"


def seed(api: FakeSnyk) -> None:
    """Org A configured, orgs B and a third in the group, a few events everywhere."""
    api.add_group_orgs(GROUP, [ORG_B, THIRD])
    api.add_group_events(GROUP, make_events(3, start=NOW - timedelta(hours=2), group_id=GROUP))
    for org_id in (ORG_A, ORG_B, THIRD):
        api.add_org_events(org_id, make_events(3, start=NOW - timedelta(hours=2), org_id=org_id))


def refuse_listing(api: FakeSnyk, status: int = 403) -> None:
    api.faults.append(Fault(status=status, path=LISTING, times=100))


def test_the_scope_lists_each_group_once_and_properties_make_no_request(
    snyk_api: FakeSnyk,
) -> None:
    seed(snyk_api)
    tap = TapSnyk(
        config=tap_config(snyk_api, group_ids=[GROUP], discover_orgs=True), parse_env_config=False
    )
    with pytest.raises(RuntimeError, match="before the run's scope was worked out"):
        _ = tap.streams["org_audit_logs"].partitions
    assert snyk_api.requests == []
    scope = tap.resolve_scope()
    assert scope.org_ids == (ORG_A,)
    assert set(scope.discovered_org_ids) == {ORG_B, THIRD}
    assert {org["id"] for org in scope.group_orgs[GROUP]} == {ORG_B, THIRD}
    assert [r.path for r in snyk_api.requests] == [LISTING]
    partitions = tap.streams["org_audit_logs"].partitions
    assert partitions[0] == {"org_id": ORG_A}
    assert {p["org_id"] for p in partitions} == {ORG_A, ORG_B, THIRD}
    assert len(snyk_api.requests) == 1


@pytest.mark.parametrize("status", [403, 404])
def test_with_discover_orgs_a_refused_listing_reads_the_rest_then_fails_naming_the_group(
    snyk_api: FakeSnyk, status: int
) -> None:
    seed(snyk_api)
    refuse_listing(snyk_api, status)
    run = run_tap(tap_config(snyk_api, group_ids=[GROUP], discover_orgs=True))
    assert run.exit_code == 1
    assert run.error is not None
    assert f"group {GROUP} ({status})" in run.error
    assert "\n" not in run.error
    if status == 403:
        assert "group.read" in run.error
        assert "`discover_orgs`" in run.error
    # Everything else was read and its state written before the run said it failed.
    assert {r["org_id"] for r in run.records("org_audit_logs")} == {ORG_A}
    assert run.records("group_audit_logs")
    assert run.final_state["bookmarks"]["org_audit_logs"]["partitions"]
    assert [m["type"] for m in run.messages if m["type"] in ("RECORD", "STATE")][-1] == "STATE"


def test_without_discover_orgs_a_refused_listing_only_skips_it_in_organizations(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    seed(snyk_api)
    refuse_listing(snyk_api)
    with caplog.at_level(logging.WARNING):
        run = run_tap(tap_config(snyk_api, org_ids=[ORG_A], group_ids=[GROUP]))
    assert run.exit_code == 0, run.error
    assert [o["id"] for o in run.records("organizations")] == [ORG_A]
    assert any(
        r.levelno == logging.WARNING
        and f"group {GROUP} (403)" in r.getMessage()
        and "drop `organizations.*`" in r.getMessage()
        for r in caplog.records
    )


def test_check_fails_for_a_refused_listing_with_discover_orgs(
    snyk_api: FakeSnyk, tmp_path: Path
) -> None:
    seed(snyk_api)
    refuse_listing(snyk_api)
    result = check(tmp_path, tap_config(snyk_api, group_ids=[GROUP], discover_orgs=True))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = report(result)
    assert any(
        line.startswith(f"FAIL group {GROUP}: listing its organizations: The API token may not")
        for line in lines
    )
    assert f"OK   organization {ORG_A}: org_audit_logs readable (org.audit_log.read)" in lines
    assert lines[-1].startswith("Connection check failed: 1 of ")


def test_check_warns_for_a_refused_listing_without_discover_orgs(
    snyk_api: FakeSnyk, tmp_path: Path
) -> None:
    seed(snyk_api)
    refuse_listing(snyk_api)
    result = check(tmp_path, tap_config(snyk_api, group_ids=[GROUP]))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = report(result)
    assert any(
        line.startswith(f"WARN group {GROUP}: listing its organizations: The API token may not")
        and line.endswith("(the sync skips it in organizations)")
        for line in lines
    )
    assert lines[-1].startswith("Connection check passed")

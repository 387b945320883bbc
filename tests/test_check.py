"""The connection check, `tap-snyk --test`: the token and every org and group, no records."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fake_snyk import FakeSnyk, make_events, uuid_for
from tests.conftest import GROUP, ORG_A, ORG_B, run_cli, tap_config


def check(tmp_path: Path, config: dict) -> subprocess.CompletedProcess[str]:
    return run_cli(tmp_path, config, "--test")


def report(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The check's own lines, without the log prefix."""
    return [
        line.split("| tap-snyk ", 1)[1].split("| ", 1)[1]
        for line in result.stderr.splitlines()
        if "| tap-snyk " in line
        and any(mark in line for mark in ("OK   ", "WARN ", "FAIL ", "check"))
    ]


def seed(api: FakeSnyk) -> None:
    start = datetime.now(timezone.utc) - timedelta(days=1)
    api.add_org_events(ORG_A, make_events(150, start=start, org_id=ORG_A))
    api.add_org_events(ORG_B, [])
    api.add_group_events(GROUP, make_events(5, start=start, group_id=GROUP))


def test_a_good_setup_passes_with_one_line_each_and_emits_nothing(
    snyk_api: FakeSnyk, tmp_path: Path
) -> None:
    seed(snyk_api)
    result = check(tmp_path, tap_config(snyk_api, org_ids=[ORG_A, ORG_B], group_ids=[GROUP]))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # no Singer message at all
    lines = report(result)
    assert lines[0] == f"OK   the API token: valid at {snyk_api.url}, for Fake User"
    for org in (ORG_A, ORG_B):
        assert f"OK   organization {org}: org_audit_logs readable (org.audit_log.read)" in lines
        assert f"OK   organization {org}: org_memberships readable (org.membership.read)" in lines
        assert f"OK   organization {org}: projects readable (org.project.read)" in lines
    assert f"OK   group {GROUP}: group_audit_logs readable (group.audit.read)" in lines
    assert f"OK   group {GROUP}: group_memberships readable (group.membership.read)" in lines
    assert lines[-1] == "Connection check passed: 9 checks."
    # One page per partition, not a sync: ORG_A has more events than a page.
    searches = [r for r in snyk_api.requests if r.path.endswith("/search")]
    assert len(searches) == 3


def test_a_bad_token_fails_the_check_at_the_first_line(snyk_api: FakeSnyk, tmp_path: Path) -> None:
    seed(snyk_api)
    result = check(tmp_path, {**tap_config(snyk_api), "api_token": "wrong"})
    assert result.returncode == 1
    lines = report(result)
    assert lines[0].startswith("FAIL the API token: Snyk rejected the API token (401)")
    assert lines[-1] == "Connection check failed: 1 of 1 checks."


def test_each_org_or_group_without_access_is_named(snyk_api: FakeSnyk, tmp_path: Path) -> None:
    seed(snyk_api)
    snyk_api.forbidden.add(ORG_B)
    missing = uuid_for("org-missing")
    result = check(
        tmp_path, tap_config(snyk_api, org_ids=[ORG_A, ORG_B, missing], group_ids=[GROUP])
    )
    assert result.returncode == 1
    lines = report(result)
    assert f"OK   organization {ORG_A}: org_audit_logs readable (org.audit_log.read)" in lines
    assert any(
        line.startswith(f"FAIL organization {ORG_B}: org_audit_logs: The API token may not read")
        for line in lines
    )
    assert any(
        line.startswith(f"FAIL organization {missing}: org_audit_logs: Snyk does not know")
        for line in lines
    )
    # A lookup the token may not read is skipped by the sync: a warning, not a failure.
    assert any(
        line.startswith(f"WARN organization {ORG_B}: projects: The API token may not read")
        and "deselect the stream (drop `projects.*`" in line
        for line in lines
    )
    assert lines[-1] == "Connection check failed: 2 of 12 checks."

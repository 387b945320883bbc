"""An interrupted run: a final STATE, then an exit status that says it was interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import ORG_A, ORG_B, bookmark, tap_config
from tests.fake_snyk import FakeSnyk, Fault, make_events

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signal_ends_the_run_with_a_final_state_and_a_failing_status(
    snyk_api: FakeSnyk, tmp_path: Path, signum: int, status: int
) -> None:
    snyk_api.add_org_events(ORG_A, make_events(30, start=NOW - timedelta(hours=5), org_id=ORG_A))
    snyk_api.add_org_events(ORG_B, make_events(5, start=NOW - timedelta(hours=5), org_id=ORG_B))
    # Org A is read in full; org B's first answer keeps the tap waiting when the signal comes.
    snyk_api.faults.append(Fault(delay=30, path=f"/orgs/{ORG_B}/audit_logs/search"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tap_config(snyk_api, org_ids=[ORG_A, ORG_B], page_size=10)))
    tap = subprocess.Popen(
        [sys.executable, "-m", "tap_snyk.tap", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(ORG_B in r.path for r in snyk_api.requests):
            assert time.monotonic() < deadline, "the tap never asked for org B"
            assert tap.poll() is None, tap.communicate()
            time.sleep(0.05)
        time.sleep(0.3)
        tap.send_signal(signum)
        stdout, stderr = tap.communicate(timeout=60)
    finally:
        if tap.poll() is None:
            tap.kill()
    assert tap.returncode == status, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"Stopped by {signal.Signals(signum).name}" in stderr
    messages = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert {r["org_id"] for r in records} == {ORG_A}
    assert messages[-1]["type"] == "STATE"
    last = max(r["created"] for r in records if r["org_id"] == ORG_A)
    assert bookmark(messages[-1]["value"], "org_audit_logs", "org_id", ORG_A) == last

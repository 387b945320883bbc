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

from fake_snyk import FakeSnyk, Fault, make_events, uuid_for
from tests.conftest import ORG_A, ORG_B, bookmark, tap_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signal_ends_the_run_with_a_final_state_and_a_failing_status(
    snyk_api: FakeSnyk, tmp_path: Path, signum: int, status: int
) -> None:
    events = make_events(30, start=NOW - timedelta(hours=5), org_id=ORG_A)
    snyk_api.add_org_events(ORG_A, events)
    snyk_api.add_org_events(ORG_B, make_events(5, start=NOW - timedelta(hours=5), org_id=ORG_B))
    # Org A is read in full; org B's first answer keeps the tap waiting when the signal comes.
    snyk_api.faults.append(Fault(delay=30, path=f"/orgs/{ORG_B}/audit_logs/search"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tap_config(snyk_api, org_ids=[ORG_A, ORG_B], page_size=10)))
    # Unbuffered: `communicate` reads the pipe itself, so nothing may sit in a reader's buffer.
    tap = subprocess.Popen(
        [sys.executable, "-m", "tap_snyk.tap", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    try:
        assert tap.stdout is not None
        written = [tap.stdout.readline() for _ in range(2)]  # the SCHEMA and STATE before them
        for _ in range(sum(e["event"] != "api.access" for e in events)):
            written.append(tap.stdout.readline())  # org A's records, each line as it is written
        time.sleep(0.3)  # its bookmark moves after its last record; then the tap waits for org B
        tap.send_signal(signum)
        rest, errors = tap.communicate(timeout=60)
        stdout, stderr = (b"".join(written) + rest).decode(), errors.decode()
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


def _blocked_writing(pid: int) -> bool:
    """Whether the process's main thread sleeps in a write to a full pipe (Linux)."""
    try:
        return "pipe_write" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc wchan")
def test_a_signal_while_the_loader_stalls_cuts_no_line_in_two(
    tmp_path: Path,
) -> None:
    # A loader that is behind: the tap's stdout pipe is full and the main thread is blocked
    # mid-RECORD, with pages read ahead. The signal comes, the loader stays stalled a while, then
    # reads on: the tap finishes the line it was writing, writes the final STATE and exits 143.
    # Every line whole, the final STATE last, no traceback.
    orgs = [uuid_for(f"stalled-{n}") for n in range(2)]
    with FakeSnyk() as api:
        for number, org in enumerate(orgs):
            events = make_events(3000, start=NOW - timedelta(days=3), org_id=org, seed=number)
            # Lines longer than stdout's buffer: written straight from the SDK's message buffer,
            # which the signal handler's STATE would need too.
            api.add_org_events(
                org, [{**event, "content": {"blob": "x" * 20_000}} for event in events]
            )
        config = tmp_path / "config.json"
        settings = tap_config(api, org_ids=orgs, page_size=100, concurrent_requests=8)
        config.write_text(json.dumps(settings))
        tap = subprocess.Popen(
            [sys.executable, "-m", "tap_snyk.tap", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 120
            while not _blocked_writing(tap.pid):
                assert time.monotonic() < deadline, "the tap never filled its output pipe"
                assert tap.poll() is None, tap.communicate()
                time.sleep(0.05)
            tap.send_signal(signal.SIGTERM)
            time.sleep(1.0)  # the loader is still behind: what the clock tests here
            assert tap.poll() is None  # the tap waits for its line to go out, not gives up
            stdout, stderr = tap.communicate(timeout=60)
        finally:
            if tap.poll() is None:
                tap.kill()
    errors = stderr.decode()
    assert tap.returncode == 143, errors[-2000:]
    assert "Traceback" not in errors
    assert "Stopped by SIGTERM: the state of everything delivered was written" in errors
    messages = [json.loads(line) for line in stdout.decode().splitlines()]  # no line cut off
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    # Whatever STATE was sent before is a safe point: it never passes what was written.
    for state in (m["value"] for m in messages if m["type"] == "STATE"):
        for org in orgs:
            mark = bookmark(state, "org_audit_logs", "org_id", org)
            written = [r["created"] for r in records if r.get("org_id") == org]
            assert mark is None or mark <= max(written)
    assert messages[-1]["type"] == "STATE"

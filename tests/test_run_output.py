"""What a run says: a start line, a warning per real problem, progress on long work, a summary.

At the default log level the SDK's own INFO lines (METRIC, a line per stream and partition) stay
out of the view; `TAP_SNYK_LOGLEVEL=DEBUG` shows them. A failed run's last line is the tap's own.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fake_snyk import FakeSnyk, Fault, make_events, seed_demo_data
from tap_snyk.report import PROGRESS_INTERVAL, RunReport
from tap_snyk.tap import TapSnyk
from tests.conftest import ORG_A, ORG_B, TOKEN, run_tap, tap_config, unpaced

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def demo_api() -> Iterator[tuple[FakeSnyk, dict[str, Any]]]:
    """The demo's small dataset: 2 orgs and a group, 500 events each, members, projects."""
    with FakeSnyk() as api:
        orgs, groups = seed_demo_data(api, orgs=2, groups=1, events=500, now=NOW)
        config = {"api_url": api.url, "api_token": TOKEN, "org_ids": orgs, "group_ids": groups}
        yield api, config


def run_process(
    tmp_path: Path,
    config: dict[str, Any],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    environment = {k: v for k, v in os.environ.items() if not k.endswith("LOGLEVEL")}
    return subprocess.run(
        [sys.executable, "-m", "tap_snyk", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environment, **(env or {})},
        cwd=cwd,
    )


def test_a_default_run_says_where_it_starts_and_ends_with_what_it_delivered(
    demo_api: tuple[FakeSnyk, dict[str, Any]], tmp_path: Path
) -> None:
    _, config = demo_api
    result = run_process(tmp_path, config)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) <= 30
    assert not [line for line in lines if "METRIC" in line]
    assert "reads 2 organizations and 1 group" in lines[0]
    records = [m for m in map(json.loads, result.stdout.splitlines()) if m["type"] == "RECORD"]
    audit = sum(m["stream"] == "org_audit_logs" for m in records)
    summary = lines[-1]
    assert f"{len(records):,} record(s) delivered" in summary
    assert f"org_audit_logs {audit:,}" in summary
    assert "Complete: every org and group was read." in summary
    assert "After " not in result.stderr  # a short run prints no progress


def test_the_sdks_lines_and_metrics_are_there_at_debug(
    demo_api: tuple[FakeSnyk, dict[str, Any]], tmp_path: Path
) -> None:
    _, config = demo_api
    result = run_process(tmp_path, config, env={"TAP_SNYK_LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    assert "METRIC" in result.stderr
    assert "Beginning sync of 'org_audit_logs'" in result.stderr


def test_a_failed_run_ends_with_the_taps_own_line_and_no_worker_speaks_after_it(
    snyk_api: FakeSnyk, tmp_path: Path
) -> None:
    start = NOW - timedelta(days=1)
    snyk_api.add_org_events(ORG_A, make_events(50, start=start, org_id=ORG_A))
    snyk_api.add_org_events(ORG_B, make_events(50, start=start, org_id=ORG_B))
    snyk_api.forbidden.add(ORG_A)  # configured: the run fails on it
    # Meanwhile a worker keeps meeting passing faults for org B, and would say so.
    snyk_api.faults.append(Fault(status=503, path=f"/orgs/{ORG_B}/", times=10_000))
    config = tap_config(snyk_api, org_ids=[ORG_A, ORG_B], max_retry_seconds=60)
    result = run_process(tmp_path, config)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "may not read organization" in lines[-1]
    assert "(403)" in lines[-1]
    assert "Failed in " in lines[-2]
    assert "Incomplete" in lines[-2]
    assert not [line for line in lines if "unhandled error" in line]


def test_a_long_run_says_how_far_it_is_every_interval(snyk_api: FakeSnyk) -> None:
    events = make_events(400, start=NOW - timedelta(days=2), org_id=ORG_A, step_ms=300_000)
    snyk_api.add_org_events(ORG_A, events)
    tap = unpaced(TapSnyk(config=tap_config(snyk_api, page_size=20), parse_env_config=False))
    ticks = iter(range(0, 10**9, 7))  # each look at the clock: 7 s later
    logger = logging.getLogger("test-progress")
    logger.setLevel(logging.INFO)
    tap.run_context.report = RunReport(logger, clock=lambda: float(next(ticks)))
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        run = run_tap_with(tap)
    finally:
        logger.removeHandler(handler)
    assert len(run) == sum(e["event"] != "api.access" for e in events)  # api.access: asked only
    progress = [line for line in lines if line.startswith("After ")]
    assert len(progress) >= 3
    assert "org_audit_logs" in progress[0]
    assert "% of its time range read (" in progress[0]
    assert " events, " in progress[0]
    assert "/s" in progress[0]
    assert "left)" in progress[0]
    fractions = [int(line.split("org_audit_logs ")[1].split("%")[0]) for line in progress]
    assert fractions == sorted(fractions)  # reading goes forward
    assert lines[-1].startswith("Done in ")


def run_tap_with(tap: TapSnyk) -> list[dict[str, Any]]:
    """The records a tap built by the test writes (its messages go to a buffer)."""
    import contextlib
    import io

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out):
        tap.run_sync()
    out.flush()
    messages = [json.loads(line) for line in out.buffer.getvalue().decode().splitlines()]  # type: ignore[attr-defined]
    return [m for m in messages if m["type"] == "RECORD" and m["stream"] == "org_audit_logs"]


def test_progress_counts_the_time_read_of_every_partition() -> None:
    logger = logging.getLogger("test-progress-math")
    now = [0.0]
    report = RunReport(logger, clock=lambda: now[0])
    day = datetime(2026, 1, 1, tzinfo=timezone.utc)
    report.span("org_audit_logs", "a", day, day + timedelta(days=10))
    report.span("org_audit_logs", "b", day, day + timedelta(days=10))
    lines: list[str] = []
    logger.info = lambda message, *args: lines.append(message % args)  # type: ignore[method-assign]
    now[0] = 1.0
    report.record("org_audit_logs", "a", (day + timedelta(days=5)).isoformat())
    report.partition_done("org_audit_logs", "b")
    report.progress(now=PROGRESS_INTERVAL + 1.0)
    assert "org_audit_logs 75% of its time range read (1 events" in lines[-1]


def test_a_quiet_run_prints_no_progress(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    snyk_api.add_org_events(ORG_A, make_events(20, start=NOW - timedelta(hours=2), org_id=ORG_A))
    with caplog.at_level(logging.INFO):
        run = run_tap(tap_config(snyk_api))
    assert run.exit_code == 0
    assert not [r for r in caplog.records if r.getMessage().startswith("After ")]


def test_the_docs_logging_config_writes_the_metrics_to_a_file_and_the_console_stays_quiet(
    demo_api: tuple[FakeSnyk, dict[str, Any]], tmp_path: Path
) -> None:
    page = (Path(__file__).parent.parent / "docs" / "troubleshooting.md").read_text()
    config_text = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "singer_sdk.metrics" in config_text
    (tmp_path / "metrics.logging.yml").write_text(config_text)
    _, config = demo_api
    # The config names its file relative to where the tap runs: here, tmp_path.
    result = run_process(
        tmp_path, config, env={"SINGER_SDK_LOG_CONFIG": "metrics.logging.yml"}, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "METRIC" not in result.stderr
    assert len(result.stderr.splitlines()) <= 30
    metrics = (tmp_path / "tap-snyk-metrics.log").read_text().splitlines()
    assert metrics
    points = [json.loads(line.split("METRIC: ", 1)[1]) for line in metrics]
    assert {"http_request_duration", "record_count"} <= {point["metric"] for point in points}

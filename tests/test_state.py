"""Incremental state: a resumable bookmark per partition, the lookback, and exactly-once loading."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fake_snyk import FakeSnyk, make_events
from tests.conftest import GROUP, ORG_A, ORG_B, bookmark, run_tap, tap_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def stamp(moment: datetime) -> str:
    """A timestamp as the live API writes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def visible(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] != "api.access"]


def identity(event: dict) -> tuple:
    """What tells two fake events apart (the fake's content carries a serial number)."""
    return (event["created"][:23], event["event"], repr(event.get("content")))


def search_froms(api: FakeSnyk) -> list[str]:
    return [r.query["from"][0] for r in api.requests if r.path.endswith("/audit_logs/search")]


def test_final_state_holds_a_resumable_bookmark_per_partition(snyk_api: FakeSnyk) -> None:
    start = NOW - timedelta(days=3)
    org_a = make_events(40, start=start, org_id=ORG_A, seed=1)
    org_b = make_events(25, start=start, org_id=ORG_B, seed=2)
    snyk_api.add_org_events(ORG_A, org_a)
    snyk_api.add_org_events(ORG_B, org_b)
    snyk_api.add_group_events(GROUP, make_events(10, start=start, group_id=GROUP, seed=3))
    run = run_tap(tap_config(snyk_api, org_ids=[ORG_A, ORG_B], group_ids=[GROUP]))

    state = run.final_state
    org_partitions = state["bookmarks"]["org_audit_logs"]["partitions"]
    assert [p["context"] for p in org_partitions] == [{"org_id": ORG_A}, {"org_id": ORG_B}]
    for partition in org_partitions:
        assert partition["replication_key"] == "created"
        assert set(partition) == {"context", "replication_key", "replication_key_value"}
    assert "progress_markers" not in str(state)
    newest_a = max(r["created"] for r in run.records("org_audit_logs") if r["org_id"] == ORG_A)
    assert bookmark(state, "org_audit_logs", "org_id", ORG_A) == newest_a
    assert newest_a.endswith("000Z")
    assert len(newest_a) == len("2026-01-01T00:00:00.000000Z")
    assert bookmark(state, "group_audit_logs", "group_id", GROUP) is not None


def test_next_run_starts_lookback_hours_before_the_bookmark(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, make_events(20, start=NOW - timedelta(days=5), org_id=ORG_A))
    config = tap_config(snyk_api, lookback_hours=6)
    first = run_tap(config)
    mark = datetime.fromisoformat(
        bookmark(first.final_state, "org_audit_logs", "org_id", ORG_A)[:-1]
    )
    snyk_api.reset_requests()
    run_tap(config, state=first.final_state)
    expected = (mark - timedelta(hours=6)).replace(microsecond=0)
    assert search_froms(snyk_api) == [expected.strftime("%Y-%m-%dT%H:%M:%SZ")]


def test_lookback_never_reaches_before_start_date(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [{"created": stamp(NOW - timedelta(hours=2)), "event": "x"}])
    start_date = NOW - timedelta(hours=3)
    config = tap_config(snyk_api, lookback_hours=48, start_date=start_date.isoformat())
    first = run_tap(config)
    snyk_api.reset_requests()
    run_tap(config, state=first.final_state)
    assert search_froms(snyk_api) == [start_date.strftime("%Y-%m-%dT%H:%M:%SZ")]


def test_re_read_events_do_not_move_the_bookmark_back(snyk_api: FakeSnyk) -> None:
    events = make_events(30, start=NOW - timedelta(hours=10), org_id=ORG_A)
    snyk_api.add_org_events(ORG_A, events)
    config = tap_config(snyk_api, lookback_hours=24)
    first = run_tap(config)
    second = run_tap(config, state=first.final_state)
    assert second.exit_code == 0
    assert len(second.records("org_audit_logs")) == len(visible(events))  # all re-read
    for state in second.states:
        assert bookmark(state, "org_audit_logs", "org_id", ORG_A) in (
            None,
            bookmark(first.final_state, "org_audit_logs", "org_id", ORG_A),
        )


def test_full_then_incremental_runs_deliver_every_event_exactly_once_by_key(
    snyk_api: FakeSnyk,
) -> None:
    """New and late events arrive between runs; a table keyed on event_id ends with each once."""
    config = tap_config(snyk_api, org_ids=[ORG_A], group_ids=[GROUP], page_size=9)
    published: list[dict] = []

    def publish(org_events: list[dict], group_events: list[dict]) -> None:
        snyk_api.add_org_events(ORG_A, org_events)
        snyk_api.add_group_events(GROUP, group_events)
        published.extend(org_events + group_events)

    publish(
        make_events(150, start=NOW - timedelta(days=20), org_id=ORG_A, seed=11),
        make_events(40, start=NOW - timedelta(days=20), group_id=GROUP, seed=12),
    )
    table: dict[str, dict] = {}
    state = None
    for round_ in range(3):
        run = run_tap(config, state=state)
        assert run.exit_code == 0
        for stream in ("org_audit_logs", "group_audit_logs"):
            for record in run.records(stream):
                table[record["event_id"]] = record  # what an upserting loader does
        state = run.final_state
        newest = max(r["created"] for r in table.values())
        newest_time = datetime.fromisoformat(newest[:-1]).replace(tzinfo=timezone.utc)
        # Between runs: new events after the bookmark, and late ones published now but
        # created up to 20 hours before it (inside the 24-hour lookback), some sharing its
        # exact timestamp.
        publish(
            make_events(
                15, start=newest_time + timedelta(seconds=1), org_id=ORG_A, seed=20 + round_
            )
            + make_events(
                6, start=newest_time - timedelta(hours=20), org_id=ORG_A, seed=30 + round_
            )
            + make_events(3, start=newest_time, step_ms=0, org_id=ORG_A, seed=40 + round_),
            make_events(
                4, start=newest_time - timedelta(hours=3), group_id=GROUP, seed=50 + round_
            ),
        )
    final = run_tap(config, state=state)
    for stream in ("org_audit_logs", "group_audit_logs"):
        for record in final.records(stream):
            table[record["event_id"]] = record

    expected = sorted(identity(e) for e in visible(published))
    loaded = sorted(identity(r) for r in table.values())
    assert loaded == expected


def test_a_bookmark_set_by_hand_in_another_format_is_read_as_its_instant(
    snyk_api: FakeSnyk,
) -> None:
    mark = NOW - timedelta(hours=3)
    snyk_api.add_org_events(
        ORG_A,
        [
            {"created": stamp(mark + timedelta(milliseconds=500)), "event": "a"},
            {"created": stamp(mark + timedelta(hours=1)), "event": "b"},
        ],
    )
    hand_set = {  # as `meltano state set` might be given it: whole seconds, an offset
        "bookmarks": {
            "org_audit_logs": {
                "partitions": [
                    {
                        "context": {"org_id": ORG_A},
                        "replication_key": "created",
                        "replication_key_value": mark.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                    }
                ]
            }
        }
    }
    run = run_tap(tap_config(snyk_api, lookback_hours=0), state=hand_set)
    assert run.exit_code == 0
    assert [r["event"] for r in run.records("org_audit_logs")] == ["a", "b"]
    assert (
        bookmark(run.final_state, "org_audit_logs", "org_id", ORG_A)
        == run.records("org_audit_logs")[-1]["created"]
    )


def test_a_bookmark_past_end_date_asks_nothing(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [{"created": stamp(NOW - timedelta(hours=1)), "event": "a"}])
    first = run_tap(tap_config(snyk_api, lookback_hours=0))
    snyk_api.reset_requests()
    end = (NOW - timedelta(hours=2)).isoformat()
    again = run_tap(tap_config(snyk_api, lookback_hours=0, end_date=end), state=first.final_state)
    assert again.exit_code == 0
    assert search_froms(snyk_api) == []


def test_an_event_dated_in_the_future_cannot_carry_the_bookmark_past_the_run(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    snyk_api.add_org_events(
        ORG_A,
        [
            {"created": stamp(NOW - timedelta(hours=2)), "event": "a"},
            {"created": "2099-01-01T00:00:00.000Z", "event": "from-the-future"},
        ],
    )
    config = tap_config(snyk_api, lookback_hours=0)
    with caplog.at_level(logging.WARNING):
        first = run_tap(config)
    assert first.exit_code == 0
    assert [r["event"] for r in first.records("org_audit_logs")] == ["a", "from-the-future"]
    mark = bookmark(first.final_state, "org_audit_logs", "org_id", ORG_A)
    assert mark is not None
    assert mark < "2099"
    assert datetime.fromisoformat(mark[:-1] + "+00:00") <= datetime.now(timezone.utc)
    assert any(
        r.levelno == logging.WARNING
        and f"organization {ORG_A}" in r.getMessage()
        and "2099-01-01T00:00:00.000000Z" in r.getMessage()
        for r in caplog.records
    )
    # An event Snyk publishes after that run still comes in the next one.
    snyk_api.add_org_events(ORG_A, [{"created": stamp(datetime.now(timezone.utc)), "event": "b"}])
    second = run_tap(config, state=first.final_state)
    assert "b" in [r["event"] for r in second.records("org_audit_logs")]


def hand_set(value: object) -> dict:
    """A state as `meltano state set` might be given it, for org A."""
    partition = {"context": {"org_id": ORG_A}, "replication_key": "created"}
    return {
        "bookmarks": {
            "org_audit_logs": {"partitions": [{**partition, "replication_key_value": value}]}
        }
    }


def test_a_bookmark_set_by_hand_in_the_future_is_brought_back_to_the_run(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    snyk_api.add_org_events(ORG_A, [{"created": stamp(NOW - timedelta(hours=1)), "event": "a"}])
    with caplog.at_level(logging.WARNING):
        run = run_tap(
            tap_config(snyk_api, lookback_hours=2), state=hand_set("2099-01-01T00:00:00Z")
        )
    assert run.exit_code == 0
    assert [r["event"] for r in run.records("org_audit_logs")] == ["a"]
    [asked] = search_froms(snyk_api)
    assert asked < stamp(NOW)
    assert bookmark(run.final_state, "org_audit_logs", "org_id", ORG_A) < "2099"
    assert any(
        f"organization {ORG_A}" in r.getMessage() and "2099-01-01T00:00:00Z" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


def test_a_bookmark_with_an_offset_is_sent_as_its_utc_instant(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    run = run_tap(
        tap_config(snyk_api, lookback_hours=0), state=hand_set("2026-11-20T10:00:00+02:00")
    )
    assert run.exit_code == 0
    assert search_froms(snyk_api) == ["2026-11-20T08:00:00Z"]


@pytest.mark.parametrize(
    ("state", "where"),
    [
        ([1, 2], "the state is a list, not a JSON object"),
        ({"bookmarks": []}, "`bookmarks` is a list"),
        ({"bookmarks": {"org_audit_logs": "x"}}, "`bookmarks.org_audit_logs` is a string"),
        (
            {"bookmarks": {"org_audit_logs": {"partitions": {}}}},
            "`bookmarks.org_audit_logs.partitions` is an object, not a list",
        ),
        (
            {"bookmarks": {"org_audit_logs": {"partitions": [{"org_id": ORG_A}]}}},
            "`bookmarks.org_audit_logs.partitions[0]` is not an object with a `context`",
        ),
        (
            hand_set("yesterday"),
            "`bookmarks.org_audit_logs.partitions[0].replication_key_value` is 'yesterday', "
            "not a timestamp",
        ),
        (hand_set(1700000000), "replication_key_value` is 1700000000, not a timestamp"),
    ],
)
def test_an_unusable_state_stops_the_run_in_one_line_before_any_request(
    snyk_api: FakeSnyk, tmp_path: Path, state: object, where: str
) -> None:
    snyk_api.add_org_events(ORG_A, [])
    result = run_cli(tmp_path, tap_config(snyk_api), state=json.dumps(state))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "state handed to tap-snyk" in line]
    assert where in line
    assert "meltano state set" in line
    assert result.stdout == ""
    assert snyk_api.requests == []


def test_a_state_file_that_is_not_json_stops_the_run_in_one_line(
    snyk_api: FakeSnyk, tmp_path: Path
) -> None:
    result = run_cli(tmp_path, tap_config(snyk_api), state='{"bookmarks": {')
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "The state handed to tap-snyk is unusable: the state file is not JSON" in result.stderr
    assert snyk_api.requests == []


def run_cli(tmp_path: Path, config: dict, *, state: str) -> subprocess.CompletedProcess[str]:
    """`tap-snyk --config … --state …`, as Meltano runs it."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "state.json").write_text(state)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tap_snyk.tap",
            "--config",
            str(tmp_path / "config.json"),
            "--state",
            str(tmp_path / "state.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

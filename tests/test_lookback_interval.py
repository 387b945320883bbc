"""`lookback_interval_minutes`: a partition re-reads its lookback window at most once per interval.

Between sweeps a run reads only from the bookmark; when each partition last swept is kept in its
state partition, recorded only once the sweep is complete.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fake_snyk import FakeSnyk, Fault, make_events
from tap_snyk.settings import SettingsError, SnykSettings
from tests.conftest import ORG_A, ORG_B, TOKEN, bookmark, run_tap, tap_config
from tests.meltano_project import meltano_env, run_meltano

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SWEPT_AT = "lookback_swept_at"


def visible(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] != "api.access"]


def identity(event: dict) -> tuple:
    """What tells two fake events apart (the fake's content carries a serial number)."""
    return (event["created"][:23], event["event"], repr(event.get("content")))


def partition(state: dict[str, Any], org_id: str) -> dict[str, Any]:
    """The state partition of one org of org_audit_logs."""
    partitions = state["bookmarks"]["org_audit_logs"]["partitions"]
    return next(p for p in partitions if p["context"] == {"org_id": org_id})


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def aged(state: dict[str, Any], minutes: float, *org_ids: str) -> dict[str, Any]:
    """The state as a run `minutes` later than its sweeps sees it."""
    older = copy.deepcopy(state)
    for org_id in org_ids:
        entry = partition(older, org_id)
        entry[SWEPT_AT] = (moment(entry[SWEPT_AT]) - timedelta(minutes=minutes)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
    return older


def searches(api: FakeSnyk, org_id: str) -> list[dict[str, list[str]]]:
    return [r.query for r in api.requests if r.path == f"/rest/orgs/{org_id}/audit_logs/search"]


def whole_seconds(value: str, less: timedelta = timedelta(0)) -> str:
    """A bookmark less a lookback as the tap sends it in `from`: floored to whole seconds."""
    return (moment(value) - less).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_run_a_minute_after_a_sweep_costs_at_most_two_requests_a_partition_and_misses_nothing(
    snyk_api: FakeSnyk,
) -> None:
    # Busy partitions: 3,000 events in 18 hours, 30 pages of the 24-hour lookback each.
    orgs = (ORG_A, ORG_B)
    for seed, org_id in enumerate(orgs):
        snyk_api.add_org_events(
            org_id,
            make_events(3000, start=NOW - timedelta(hours=20), step_ms=43_000, org_id=org_id,
                        seed=seed),
        )  # fmt: skip
    config = tap_config(snyk_api, org_ids=list(orgs), lookback_interval_minutes=60)
    first = run_tap(config)
    assert first.exit_code == 0
    for org_id in orgs:  # the first read, from start_date, counts as a sweep
        assert moment(partition(first.final_state, org_id)[SWEPT_AT]) >= NOW
    new = {
        org_id: make_events(40, start=NOW - timedelta(minutes=50), step_ms=30_000, org_id=org_id,
                            seed=10 + seed)
        for seed, org_id in enumerate(orgs)
    }  # fmt: skip
    for org_id, events in new.items():
        snyk_api.add_org_events(org_id, events)
    snyk_api.reset_requests()

    second = run_tap(config, state=aged(first.final_state, 1, *orgs))

    assert second.exit_code == 0
    delivered = {identity(r) for r in second.records("org_audit_logs")}
    for org_id in orgs:
        asked = searches(snyk_api, org_id)
        assert 1 <= len(asked) <= 2
        mark = bookmark(first.final_state, "org_audit_logs", "org_id", org_id)
        assert asked[0]["from"] == [whole_seconds(mark)]  # the bookmark, inclusive
        assert {identity(e) for e in visible(new[org_id])} <= delivered
    # Not a sweep: when the partitions last swept stays as it was, through the SDK's finalising.
    for org_id in orgs:
        swept = partition(aged(first.final_state, 1, *orgs), org_id)[SWEPT_AT]
        assert partition(second.final_state, org_id)[SWEPT_AT] == swept


def test_a_sweep_catches_every_late_event_once(snyk_api: FakeSnyk) -> None:
    backlog = make_events(500, start=NOW - timedelta(hours=12), step_ms=70_000, org_id=ORG_A)
    snyk_api.add_org_events(ORG_A, backlog)
    config = tap_config(snyk_api, lookback_interval_minutes=60)
    table: dict[str, dict] = {}  # what an upserting loader holds, by event_id

    def load(run_records: list[dict]) -> None:
        for record in run_records:
            table[record["event_id"]] = record

    first = run_tap(config)
    load(first.records("org_audit_logs"))
    mark = bookmark(first.final_state, "org_audit_logs", "org_id", ORG_A)
    # Published now: late events created 5 hours before the bookmark, and new ones after it.
    late = make_events(9, start=moment(mark) - timedelta(hours=5), org_id=ORG_A, seed=7)
    new = make_events(6, start=moment(mark) + timedelta(seconds=1), org_id=ORG_A, seed=8)
    snyk_api.add_org_events(ORG_A, late + new)

    between = run_tap(config, state=first.final_state)  # within the interval: no sweep
    load(between.records("org_audit_logs"))
    got = {identity(r) for r in between.records("org_audit_logs")}
    assert {identity(e) for e in visible(new)} <= got
    assert not {identity(e) for e in visible(late)} & got  # left for the next sweep

    snyk_api.reset_requests()
    sweep = run_tap(config, state=aged(between.final_state, 61, ORG_A))
    load(sweep.records("org_audit_logs"))

    later_mark = bookmark(between.final_state, "org_audit_logs", "org_id", ORG_A)
    assert searches(snyk_api, ORG_A)[0]["from"] == [whole_seconds(later_mark, timedelta(hours=24))]
    ids = [r["event_id"] for r in sweep.records("org_audit_logs")]
    assert len(ids) == len(set(ids))
    assert {identity(e) for e in visible(late)} <= {
        identity(r) for r in sweep.records("org_audit_logs")
    }
    expected = sorted(identity(e) for e in visible(backlog + late + new))
    assert sorted(identity(r) for r in table.values()) == expected
    assert moment(partition(sweep.final_state, ORG_A)[SWEPT_AT]) >= NOW


def test_by_default_every_run_rereads_the_lookback_and_the_state_is_unchanged(
    snyk_api: FakeSnyk,
) -> None:
    snyk_api.add_org_events(ORG_A, make_events(50, start=NOW - timedelta(hours=6), org_id=ORG_A))
    first = run_tap(tap_config(snyk_api, lookback_interval_minutes=60))
    snyk_api.reset_requests()
    # A state that says the partition swept a minute ago does not matter with the default 0.
    again = run_tap(tap_config(snyk_api), state=aged(first.final_state, 1, ORG_A))
    mark = bookmark(first.final_state, "org_audit_logs", "org_id", ORG_A)
    assert searches(snyk_api, ORG_A)[0]["from"] == [whole_seconds(mark, timedelta(hours=24))]
    fresh = run_tap(tap_config(snyk_api))
    assert set(partition(fresh.final_state, ORG_A)) == {
        "context",
        "replication_key",
        "replication_key_value",
    }
    assert again.exit_code == fresh.exit_code == 0


def test_a_sweep_that_fails_midway_is_not_recorded_and_the_next_run_sweeps(
    snyk_api: FakeSnyk,
) -> None:
    snyk_api.add_org_events(
        ORG_A, make_events(400, start=NOW - timedelta(hours=10), step_ms=80_000, org_id=ORG_A)
    )
    config = tap_config(snyk_api, lookback_interval_minutes=60)
    first = run_tap(config)
    due = aged(first.final_state, 61, ORG_A)
    # The sweep's second page is refused: the run ends, as a `kill -9` would, part-way.
    snyk_api.faults.append(Fault(status=400, path="cursor="))
    broken = run_tap(config, state=due)
    assert broken.exit_code == 1
    assert broken.states
    for state in broken.states:
        assert partition(state, ORG_A)[SWEPT_AT] == partition(due, ORG_A)[SWEPT_AT]
    snyk_api.reset_requests()
    run_tap(config, state=broken.final_state)
    mark = bookmark(broken.final_state, "org_audit_logs", "org_id", ORG_A)
    assert searches(snyk_api, ORG_A)[0]["from"] == [whole_seconds(mark, timedelta(hours=24))]


@pytest.mark.parametrize(
    "swept_at",
    ["not a time", 12345, None, "2999-01-01T00:00:00Z", "2024-05-01"],
    ids=["garbage", "number", "null", "future", "date-only-long-ago"],
)
def test_a_missing_or_hand_edited_sweep_time_means_sweep(
    snyk_api: FakeSnyk, swept_at: object
) -> None:
    snyk_api.add_org_events(ORG_A, make_events(30, start=NOW - timedelta(hours=3), org_id=ORG_A))
    config = tap_config(snyk_api, lookback_interval_minutes=60)
    state = run_tap(config).final_state
    partition(state, ORG_A)[SWEPT_AT] = swept_at
    snyk_api.reset_requests()
    run = run_tap(config, state=state)
    assert run.exit_code == 0
    mark = bookmark(state, "org_audit_logs", "org_id", ORG_A)
    assert searches(snyk_api, ORG_A)[0]["from"] == [whole_seconds(mark, timedelta(hours=24))]
    assert moment(partition(run.final_state, ORG_A)[SWEPT_AT]) >= NOW


def test_meltano_keeps_when_each_partition_swept_from_run_to_run(
    snyk_api: FakeSnyk, tmp_path: Path
) -> None:
    env = meltano_env(
        tmp_path,
        TARGET_DUCKDB_PATH=str(tmp_path / "tap_snyk.duckdb"),
        TAP_SNYK_API_URL=snyk_api.url,
        TAP_SNYK_API_TOKEN=TOKEN,
        TAP_SNYK_ORG_IDS=json.dumps([ORG_A]),
        TAP_SNYK_LOOKBACK_INTERVAL_MINUTES="60",
    )
    snyk_api.add_org_events(ORG_A, make_events(120, start=NOW - timedelta(hours=8), org_id=ORG_A))

    def saved_state() -> dict[str, Any]:
        state_id = "dev:tap-snyk-to-target-duckdb"
        return json.loads(run_meltano(env, "state", "get", state_id).stdout)["singer_state"]

    run_meltano(env, "run", "tap-snyk", "target-duckdb")
    first = saved_state()
    assert moment(partition(first, ORG_A)[SWEPT_AT]) >= NOW
    snyk_api.reset_requests()
    run_meltano(env, "run", "tap-snyk", "target-duckdb")
    mark = bookmark(first, "org_audit_logs", "org_id", ORG_A)
    assert searches(snyk_api, ORG_A)[0]["from"] == [whole_seconds(mark)]  # no sweep
    assert partition(saved_state(), ORG_A)[SWEPT_AT] == partition(first, ORG_A)[SWEPT_AT]


def settings_errors(**config: object) -> str:
    with pytest.raises(SettingsError) as raised:
        SnykSettings.from_config({"api_token": "t", "org_ids": [ORG_A], **config}, now=NOW)
    return "\n".join(raised.value.errors)


def test_the_interval_defaults_to_zero_and_is_read_in_minutes() -> None:
    def interval(**config: object) -> timedelta:
        settings = SnykSettings.from_config(
            {"api_token": "t", "org_ids": [ORG_A], **config}, now=NOW
        )
        return settings.lookback_interval

    assert interval() == timedelta(0)
    assert interval(lookback_interval_minutes=60) == timedelta(minutes=60)
    assert interval(lookback_interval_minutes=1439) == timedelta(minutes=1439)


@pytest.mark.parametrize("value", [-1, 1.5, "60", True])
def test_an_interval_that_is_not_a_whole_number_of_minutes_is_refused(value: object) -> None:
    assert "`lookback_interval_minutes` must be a whole number" in settings_errors(
        lookback_interval_minutes=value
    )


def test_an_interval_as_long_as_the_lookback_is_refused() -> None:
    message = settings_errors(lookback_interval_minutes=1440)  # lookback_hours 24
    assert "`lookback_interval_minutes` (1440) must be less than `lookback_hours`" in message
    assert "no lookback window" in settings_errors(lookback_hours=0, lookback_interval_minutes=5)

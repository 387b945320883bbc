"""Time windows: a busy org's search split into windows read side by side, each event once."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from fake_snyk import FakeSnyk, format_created, make_events, uuid_for
from tap_snyk.windows import MAX_WINDOWS, split_after_first_page
from tests.conftest import ORG_A, ORG_B, in_any_partition_order, run_tap, tap_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SEARCH = "/audit_logs/search"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- where the windows go ------------------------------------------------------------------------


def test_a_busy_search_is_split_into_whole_second_windows_after_its_first_page() -> None:
    created = [at(10 + n * 0.5) for n in range(100)]  # 100 events in 50 s, then more to come
    split = split_after_first_page(created, at(0), None, at(10 + 50 * 3600))
    assert split is not None
    assert split.starts[0] == at(59)  # the second of the page's last event
    assert all(start.microsecond == 0 for start in split.starts)
    assert split.starts == sorted(set(split.starts))
    assert 1 < len(split.starts) <= MAX_WINDOWS
    assert split.kept == sum(moment < at(59) for moment in created)


def test_events_of_the_boundary_second_are_left_to_the_first_window() -> None:
    created = [at(n) for n in range(98)] + [at(97.2), at(97.9)]
    split = split_after_first_page(created, at(0), at(100_000), at(200_000))
    assert split is not None
    assert split.starts[0] == at(97)
    assert split.kept == 97  # at(97), at(97.2) and at(97.9) are read again by the first window


@pytest.mark.parametrize(
    ("created", "end"),
    [
        ([at(0.1 + n / 1000) for n in range(100)], None),  # the page lies within `from`'s second
        ([at(n) for n in range(100)], at(120)),  # what is left is about a page
        ([at(5)], None),  # one event
        ([at(9), at(5)], None),  # not oldest first: read as it comes
    ],
    ids=["one-second", "little-left", "one-event", "unsorted"],
)
def test_a_search_that_would_not_pay_is_not_split(
    created: list[datetime], end: datetime | None
) -> None:
    assert split_after_first_page(created, at(0), end, at(10 * 86400)) is None


@pytest.mark.parametrize("windows", [1, 2, 4, 8])
def test_a_cut_makes_the_windows_asked_for_each_sized_by_the_page(windows: int) -> None:
    created = [at(n) for n in range(100)]  # a page spans 99 s: a window of 8 pages is 792 s
    split = split_after_first_page(created, at(0), None, at(86400), windows=windows)
    assert split is not None
    assert split.starts[0] == at(99)
    assert len(split.starts) == windows + 1  # the windows, then the rest from the last start
    sizes = {(b - a).total_seconds() for a, b in itertools.pairwise(split.starts)}
    assert sizes == {792}


def test_a_cut_never_makes_more_than_max_windows_nor_leaves_the_rest_empty() -> None:
    created = [at(n) for n in range(100)]
    many = split_after_first_page(created, at(0), None, at(86400), windows=64)
    assert many is not None
    assert len(many.starts) == MAX_WINDOWS + 1
    # 2.5 windows' worth left: two windows, and a rest of half a window.
    end = at(99 + 792 * 2.5)
    few = split_after_first_page(created, at(0), end, at(86400), windows=8)
    assert few is not None
    assert few.starts == [at(99), at(99 + 792), at(99 + 2 * 792)]
    assert few.starts[-1] < end


def test_windows_end_at_the_search_s_own_end() -> None:
    created = [at(n) for n in range(100)]
    split = split_after_first_page(created, at(0), at(86400), at(10 * 86400))
    assert split is not None
    assert split.starts[-1] < at(86400)


# -- the tap reading a busy org in windows -------------------------------------------------------


def busy_org() -> list[dict[str, Any]]:
    """An org whose first page ends inside five identical events of one millisecond."""
    start = NOW - timedelta(days=4)
    head = make_events(18, start=start, org_id=ORG_A, seed=7, step_ms=1000)
    tie_at = datetime.fromisoformat(head[-1]["created"].replace("Z", "+00:00"))
    tie_at += timedelta(milliseconds=300)
    tie = [
        {"content": {"same": True}, "created": format_created(tie_at), "event": "org.user.add"}
    ] * 5
    rest = make_events(1200, start=tie_at + timedelta(seconds=1), org_id=ORG_A, seed=8)
    return head + tie + rest


@pytest.fixture
def busy_api() -> Any:
    with FakeSnyk(latency=0.02) as api:
        api.add_org_events(ORG_A, busy_org())
        api.add_org_events(ORG_B, make_events(5, start=NOW - timedelta(days=1), org_id=ORG_B))
        yield api


def windowed_config(api: FakeSnyk, **settings: Any) -> dict[str, Any]:
    return tap_config(
        api, org_ids=[ORG_A, ORG_B], page_size=20, max_requests_per_minute=1620, **settings
    )


def searches(api: FakeSnyk, org_id: str) -> list[Any]:
    return [r for r in api.requests if r.path.endswith(SEARCH) and org_id in r.path]


def test_windows_give_exactly_the_records_of_one_long_search(busy_api: FakeSnyk) -> None:
    sequential = run_tap(windowed_config(busy_api, concurrent_requests=1))
    # One search (and one look at the second whose identical events straddle a page boundary).
    assert len({r.query["from"][0] for r in searches(busy_api, ORG_A)}) <= 2
    busy_api.reset_requests()
    windowed = run_tap(windowed_config(busy_api, concurrent_requests=8))
    assert windowed.exit_code == sequential.exit_code == 0
    assert len({r.query["from"][0] for r in searches(busy_api, ORG_A)}) > 5  # windows were read
    assert windowed.by_partition("org_audit_logs") == sequential.by_partition("org_audit_logs")
    ids = [r["event_id"] for r in windowed.records("org_audit_logs")]
    assert len(ids) == len(set(ids))
    assert in_any_partition_order(windowed.final_state) == in_any_partition_order(
        sequential.final_state
    )


def test_a_quiet_org_still_costs_one_request(busy_api: FakeSnyk) -> None:
    run = run_tap(windowed_config(busy_api, concurrent_requests=8))
    assert run.exit_code == 0
    assert len(searches(busy_api, ORG_B)) == 1


def test_windows_respect_end_date(busy_api: FakeSnyk) -> None:
    end = NOW - timedelta(days=3)
    config = windowed_config(busy_api, end_date=format_created(end))
    sequential = run_tap({**config, "concurrent_requests": 1})
    busy_api.reset_requests()
    windowed = run_tap({**config, "concurrent_requests": 8})
    assert windowed.by_partition("org_audit_logs") == sequential.by_partition("org_audit_logs")
    ends = [
        datetime.fromisoformat(r.query["to"][0].replace("Z", "+00:00"))
        for r in searches(busy_api, ORG_A)
    ]
    assert ends
    assert max(ends) == end
    assert all(r["created"] < format_created(end) for r in windowed.records("org_audit_logs"))


# -- what windows cost: about what one long search costs, and every worker busy when busy ------


def burst_then_quiet(org_id: str, seed: int) -> list[dict[str, Any]]:
    """150 events in an hour (a project import), then 60 over the next 88 days."""
    start = NOW - timedelta(days=89)
    burst = make_events(150, start=start, org_id=org_id, seed=seed, step_ms=24_000)
    quiet = make_events(
        60,
        start=start + timedelta(hours=2),
        org_id=org_id,
        seed=seed + 1,
        step_ms=88 * 86_400_000 // 60,
    )
    return burst + quiet


def busy_at_both_ends(org_id: str, seed: int) -> list[dict[str, Any]]:
    """150 events in the first hour of 89 days, and 150 in the last."""
    first = make_events(
        150, start=NOW - timedelta(days=89), org_id=org_id, seed=seed, step_ms=24_000
    )
    last = make_events(
        150, start=NOW - timedelta(hours=2), org_id=org_id, seed=seed + 1, step_ms=24_000
    )
    return first + last


@pytest.mark.parametrize("shape", [burst_then_quiet, busy_at_both_ends])
def test_a_bursty_or_sparse_org_costs_about_what_reading_it_page_after_page_costs(
    shape: Any,
) -> None:
    orgs = [uuid_for(f"bursty-{n}") for n in range(4)]
    with FakeSnyk(latency=0.01) as api:
        for number, org_id in enumerate(orgs):
            api.add_org_events(org_id, shape(org_id, seed=10 * number))
        config = tap_config(api, org_ids=orgs, page_size=100, max_requests_per_minute=1620)
        sequential = run_tap({**config, "concurrent_requests": 1})
        one_by_one = len([r for r in api.requests if r.path.endswith(SEARCH)])
        api.reset_requests()
        side_by_side = run_tap({**config, "concurrent_requests": 8})
        requests = len([r for r in api.requests if r.path.endswith(SEARCH)])
    assert side_by_side.exit_code == sequential.exit_code == 0
    assert side_by_side.by_partition("org_audit_logs") == sequential.by_partition("org_audit_logs")
    loaded = [e for n, o in enumerate(orgs) for e in shape(o, 10 * n) if e["event"] != "api.access"]
    assert len(side_by_side.records("org_audit_logs")) == len(loaded)  # api.access: excluded
    # At most one request more per org: the partly empty last page of the one window cut off.
    assert requests <= one_by_one + len(orgs)


def test_a_busy_org_alone_fills_every_worker_and_reads_each_event_once() -> None:
    # 400 ms an answer: the rate limit (27 a second) leaves room for 8 in flight.
    with FakeSnyk(latency=0.4) as api:
        events = make_events(3000, start=NOW - timedelta(days=30), org_id=ORG_A, seed=3)
        api.add_org_events(ORG_A, events)
        config = tap_config(api, page_size=50, max_requests_per_minute=1620)
        run = run_tap({**config, "concurrent_requests": 8})
        froms = [r.query["from"][0] for r in searches(api, ORG_A)]
    assert run.exit_code == 0
    ids = [r["event_id"] for r in run.records("org_audit_logs")]
    assert len(ids) == len(set(ids)) == len([e for e in events if e["event"] != "api.access"])
    assert api.peak_in_flight == 8
    # Cuts of 1, 2, 4, then 8 windows: more than 15 searches, each a span of its own.
    assert len(set(froms)) > 15

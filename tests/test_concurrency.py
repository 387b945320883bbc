"""Concurrent reading: workers fetch pages, the main thread writes them, in order, once.

Every test runs the tap against the fake API over real HTTP, most with delayed answers so that
requests really overlap. Speed itself is the benchmark's business, never asserted here.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fake_snyk import SNYK_RATE_LIMITS, FakeSnyk, Fault, make_events, uuid_for
from tap_snyk.fetching import PAGE_ITEMS, FetchedPage, PageFetcher
from tap_snyk.tap import TapSnyk
from tests.conftest import (
    GROUP,
    ORG_A,
    ORG_B,
    TOKEN,
    bookmark,
    in_any_partition_order,
    run_tap,
    tap_config,
    unpaced,
)

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SEARCH = "/audit_logs/search"
ORGS = [uuid_for(f"busy-org-{n}") for n in range(6)]


def event_ids(run: Any, stream: str = "org_audit_logs") -> list[str]:
    return [r["event_id"] for r in run.records(stream)]


@pytest.fixture
def slow_api() -> Iterator[FakeSnyk]:
    """A fake API that takes 100 ms an answer, with six orgs in a group and a group log."""
    with FakeSnyk(latency=0.1) as api:
        start = NOW - timedelta(days=3)
        for number, org_id in enumerate(ORGS):
            api.add_org_events(org_id, make_events(40 + 15 * number, start=start, seed=number))
        api.add_group_orgs(GROUP, ORGS)
        api.add_group_events(GROUP, make_events(50, start=start, group_id=GROUP, seed=99))
        yield api


def config_for(api: FakeSnyk, **settings: Any) -> dict[str, Any]:
    # 1620 a minute: a request every 37 ms, so that answers taking 100 ms overlap.
    return tap_config(
        api,
        org_ids=ORGS,
        group_ids=[GROUP],
        page_size=10,
        max_requests_per_minute=1620,
        **settings,
    )


def test_reading_ahead_has_several_requests_in_flight(slow_api: FakeSnyk) -> None:
    run = run_tap(config_for(slow_api, concurrent_requests=4))
    assert run.exit_code == 0
    assert 1 < slow_api.peak_in_flight <= 4


def test_one_concurrent_request_reads_one_page_after_another(slow_api: FakeSnyk) -> None:
    run = run_tap(config_for(slow_api, concurrent_requests=1))
    assert run.exit_code == 0
    assert slow_api.peak_in_flight == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("tap-snyk-fetch")]


def test_concurrent_reading_writes_exactly_what_sequential_reading_writes(
    slow_api: FakeSnyk,
) -> None:
    sequential = run_tap(config_for(slow_api, concurrent_requests=1))
    concurrent = run_tap(config_for(slow_api, concurrent_requests=8))
    assert concurrent.exit_code == sequential.exit_code == 0
    # Partitions are written as they are ready, each one's records in order.
    for stream in ("org_audit_logs", "group_audit_logs", "projects"):
        assert concurrent.by_partition(stream) == sequential.by_partition(stream), stream
    assert concurrent.records("organizations") == sequential.records("organizations")
    ids = event_ids(concurrent)
    assert len(ids) == len(set(ids)) > 0
    assert sorted(ids) == sorted(event_ids(sequential))
    assert in_any_partition_order(concurrent.final_state) == in_any_partition_order(
        sequential.final_state
    )


def test_every_singer_message_is_written_by_the_main_thread(slow_api: FakeSnyk) -> None:
    tap = unpaced(
        TapSnyk(config=config_for(slow_api, concurrent_requests=8), parse_env_config=False)
    )
    writer = tap.message_writer
    write = writer.write_message
    threads: set[str] = set()

    def recording(message: Any) -> None:
        threads.add(threading.current_thread().name)
        write(message)

    writer.write_message = recording  # type: ignore[method-assign]
    with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO())):
        tap.run_sync()
    assert threads == {threading.main_thread().name}
    assert slow_api.peak_in_flight > 1


def test_an_org_that_fails_ends_the_run_after_every_other_org_of_its_stream_was_written(
    slow_api: FakeSnyk,
) -> None:
    clean = run_tap(config_for(slow_api, concurrent_requests=1))
    slow_api.reset_requests()
    failing = ORGS[0]  # first in the order: it holds back none of the orgs after it
    # Its first page is read; every later one fails, retried until the retries give up.
    slow_api.faults.append(Fault(status=503, path=f"{failing}{SEARCH}?cursor=", times=10_000))
    run = run_tap(config_for(slow_api, concurrent_requests=8, max_retry_seconds=1))
    assert run.exit_code == 1
    assert run.error is not None
    assert run.error.startswith(f"Snyk kept failing for organization {failing} (Snyk answered 503")
    written, complete = run.by_partition("org_audit_logs"), clean.by_partition("org_audit_logs")
    assert list(written)[-1] == failing  # written last, up to the failure
    assert written[failing] == complete[failing][: len(written[failing])]
    assert 0 < len(written[failing]) < len(complete[failing])
    for org_id in ORGS[1:]:
        assert written[org_id] == complete[org_id]  # the others, in full
    for org_id, records in written.items():
        last = records[-1]["created"]
        assert bookmark(run.final_state, "org_audit_logs", "org_id", org_id) == last
    assert run.records("projects") == []  # the run ended with the failure: no later stream


#: One org answers this slowly; eight others at once.
SLOW_ANSWER = 2.5
FAST_ORGS = [uuid_for(f"fast-org-{n}") for n in range(8)]


def only(config: dict[str, Any], stream: str) -> dict[str, Any]:
    """A catalog of the tap's streams with `stream` alone selected."""
    catalog = copy.deepcopy(TapSnyk(config=config, parse_env_config=False).catalog_dict)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] == stream
    return catalog


@pytest.mark.parametrize(
    ("stream", "path"), [("org_audit_logs", SEARCH), ("org_memberships", "/memberships")]
)
def test_a_slow_org_holds_back_none_of_the_fast_ones(stream: str, path: str) -> None:
    slow = ORGS[0]
    with FakeSnyk() as api:
        for number, org_id in enumerate([slow, *FAST_ORGS]):
            start = NOW - timedelta(days=2)
            api.add_org_events(org_id, make_events(250, start=start, org_id=org_id, seed=number))
            api.add_org_members(org_id, many_members(org_id, 250))
        # Two workers keep 16 full pages ahead at most: fewer than the fast orgs' 2 1/2 each.
        config = tap_config(
            api, org_ids=[slow, *FAST_ORGS], max_requests_per_minute=1620, concurrent_requests=2
        )
        sequential = run_tap({**config, "concurrent_requests": 1}, catalog=only(config, stream))
        api.reset_requests()
        api.scope_latency[slow] = (SLOW_ANSWER, SLOW_ANSWER)
        run = run_tap(config, catalog=only(config, stream))
    assert run.exit_code == 0
    requests = [r for r in api.requests if r.path.endswith(path)]
    slow_answered = min(r.received_at for r in requests if slow in r.path) + SLOW_ANSWER
    fast = [r for r in requests if slow not in r.path]
    assert len(fast) >= 3 * len(FAST_ORGS)
    assert all(r.received_at < slow_answered for r in fast)  # all asked before it answered
    assert list(run.by_partition(stream))[-1] == slow  # written once it answered
    assert run.by_partition(stream) == sequential.by_partition(stream)


def many_members(org_id: str, count: int) -> list[dict[str, Any]]:
    """`count` members of an org, for lookups of several pages."""
    return [
        {"user_id": uuid_for(f"{org_id}-member-{n}"), "name": f"Member {n}"} for n in range(count)
    ]


def test_a_refused_discovered_org_is_skipped_while_others_are_read_ahead(
    slow_api: FakeSnyk,
) -> None:
    slow_api.forbidden.add(ORGS[2])
    config = tap_config(slow_api, org_ids=[], group_ids=[GROUP], discover_orgs=True, page_size=10)
    run = run_tap({**config, "concurrent_requests": 8})
    assert run.exit_code == 0
    read = {r["org_id"] for r in run.records("org_audit_logs")}
    assert read == set(ORGS) - {ORGS[2]}


def test_no_429_from_a_server_with_snyks_limits_even_at_the_highest_setting() -> None:
    events = {org: make_events(60, start=NOW - timedelta(days=1), org_id=org) for org in ORGS}
    with FakeSnyk() as api:  # answers at once: unpaced, the tap would send hundreds a second
        for org_id in ORGS:
            api.add_org_events(org_id, events[org_id])
        api.rate_limits = SNYK_RATE_LIMITS
        config = tap_config(api, org_ids=ORGS, page_size=1, max_requests_per_minute=1620)
        run = run_tap({**config, "concurrent_requests": 32}, paced=True)
    assert run.exit_code == 0
    assert len(run.records("org_audit_logs")) == sum(
        e["event"] != "api.access" for org in ORGS for e in events[org]
    )
    assert api.throttled == 0
    arrivals = sorted(r.received_at for r in api.requests)
    assert len(arrivals) > 160
    busiest = max(sum(1 for t in arrivals if s <= t < s + 1.0) for s in arrivals)
    assert busiest <= 27 + 8  # 1620 a minute spread over the seconds, give or take arrival order


def test_a_429_holds_back_every_worker_for_the_wait_snyk_names(
    slow_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    clean = run_tap(config_for(slow_api, concurrent_requests=8))
    slow_api.reset_requests()
    throttled = ORGS[1]
    slow_api.faults.append(
        Fault(status=429, headers={"Retry-After": "3"}, path=f"{throttled}{SEARCH}")
    )
    with caplog.at_level(logging.WARNING):
        run = run_tap(config_for(slow_api, concurrent_requests=8))
    assert run.exit_code == 0
    assert run.by_partition("org_audit_logs") == clean.by_partition("org_audit_logs")
    met = min(r.received_at for r in slow_api.requests if throttled in r.path and SEARCH in r.path)
    # Requests already on their way may still arrive just after it; then nothing until the wait
    # is over, from any worker.
    quiet = [r for r in slow_api.requests if met + 0.5 <= r.received_at < met + 2.9]
    assert quiet == []
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retries) == 1  # only the request that met it; the others waited without one


class TenPages:
    """A stream of ten pages a partition, fetched without HTTP.

    Each page holds `items` items. Partition 0 may be `held`: it answers only once every page of
    the others was fetched (no clock: the test fails if that never happens).
    """

    name = "numbers"

    def __init__(self, partitions: int, *, items: int = PAGE_ITEMS, held: bool = False) -> None:
        self.items = items
        self.held = held
        self.others_fetched = threading.Event()
        self._pages_of_the_others = 10 * (partitions - 1)
        self._lock = threading.Lock()

    def first_page_request(self, context: Any) -> Any:
        return 0

    def get_new_paginator(self) -> None:
        return None

    def fetch_page(self, context: Any, request: Any, paginator: Any, **_: Any) -> FetchedPage:
        if context["n"] == 0 and self.held:
            assert self.others_fetched.wait(timeout=30), "the other partitions were held back"
        elif context["n"] != 0:
            with self._lock:
                self._pages_of_the_others -= 1
                if self._pages_of_the_others == 0:
                    self.others_fetched.set()
        time.sleep(0.001)
        page = FetchedPage([{"partition": context["n"], "page": request}] * self.items)
        if request < 9:
            page.next = request + 1
        return page


def write(fetcher: PageFetcher, stream: TenPages, contexts: Iterable[Any]) -> list[tuple[int, int]]:
    """Take each partition's pages in turn, as the main thread does: (partition, page) each."""
    written = []
    for context in contexts:
        pages = fetcher.take(stream, context)  # type: ignore[arg-type]
        assert pages is not None
        for items in pages:
            assert len(items) == stream.items
            written.append((items[0]["partition"], items[0]["page"]))
    return written


def test_what_is_kept_ahead_of_the_writer_is_capped() -> None:
    stream = TenPages(20)
    contexts = [{"n": n} for n in range(20)]
    with PageFetcher(4, max_items=6 * PAGE_ITEMS) as fetcher:
        for context in contexts:
            fetcher.plan(stream, context)  # type: ignore[arg-type]
        written = write(fetcher, stream, contexts)  # in the plan's order
    assert written == [(n, page) for n in range(20) for page in range(10)]
    # The cap, plus the one page the writer waits for.
    assert fetcher.peak_items <= 7 * PAGE_ITEMS


def test_a_slow_partition_holds_back_none_of_the_others_and_what_is_kept_stays_capped() -> None:
    stream = TenPages(20, held=True)
    contexts = [{"n": n} for n in range(20)]
    with PageFetcher(4, max_items=6 * PAGE_ITEMS) as fetcher:
        for context in contexts:
            fetcher.plan(stream, context)  # type: ignore[arg-type]
        written = write(fetcher, stream, fetcher.in_ready_order(stream, contexts))  # type: ignore[arg-type]
    partitions = list(dict.fromkeys(n for n, _ in written))
    assert partitions[-1] == 0  # the slow one last, once it answered
    assert sorted(partitions) == list(range(20))
    for n in partitions:
        assert [page for m, page in written if m == n] == list(range(10))  # each in order
    assert fetcher.peak_items <= 7 * PAGE_ITEMS


def test_small_pages_count_by_their_items_while_the_writer_waits() -> None:
    # The writer waits for partition 0, which answers only once the others are all fetched:
    # their 190 pages of one item each fit in a cap of ten full pages.
    stream = TenPages(20, items=1, held=True)
    contexts = [{"n": n} for n in range(20)]
    with PageFetcher(4, max_items=10 * PAGE_ITEMS) as fetcher:
        for context in contexts:
            fetcher.plan(stream, context)  # type: ignore[arg-type]
        written = write(fetcher, stream, contexts)  # partition 0 first
    assert written == [(n, page) for n in range(20) for page in range(10)]
    assert fetcher.peak_items <= 11 * PAGE_ITEMS


# -- the tap as a process ------------------------------------------------------------------------


def tap_process(
    tmp_path: Path, config: dict[str, Any], state: dict[str, Any] | None = None
) -> subprocess.Popen[bytes]:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({**config, "api_token": TOKEN}))
    command = [sys.executable, "-m", "tap_snyk", "--config", str(config_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def messages_until(process: subprocess.Popen[bytes], records: int | None) -> list[dict]:
    """Every line the tap writes, each a whole JSON message; stop reading after `records`."""
    assert process.stdout is not None
    messages, seen = [], 0
    for line in process.stdout:
        messages.append(json.loads(line))  # a torn or interleaved line fails here
        seen += messages[-1]["type"] == "RECORD"
        if records is not None and seen >= records:
            break
    return messages


@pytest.fixture
def busy_api() -> Iterator[FakeSnyk]:
    """Two orgs and a group with 12,600 events, at 10 ms an answer."""
    with FakeSnyk(latency=0.01) as api:
        start = NOW - timedelta(days=10)
        api.add_org_events(ORG_A, make_events(6000, start=start, org_id=ORG_A, seed=1))
        api.add_org_events(ORG_B, make_events(6000, start=start, org_id=ORG_B, seed=2))
        api.add_group_events(GROUP, make_events(600, start=start, group_id=GROUP, seed=3))
        yield api


def busy_config(api: FakeSnyk) -> dict[str, Any]:
    return {
        "api_url": api.url,
        "org_ids": [ORG_A, ORG_B],
        "group_ids": [GROUP],
        "lookback_hours": 0,
        "max_requests_per_minute": 1620,
        "concurrent_requests": 8,
    }


def test_a_run_killed_mid_way_and_resumed_from_its_last_state_loses_nothing(
    busy_api: FakeSnyk, tmp_path: Path
) -> None:
    config = busy_config(busy_api)
    killed = tap_process(tmp_path, config)
    # The SDK writes a STATE every 10,000 records of a stream: kill -9 a little after the first
    # one of org_audit_logs (after the group's ~580 records), in the middle of org B.
    first = messages_until(killed, records=11_200)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    last_state = [m["value"] for m in first if m["type"] == "STATE"][-1]
    resume_at = bookmark(last_state, "org_audit_logs", "org_id", ORG_B)
    assert resume_at is not None  # a resume point in the middle of a partition

    resumed = tap_process(tmp_path, config, state=last_state)
    second = messages_until(resumed, records=None)
    assert resumed.wait(timeout=120) == 0

    complete = run_tap({**config, "api_token": TOKEN})
    for stream in ("org_audit_logs", "group_audit_logs"):
        everything = {r["event_id"] for r in complete.records(stream)}
        delivered = {
            m["record"]["event_id"]
            for m in first + second
            if m["type"] == "RECORD" and m["stream"] == stream
        }
        assert delivered == everything, stream
    written_before = [
        m["record"]["created"]
        for m in first
        if m["type"] == "RECORD" and m["record"].get("org_id") == ORG_B
    ]
    assert max(written_before) >= resume_at  # the bookmark never passed what was written


def test_an_interrupted_run_ends_at_once_with_a_state(busy_api: FakeSnyk, tmp_path: Path) -> None:
    process = tap_process(tmp_path, busy_config(busy_api))
    messages_until(process, records=200)
    process.send_signal(signal.SIGTERM)
    assert process.stdout is not None
    rest = [json.loads(line) for line in process.stdout]  # whole lines to the end
    process.wait(timeout=30)  # no worker holds the process
    assert rest
    assert rest[-1]["type"] == "STATE"


@pytest.mark.parametrize("value", [0, 33, "8", True])
def test_concurrent_requests_out_of_range_is_a_setting_error(value: Any) -> None:
    with FakeSnyk() as api:
        errors = TapSnyk(
            config=tap_config(api, concurrent_requests=value),
            parse_env_config=False,
            validate_config=False,
        ).config_errors
    assert any("`concurrent_requests`" in error for error in errors), errors

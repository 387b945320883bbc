"""Faults the tap rides through (429, 5xx, resets, timeouts, bad bodies) and how it gives up."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import socketserver
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests

from fake_snyk import FakeSnyk, Fault, make_events
from tap_snyk.retries import MINUTE, RequestRateLimiter, server_wait
from tap_snyk.tap import TapSnyk
from tests.conftest import (
    GROUP,
    ORG_A,
    ORG_B,
    bookmark,
    in_any_partition_order,
    run_tap,
    tap_config,
)

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SEARCH = "/audit_logs/search"
ORG_SEARCH = f"/orgs/{ORG_A}/audit_logs/search"
IN_ORG_A = f"organization {ORG_A}"


def event_ids(run, stream: str = "org_audit_logs") -> list[str]:
    return [r["event_id"] for r in run.records(stream)]


def retry_waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The waits the tap announced before retrying."""
    return [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"trying again in ([\d.]+) s", r.getMessage()))
    ]


ORG_A_EVENTS = make_events(45, start=NOW - timedelta(days=1), org_id=ORG_A)


@pytest.fixture
def seeded(snyk_api: FakeSnyk) -> FakeSnyk:
    snyk_api.add_org_events(ORG_A, ORG_A_EVENTS)
    return snyk_api


def response_with(**headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    response.headers.update(headers)
    return response


def test_retry_after_in_seconds_is_read() -> None:
    assert server_wait(response_with(**{"Retry-After": "7"})) == 7.0


def test_retry_after_as_an_http_date_is_read() -> None:
    moment = datetime(2026, 11, 22, 12, 0, 30, tzinfo=timezone.utc)
    wait = server_wait(
        response_with(**{"Retry-After": format_datetime(moment, usegmt=True)}),
        now=datetime(2026, 11, 22, 12, 0, 0, tzinfo=timezone.utc).timestamp(),
    )
    assert wait == 30.0


def test_x_ratelimit_reset_is_read_when_retry_after_is_missing() -> None:
    assert server_wait(response_with(**{"X-RateLimit-Reset": "12"})) == 12.0


def test_no_or_unreadable_header_leaves_the_wait_to_backoff() -> None:
    assert server_wait(response_with()) is None
    assert server_wait(response_with(**{"Retry-After": "soon"})) is None
    assert server_wait(None) is None


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"Retry-After": "1"}, 1.0, 1.3),
        ({"X-RateLimit-Reset": "2"}, 2.0, 2.3),
        # An HTTP date 3 s ahead (whole seconds): 2 to 3 s, far above a first backoff (≤ 0.5 s).
        ({"Retry-After": "in 3 s, as an HTTP date"}, 1.9, 3.3),
    ],
)
def test_a_429_waits_as_snyk_says_then_goes_on(
    seeded: FakeSnyk, caplog: pytest.LogCaptureFixture, headers: dict, low: float, high: float
) -> None:
    if headers.get("Retry-After", "").startswith("in 3 s"):
        soon = datetime.now(timezone.utc) + timedelta(seconds=3)
        headers = {"Retry-After": format_datetime(soon, usegmt=True)}
    seeded.faults.append(Fault(status=429, headers=headers, path=SEARCH))
    with caplog.at_level(logging.INFO):
        run = run_tap(tap_config(seeded, page_size=20))
    assert run.exit_code == 0
    assert len(run.records("org_audit_logs")) == sum(
        e["event"] != "api.access" for e in ORG_A_EVENTS
    )
    [wait] = retry_waits(caplog)
    assert low <= wait <= high


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500, path=SEARCH),
        Fault(status=503, path=SEARCH, times=2),
        Fault(reset=True, path=SEARCH),
        Fault(truncated_body=True, path=SEARCH),
        Fault(not_json=True, path=SEARCH),
        Fault(delay=2.5, path=SEARCH),  # longer than request_timeout below: a read timeout
        Fault(drip=0.2, path=SEARCH),  # each byte in time, the whole answer never
        Fault(body=b'{"data": {}, "jsonapi": {"version": "1.0"}}', path=SEARCH),
    ],
    ids=[
        "500",
        "503-twice",
        "connection-reset",
        "cut-off-body",
        "html-body",
        "read-timeout",
        "dripping-answer",
        "200-without-items",
    ],
)
def test_passing_faults_are_retried_and_logged_as_warnings_only(
    seeded: FakeSnyk, caplog: pytest.LogCaptureFixture, fault: Fault
) -> None:
    clean = run_tap(tap_config(seeded, page_size=20))
    seeded.faults.append(fault)
    with caplog.at_level(logging.INFO):
        run = run_tap(tap_config(seeded, page_size=20, request_timeout=1))
    assert run.exit_code == 0
    assert event_ids(run) == event_ids(clean)
    assert len(retry_waits(caplog)) == fault.times
    tap_logs = [r for r in caplog.records if r.name.startswith("tap-snyk")]
    assert [r for r in tap_logs if r.levelno >= logging.ERROR] == []
    assert any(r.levelno == logging.WARNING and "trying again" in r.getMessage() for r in tap_logs)


def test_a_full_sync_under_many_faults_delivers_exactly_the_fault_free_events(
    snyk_api: FakeSnyk,
) -> None:
    start = NOW - timedelta(days=3)
    snyk_api.add_org_events(ORG_A, make_events(120, start=start, org_id=ORG_A, seed=1))
    snyk_api.add_org_events(ORG_B, make_events(80, start=start, org_id=ORG_B, seed=2))
    snyk_api.add_group_events(GROUP, make_events(60, start=start, group_id=GROUP, seed=3))
    config = tap_config(snyk_api, org_ids=[ORG_A, ORG_B], group_ids=[GROUP], page_size=15)
    clean = run_tap(config)
    snyk_api.faults.extend(
        [
            Fault(status=429, headers={"Retry-After": "0"}, path=ORG_A),
            Fault(delay=0.001, path="cursor=", times=3),  # let three later pages pass, then:
            Fault(status=502, path="cursor="),
            Fault(reset=True, path=ORG_B),
            Fault(truncated_body=True, path=GROUP),
            Fault(status=503, path="cursor="),
            Fault(status=429, headers={"X-RateLimit-Reset": "0"}, path="cursor="),
        ]
    )
    faulty = run_tap(config)
    assert faulty.exit_code == 0
    assert snyk_api.faults == []  # every fault was met
    for stream in ("org_audit_logs", "group_audit_logs"):
        assert faulty.by_partition(stream) == clean.by_partition(stream)
    assert in_any_partition_order(faulty.final_state) == in_any_partition_order(clean.final_state)


def test_when_retries_run_out_the_run_fails_with_one_clear_line(seeded: FakeSnyk) -> None:
    seeded.faults.append(Fault(status=503, path=SEARCH, times=1000))
    run = run_tap(tap_config(seeded, max_retry_seconds=1))
    assert run.exit_code == 1
    assert run.error is not None
    assert run.error.startswith(f"Snyk kept failing for organization {ORG_A} (Snyk answered 503")
    assert "`max_retry_seconds`" in run.error


def test_a_dripping_answer_is_given_up_within_request_timeout(seeded: FakeSnyk) -> None:
    seeded.faults.append(Fault(drip=0.2, path=SEARCH, times=1000))
    started = time.monotonic()
    run = run_tap(tap_config(seeded, request_timeout=1, max_retry_seconds=2))
    assert time.monotonic() - started < 60  # a dripping answer once kept the tap forever
    assert run.exit_code == 1
    assert run.error is not None
    assert run.error.startswith(
        f"Snyk kept failing for organization {ORG_A} (no complete answer within `request_timeout`)"
    )


class _DrippingServer(socketserver.ThreadingTCPServer):
    """Answers every request with a whole HTTP response, status line and headers included, one
    byte every 0.2 s: each read of the socket gets something, the answer never ends in time."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _DripHandler)


class _DripHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # the request's head
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        with contextlib.suppress(OSError):
            for index in range(len(answer)):
                self.wfile.write(answer[index : index + 1])
                self.wfile.flush()
                time.sleep(0.2)


def test_an_answer_dripped_from_its_first_byte_is_given_up_within_request_timeout() -> None:
    server = _DrippingServer()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        started = time.monotonic()
        run = run_tap(
            {
                "api_url": url,
                "api_token": "t",
                "org_ids": [ORG_A],
                "request_timeout": 1,
                "max_retry_seconds": 2,
            }
        )
        assert time.monotonic() - started < 60
    finally:
        server.shutdown()
        server.server_close()
    assert run.exit_code == 1
    assert run.error is not None
    assert run.error.startswith(
        f"Snyk kept failing for organization {ORG_A} (no complete answer within `request_timeout`)"
    )


@pytest.mark.parametrize(
    ("path", "body", "subject", "missing"),
    [
        (ORG_SEARCH, {"data": {}}, IN_ORG_A, "no `data.items`"),
        (ORG_SEARCH, {"jsonapi": {"version": "1.0"}}, IN_ORG_A, "no `data`"),
        (ORG_SEARCH, {"data": {"items": None}}, IN_ORG_A, "no `data.items`"),
        (ORG_SEARCH, {"data": [{"created": "x"}]}, IN_ORG_A, "no `data.items`"),
        (
            ORG_SEARCH,
            {"data": {"items": {}}},
            f"organization {ORG_A}",
            "`data.items` is not a list",
        ),
        (f"/groups/{GROUP}/audit", {"data": {}}, f"group {GROUP}", "no `data.items`"),
        (f"/orgs/{ORG_A}/memberships", {"data": {}}, IN_ORG_A, "`data` is not a list"),
        ("/projects", {"links": {}}, IN_ORG_A, "no `data`"),
    ],
    ids=[
        "data-empty",
        "no-data",
        "items-null",
        "data-a-list",
        "items-an-object",
        "group",
        "lookup-data-an-object",
        "lookup-no-data",
    ],
)
def test_a_200_without_its_records_is_retried_then_named(
    snyk_api: FakeSnyk, path: str, body: dict, subject: str, missing: str
) -> None:
    snyk_api.add_org_events(ORG_A, [])
    snyk_api.add_group_events(GROUP, [])
    snyk_api.faults.append(Fault(body=json.dumps(body).encode(), path=path, times=1000))
    run = run_tap(tap_config(snyk_api, group_ids=[GROUP], max_retry_seconds=1))
    assert run.exit_code == 1
    assert run.error is not None
    assert run.error.startswith(
        f"Snyk kept failing for {subject} (Snyk answered 200 with {missing})"
    )


@pytest.mark.parametrize("concurrent_requests", [1, 8])
def test_a_failed_run_resumes_where_it_stopped_with_nothing_lost(
    snyk_api: FakeSnyk, concurrent_requests: int
) -> None:
    events = make_events(100, start=NOW - timedelta(days=2), org_id=ORG_A, seed=4)
    snyk_api.add_org_events(ORG_A, events)
    config = tap_config(
        snyk_api,
        page_size=10,
        lookback_hours=0,
        max_retry_seconds=1,
        concurrent_requests=concurrent_requests,
    )
    everything = event_ids(run_tap(config))
    # Four pages pass, then the API fails for good, in the middle of the partition.
    snyk_api.faults.extend(
        [Fault(delay=0.001, times=4, path=SEARCH), Fault(status=500, times=1000, path=SEARCH)]
    )
    failed = run_tap(config)
    assert failed.exit_code == 1
    if concurrent_requests == 1:
        assert len(event_ids(failed)) == 40
    else:  # which pages passed depends on which requests the workers sent first
        assert 0 < len(event_ids(failed)) < len(everything)
    resume_at = bookmark(failed.final_state, "org_audit_logs", "org_id", ORG_A)
    assert resume_at == failed.records("org_audit_logs")[-1]["created"]

    snyk_api.faults.clear()
    snyk_api.reset_requests()
    resumed = run_tap(config, state=failed.final_state)
    assert resumed.exit_code == 0
    froms = [r.query["from"][0] for r in snyk_api.requests if SEARCH in r.path]
    if concurrent_requests == 1:
        assert froms[0] == resume_at[:19] + "Z"  # the bookmark, in whole seconds
    else:  # its first page, and the time windows after it
        assert resume_at[:19] + "Z" in froms
    assert set(event_ids(failed)) | set(event_ids(resumed)) == set(everything)
    assert len(event_ids(resumed)) < len(everything)  # it did not start over


def test_the_rate_limit_holds_back_the_request_that_would_exceed_it() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RequestRateLimiter(3, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        assert limiter.wait_for_turn() == 0.0
        now[0] += 10.0
    # Until the first one leaves the limiter's minute (a little longer than Snyk's).
    assert limiter.wait_for_turn() == pytest.approx(MINUTE - 30.0)
    assert slept == [pytest.approx(MINUTE - 30.0)]


def test_every_request_of_every_stream_passes_one_rate_limiter(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, make_events(30, start=NOW - timedelta(days=1), org_id=ORG_A))
    snyk_api.add_group_events(GROUP, make_events(30, start=NOW - timedelta(days=1), group_id=GROUP))
    now = [0.0]
    slept: list[float] = []
    tap = TapSnyk(
        config=tap_config(snyk_api, group_ids=[GROUP], page_size=10, max_requests_per_minute=4),
        parse_env_config=False,
    )

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    tap.run_context.api.limiter = RequestRateLimiter(4, clock=lambda: now[0], sleep=sleep)
    with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO())):
        tap.run_sync()
    sent = len(snyk_api.requests)
    assert sent > 4
    # No time passes but by sleeping, so each further 4 requests wait a full minute.
    assert len(slept) == (sent - 1) // 4
    assert all(s == pytest.approx(MINUTE) for s in slept)

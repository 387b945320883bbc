"""The rate limit is a ceiling at every moment: before a 429, during its pause, and after it.

Most tests drive `RequestRateLimiter` with many threads on a virtual clock, which moves only when
every thread sleeps: exact and fast, whatever the machine's load. One test runs the tap against
the fake API on the real clock, scaled down to a few seconds, and reads the moments the fake
received each request.
"""

from __future__ import annotations

import bisect
import copy
import heapq
import itertools
import threading
from datetime import datetime, timedelta, timezone

from fake_snyk import FakeSnyk, Fault, make_events, uuid_for
from tap_snyk.retries import MINUTE, RequestRateLimiter
from tap_snyk.tap import TapSnyk
from tests.conftest import run_tap, tap_config

#: Seconds a (virtual) answer takes: no multiple of the spacing, so no answer ties with a turn.
ANSWER = 0.25


class VirtualTime:
    """A clock shared by `threads` threads that jumps to the next wake-up once all of them sleep.

    Each thread calls `sleep` as it would `time.sleep` and `done` when it ends; a thread that
    is not asleep (running, or waiting for a lock) holds time still.
    """

    def __init__(self, threads: int) -> None:
        self.now = 0.0
        self._awake = threads
        self._sleeping: list[tuple[float, int]] = []  # (wake-up, ticket), a heap
        self._woken: set[tuple[float, int]] = set()
        self._tickets = itertools.count()
        self._changed = threading.Condition()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._changed:
            sleeper = (self.now + seconds, next(self._tickets))
            heapq.heappush(self._sleeping, sleeper)
            self._awake -= 1
            self._advance()
            self._changed.wait_for(lambda: sleeper in self._woken)
            self._woken.remove(sleeper)

    def done(self) -> None:
        with self._changed:
            self._awake -= 1
            self._advance()

    def _advance(self) -> None:
        if self._awake or not self._sleeping:
            return
        self.now = max(self.now, self._sleeping[0][0])
        while self._sleeping and self._sleeping[0][0] <= self.now:
            self._woken.add(heapq.heappop(self._sleeping))
            self._awake += 1
        self._changed.notify_all()


def run_workers(
    workers: int,
    requests_each: int,
    *,
    per_minute: int,
    per_second: int | None,
    throttled: int | None = None,
    retry_after: float = 20.0,
) -> list[float]:
    """The moments requests went, from `workers` threads each sending `requests_each`.

    Each answer takes `ANSWER` seconds. Request number `throttled` (from 1) is answered 429: its
    worker pauses the limiter for `retry_after` seconds, waits them out and sends it again, as
    `SnykApi.retrying` does.
    """
    time = VirtualTime(workers)
    limiter = RequestRateLimiter(
        per_minute, per_second=per_second, clock=time.clock, sleep=time.sleep
    )
    sent: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            for _ in range(requests_each):
                while True:
                    limiter.wait_for_turn()
                    with lock:
                        sent.append(time.now)
                        number = len(sent)
                    time.sleep(ANSWER)
                    if number != throttled:
                        break
                    limiter.pause(retry_after)
                    time.sleep(retry_after)
        finally:
            time.done()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a worker never got its turn"
    return sent


def most_in_any_window(moments: list[float], seconds: float, *, closed: bool = False) -> int:
    """The most of `moments` in any window [t, t + seconds), or [t, t + seconds] if `closed`."""
    ordered = sorted(moments)
    end = bisect.bisect_right if closed else bisect.bisect_left
    return max(end(ordered, t + seconds) - i for i, t in enumerate(ordered))


def gaps(moments: list[float]) -> list[float]:
    """The time between each moment and the next."""
    return [b - a for a, b in itertools.pairwise(sorted(moments))]


def test_no_minute_holds_more_than_the_limit_with_a_pause_in_the_middle() -> None:
    sent = run_workers(32, 6, per_minute=60, per_second=1, throttled=30)
    assert len(sent) == 32 * 6 + 1  # the throttled request, twice
    assert most_in_any_window(sent, 60.0) == 60  # at the ceiling, never above it


def test_no_second_holds_more_than_two_with_a_pause_in_the_middle() -> None:
    sent = run_workers(32, 6, per_minute=60, per_second=1, throttled=30)
    assert most_in_any_window(sent, 1.0, closed=True) == 2  # two only when 1 s apart exactly
    assert most_in_any_window(sent, 1.0) == 1


def test_requests_after_a_pause_are_spaced_as_before_it() -> None:
    sent = run_workers(32, 6, per_minute=60, per_second=1, throttled=30)
    throttled_at = sent[29]
    before = [t for t in sent if t <= throttled_at]
    after = [t for t in sent if t > throttled_at][: len(before)]
    assert after[0] == throttled_at + ANSWER + 20.0  # the pause's end, not a moment sooner
    assert gaps(before) == gaps(after) == [1.0] * (len(before) - 1)


def test_the_minute_holds_the_limit_when_requests_are_not_spaced() -> None:
    sent = run_workers(32, 4, per_minute=20, per_second=None)
    assert most_in_any_window(sent, 60.0) == 20
    assert sent[20] == sent[0] + MINUTE


def test_the_minute_counts_when_a_request_went_not_when_it_was_due() -> None:
    now = [0.0]
    late = [30.0]  # the first sleep overruns by 30 s, as a thread that wakes late

    def sleep(seconds: float) -> None:
        now[0] += seconds + (late.pop() if late else 0.0)

    limiter = RequestRateLimiter(2, clock=lambda: now[0], sleep=sleep)
    went = []
    for _ in range(4):
        limiter.wait_for_turn()
        went.append(now[0])
    # The third was due at the end of the first minute but went 30 s later; the fourth may
    # join it, and a fifth only a minute after the third really went.
    assert went == [0.0, 0.0, MINUTE + 30.0, MINUTE + 30.0]
    limiter.wait_for_turn()
    assert now[0] == 2 * MINUTE + 30.0


def test_a_request_that_goes_late_is_caught_up_with_never_closer_than_half_the_spacing() -> None:
    now = [0.0]
    overruns = itertools.cycle([0.125, 0.0])  # every other wake-up comes half a spacing late

    def sleep(seconds: float) -> None:
        now[0] += seconds + next(overruns)

    limiter = RequestRateLimiter(600, per_second=4, clock=lambda: now[0], sleep=sleep)
    went = []
    for _ in range(9):
        limiter.wait_for_turn()
        went.append(now[0])
    assert went[-1] == 2.0  # four a second, as if every thread woke on time
    assert gaps(went) == [0.375, 0.125] * 4


def test_a_cancelled_request_leaves_the_line_and_takes_no_turn() -> None:
    time = VirtualTime(1)
    limiter = RequestRateLimiter(2, clock=time.clock, sleep=time.sleep)
    limiter.wait_for_turn()
    limiter.wait_for_turn()  # the minute is full until MINUTE

    def cancelled() -> None:
        raise InterruptedError

    def cancelled_request() -> None:
        try:
            limiter.wait_for_turn(cancelled)
        except InterruptedError:
            outcome.append("cancelled")
        finally:
            time.done()

    outcome: list[str] = []
    waiting = threading.Thread(target=cancelled_request)
    waiting.start()
    waiting.join(timeout=10)
    assert outcome == ["cancelled"]
    assert time.now == MINUTE  # it waited its turn, then left
    assert limiter.wait_for_turn() == limiter.wait_for_turn() == 0.0  # both turns still free


def only_org_audit_logs(config: dict[str, object]) -> dict[str, object]:
    """The tap's catalog with only `org_audit_logs` selected."""
    catalog = copy.deepcopy(TapSnyk(config=config, parse_env_config=False).catalog_dict)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] == "org_audit_logs"
    return catalog


def test_the_tap_keeps_its_pace_through_a_429_with_many_requests_waiting() -> None:
    # 300 a minute: a request every 200 ms; 20 orgs read side by side, the 8th request is
    # answered 429 (wait 1 s) while a dozen wait their turn.
    orgs = [uuid_for(f"pace-org-{n}") for n in range(20)]
    start = datetime.now(timezone.utc) - timedelta(hours=5)
    with FakeSnyk(latency=0.05) as api:
        for n, org in enumerate(orgs):
            api.add_org_events(org, make_events(5, start=start, seed=n, org_id=org))
        api.faults.extend(
            [Fault(delay=0.001, times=7), Fault(status=429, headers={"Retry-After": "1"})]
        )
        config = tap_config(
            api, org_ids=orgs, page_size=10, max_requests_per_minute=300, concurrent_requests=32
        )
        run = run_tap(config, catalog=only_org_audit_logs(config), paced=True)
        received = [r.received_at for r in api.requests]
        assert not api.faults  # the 429 was answered
    assert run.exit_code == 0
    assert max(gaps(received)) > 0.9  # the pause
    # The tap sends them at least half the spacing apart, after the pause too; a quarter is
    # left for the way from the tap to the server, which varies on a busy machine.
    assert min(gaps(received)) >= 0.05
    assert most_in_any_window(received, 1.0) <= 5 + 1

"""How long to wait before trying a request again, and a limit on requests per minute.

Snyk allows 1620 requests per minute per token and answers 429 above it, saying how long to
wait in `Retry-After` (seconds or an HTTP date) or `X-RateLimit-Reset` (seconds). Other passing
faults (5xx, resets, timeouts, cut-off bodies) get exponential backoff with jitter.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

#: The first exponential wait, in seconds; it doubles on each try, up to `MAX_BACKOFF`.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 60.0
#: No server-given wait is obeyed beyond this (a broken header must not stall a job for hours).
MAX_SERVER_WAIT = 300.0
#: The rate limit's minute, a quarter of a second longer than Snyk's: a request reaches Snyk a
#: little after it leaves, by a time that varies, and the ceiling must hold as Snyk counts too.
MINUTE = 60.25


def server_wait(response: requests.Response | None, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from `Retry-After` or `X-RateLimit-Reset`."""
    if response is None:
        return None
    for header in ("Retry-After", "X-RateLimit-Reset"):
        value = (response.headers.get(header) or "").strip()
        if not value:
            continue
        try:
            seconds = float(value)
        except ValueError:
            try:
                moment = parsedate_to_datetime(value)  # Retry-After as an HTTP date
            except (TypeError, ValueError):
                continue
            seconds = moment.timestamp() - (time.time() if now is None else now)
        return min(max(seconds, 0.0), MAX_SERVER_WAIT)
    return None


def wait_times(
    response_of: Callable[[BaseException], requests.Response | None],
) -> Generator[float, BaseException | None, None]:
    """Wait times for `backoff`: the server's word when it gave one, else exponential, jittered.

    `backoff` primes the generator with None, then sends each exception it caught.
    """
    tries = 0
    exception = yield 0.0
    while True:
        asked = server_wait(response_of(exception)) if exception is not None else None
        if asked is not None:
            wait = asked + random.uniform(0, 0.25)  # noqa: S311 (jitter, not cryptography)
        else:
            ceiling = min(MAX_BACKOFF, FIRST_BACKOFF * 2**tries)
            wait = random.uniform(ceiling / 2, ceiling)  # noqa: S311
        tries += 1
        exception = yield wait


class RequestRateLimiter:
    """At most `per_minute` requests in any 60 seconds, across every thread of the tap.

    With `per_second`, requests are also spaced evenly, `1 / per_second` seconds apart, so that
    they are spread over the minute rather than sent in bursts. After a 429, `pause()` holds
    back every request until the server's wait is over; then they go on from the pause's end at
    the same spacing as before it, never all at once. The minute counts the moments requests
    were really sent, so a request that goes late never lets the next ones crowd a minute.

    Requests wait in one line, first come first served. Each works out its moment from its
    place in the line, the requests sent and the pause, sleeps until then outside the lock (so
    threads waiting their turn do not hold each other up), and looks again when it wakes: a 429
    met meanwhile has moved it, and every request behind it, to after the pause.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        per_second: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self.per_second = per_second
        self._spacing = 1.0 / per_second if per_second else 0.0
        self._clock = clock
        self._sleep = sleep
        # The moments the latest requests were sent, oldest first.
        self._sent: deque[float] = deque(maxlen=per_minute)
        # The earliest moment of the next request by the spacing alone.
        self._next = -math.inf
        self._paused_until = -math.inf
        self._line: list[object] = []  # a ticket for each request waiting, first come first
        self._lock = threading.Lock()

    def wait_for_turn(self, stop_if_cancelled: Callable[[], None] = lambda: None) -> float:
        """Block until a request may go; return the seconds waited.

        `stop_if_cancelled` is called after each sleep: what it raises takes the request out of
        the line, so a worker whose work was cancelled takes no turn.
        """
        began = self._clock()
        ticket = object()
        with self._lock:
            self._line.append(ticket)
        try:
            slept = False
            while (wait := self._take_turn(ticket, woke=slept)) > 0:
                self._sleep(wait)
                slept = True
                stop_if_cancelled()
        finally:
            with self._lock:
                if ticket in self._line:  # cancelled, or interrupted while asleep
                    self._line.remove(ticket)
        return self._clock() - began

    def pause(self, seconds: float) -> None:
        """Hold back every request for `seconds` from now (a 429's wait), unless already longer."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _take_turn(self, ticket: object, *, woke: bool) -> float:
        """Let the request of `ticket` go if its moment has come (0.0); else how long to wait.

        `woke`: the request slept to its moment (else it came when the limiter was idle).
        """
        with self._lock:
            now = self._clock()
            moment = self._moment(self._line.index(ticket))
            if moment > now:
                return moment - now
            self._line.remove(ticket)
            self._sent.append(now)
            # A request whose thread woke late (a busy interpreter) holds back the next one by
            # at most half the spacing, so that late wake-ups do not slow the pace; yet no two
            # requests go closer than half the spacing, and no second holds more than
            # `per_second` + 1. One that came to an idle limiter sets the pace from now.
            since = max(moment, now - self._spacing / 2) if woke else now
            self._next = since + self._spacing
            return 0.0

    def _moment(self, position: int) -> float:
        """The earliest moment the request at `position` in the line may go; the lock is held.

        Those ahead of it go first, each at its own earliest moment.
        """
        moments: list[float] = []  # of the requests ahead of it, then its own
        for n in range(position + 1):
            moment = max(self._paused_until, moments[-1] + self._spacing if n else self._next)
            # The `per_minute`-th request before this one must have left the minute.
            back = self.per_minute - n
            if back <= 0:
                moment = max(moment, moments[n - self.per_minute] + MINUTE)
            elif len(self._sent) >= back:
                moment = max(moment, self._sent[-back] + MINUTE)
            moments.append(moment)
        return moments[-1]

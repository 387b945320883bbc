"""How long to wait before trying a request again, and a limit on requests per minute.

Snyk allows 1620 requests per minute per token and answers 429 above it, saying how long to
wait in `Retry-After` (seconds or an HTTP date) or `X-RateLimit-Reset` (seconds). Other passing
faults (5xx, resets, timeouts, cut-off bodies) get exponential backoff with jitter.
"""

from __future__ import annotations

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

    With `per_second`, requests are also spaced evenly, that many a second, so that they are
    spread over the minute rather than sent in bursts. After a 429, `pause()` holds back every
    request until the server's wait is over: every worker waits it out once, together.

    Each request reserves the earliest moment the limits allow, then sleeps until then outside
    the lock, so threads waiting their turn do not hold each other up.
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
        self._clock = clock
        self._sleep = sleep
        # The moments the latest requests were (or will be) sent, oldest first.
        self._sent: deque[float] = deque(maxlen=per_minute)
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def wait_for_turn(self) -> float:
        """Block until a request may go; return the seconds waited."""
        with self._lock:
            now = self._clock()
            turn = max(now, self._paused_until)
            if len(self._sent) >= self.per_minute:
                turn = max(turn, self._sent[-self.per_minute] + 60.0)
            if self.per_second and self._sent:
                # Evenly spaced, not a burst at the start of each second.
                turn = max(turn, self._sent[-1] + 1.0 / self.per_second)
            self._sent.append(turn)
        waited = 0.0
        while (pause := turn - self._clock()) > 0:
            self._sleep(pause)
            waited += pause
            with self._lock:  # a 429 met meanwhile holds this request back too
                turn = max(turn, self._paused_until)
        return waited

    def pause(self, seconds: float) -> None:
        """Hold back every request for `seconds` from now (a 429's wait), unless already longer."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

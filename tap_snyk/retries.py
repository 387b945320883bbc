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
    """At most `per_minute` requests in any 60 seconds, across every stream of the tap."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def wait_for_turn(self) -> float:
        """Block until a request may go; return the seconds waited."""
        with self._lock:
            waited = 0.0
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= 60.0:
                    self._sent.popleft()
                if len(self._sent) < self.per_minute:
                    self._sent.append(now)
                    return waited
                pause = 60.0 - (now - self._sent[0])
                self._sleep(pause)
                waited += pause

"""Rate limits per token, as Snyk enforces them: a request above a limit is answered 429.

`SlidingWindows` counts the requests it admitted in each window of seconds and refuses one above
any limit with the headers Snyk sends (`Retry-After`, `X-Ratelimit-Limit`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from fake_snyk.jsonapi import ApiError, Response

#: Snyk's rate limits per token, as `rate_limits` takes them: at most 160 a second, 1620 a minute.
SNYK_RATE_LIMITS = {1: 160, 60: 1620}


class SlidingWindows:
    """The moments of the requests admitted lately, against limits per window of seconds."""

    def __init__(self) -> None:
        self._admitted: deque[float] = deque()

    def refuse(self, limits: Mapping[int, int], now: float) -> Response | None:
        """A 429 for a request at `now` (seconds) above one of `limits`; None: it is admitted.

        `limits` maps a window of seconds to the requests allowed in it; callers hold a lock.
        """
        longest = max(limits)
        while self._admitted and self._admitted[0] <= now - longest:
            self._admitted.popleft()
        for window, limit in sorted(limits.items()):
            recent = [moment for moment in self._admitted if moment > now - window]
            if len(recent) >= limit:
                wait = max(1, int(recent[0] + window - now + 0.999))
                detail = f"more than {limit} requests in {window} s"
                response = ApiError(429, detail).response()
                response.headers.update(
                    {
                        "Retry-After": str(wait),
                        "X-Ratelimit-Limit": ", ".join(
                            f"{n};w={w}" for w, n in sorted(limits.items())
                        ),
                    }
                )
                return response
        self._admitted.append(now)
        return None

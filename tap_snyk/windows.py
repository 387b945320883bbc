"""Time windows: a busy audit-log search split into searches over consecutive spans of time.

A search reads one page after another, each page's next link known only once the page is in: one
busy org alone could keep only one request in flight. The first page of a search shows how much
time `size` events span. When it links to more, the rest of the search's range is split into
windows of about `PAGES_PER_WINDOW` pages each, each its own `from`/`to` search (`from`
inclusive, `to` exclusive) with its own cursor chain, fetched side by side and written in time
order. A quiet org still costs one request: a search that fits in one page is never split.

Boundaries are whole seconds. Events carry milliseconds, so all events of one timestamp fall in
one window: the `#n` of `event_id`, counted within a timestamp, is what one long search gives, and
no event is read twice or missed at a boundary. The first page keeps only its items before the
first boundary; the first window reads the rest again.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Pages a window is sized for: each window's last page is partly empty, so more pages per
#: window waste fewer requests, fewer keep more windows (and requests) in flight.
PAGES_PER_WINDOW = 8
#: Windows one search is split into at most; a window that is still busy splits again.
MAX_WINDOWS = 64


@dataclass(frozen=True)
class Split:
    """How a search goes on after its first page: `kept` items of it, then the windows.

    Window i reads from `starts[i]` to `starts[i + 1]`; the last one to the search's own end.
    """

    kept: int
    starts: list[datetime]


def split_after_first_page(
    created: list[datetime], start: datetime, end: datetime | None, now: datetime
) -> Split | None:
    """Windows for the rest of a search whose first page (with a next link) held `created`.

    `start` and `end` are the search's `from` and `to` (None: open-ended, sized up to `now`).
    None when splitting would not pay: the rest looks like a few pages, or the page lies within
    one second of `from` (no earlier whole-second boundary than `from` itself).
    """
    if len(created) < 2 or created != sorted(created):
        return None
    boundary = created[-1].replace(microsecond=0)
    rest = ((end or now) - boundary).total_seconds()
    if boundary <= start or rest < 2:
        return None
    span = max((created[-1] - created[0]).total_seconds(), 1.0)
    count = min(MAX_WINDOWS, math.ceil(rest / span / PAGES_PER_WINDOW), int(rest))
    if count <= 1:
        return None
    step = rest / count  # at least a second, so whole-second starts are strictly increasing
    starts = [boundary + timedelta(seconds=int(index * step)) for index in range(count)]
    return Split(kept=bisect.bisect_left(created, boundary), starts=starts)

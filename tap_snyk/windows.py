"""Time windows: a busy audit-log search split into searches over consecutive spans of time.

A search reads one page after another, each page's next link known only once the page is in: one
busy org alone could keep only one request in flight. The first page of a search shows how much
time `size` events span. When it links to more, and the rest of the search's range is longer
than `PAGES_PER_WINDOW` pages at that pace, the rest is split: `windows` windows, each sized for
about `PAGES_PER_WINDOW` pages at that pace, then everything after them. Each is a search of its
own (`from` inclusive, `to` exclusive) with its own cursor chain, fetched side by side and written
in time order.

So windows follow what is there, and each cut is earned by a page that showed it busy:

- The part after the windows (the rest) is cut the same way when its own first page is busy,
  into twice as many windows as the cut before it (1, 2, 4, 8: at most `MAX_WINDOWS`). A busy
  range fills every worker within a few answers; a burst followed by quiet weeks costs about
  what one long search costs: the burst's window, then one page for the quiet rest.
- A window whose own first page shows it busier than its pace foretold is cut again, from one.
- A search that fits in one page is never split.

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

#: Pages a window is sized for at the pace of the page before it: each window's last page is
#: partly empty, so more pages per window waste fewer requests, fewer keep more windows in flight.
PAGES_PER_WINDOW = 8
#: The most windows one cut makes (before the rest); the rest's cuts double up to it.
MAX_WINDOWS = 8


@dataclass(frozen=True)
class Split:
    """How a search goes on after its first page: `kept` items of it, then the windows.

    Window i reads from `starts[i]` to `starts[i + 1]`; the last one to the search's own end.
    """

    kept: int
    starts: list[datetime]


def split_after_first_page(
    created: list[datetime],
    start: datetime,
    end: datetime | None,
    now: datetime,
    *,
    windows: int = 1,
) -> Split | None:
    """Up to `windows` windows, then the rest, after a first page (with a next link) of `created`.

    `start` and `end` are the search's `from` and `to` (None: open-ended, sized up to `now`).
    None when splitting would not pay: the rest looks like a window's worth at the page's pace, or
    the page lies within one second of `from` (no earlier whole-second boundary than `from`).
    """
    if len(created) < 2 or created != sorted(created):
        return None
    boundary = created[-1].replace(microsecond=0)
    rest = ((end or now) - boundary).total_seconds()
    if boundary <= start:
        return None
    pace = max((created[-1] - created[0]).total_seconds(), 1.0)  # seconds a page spans
    window = math.ceil(pace * PAGES_PER_WINDOW)
    if window >= rest:
        return None  # the rest is about a window's worth: read it as it comes
    # Whole windows before the rest, and never one that would leave the rest empty.
    count = max(1, min(windows, MAX_WINDOWS, math.ceil(rest / window) - 1))
    starts = [boundary + timedelta(seconds=window * number) for number in range(count + 1)]
    return Split(kept=bisect.bisect_left(created, boundary), starts=starts)

"""Time windows: a busy audit-log search split into searches over consecutive spans of time.

A search reads one page after another, each page's next link known only once the page is in: one
busy org alone could keep only one request in flight. The first page of a search shows how much
time `size` events span. When it links to more, and the rest of the search's range is longer
than `PAGES_PER_WINDOW` pages at that pace, the rest is split in two: a window sized for about
`PAGES_PER_WINDOW` pages at that pace, then everything after it. Each is a search of its own
(`from` inclusive, `to` exclusive) with its own cursor chain, fetched side by side and written in
time order; each splits the same way when its own first page shows it busy.

So windows follow what is there. A burst followed by quiet weeks costs about what one long search
costs: the burst's window, then one page for the quiet rest. A busy range grows a window of about
`PAGES_PER_WINDOW` pages per answer, enough to keep every worker busy. A search that fits in one
page is never split.

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
#: Windows one split makes: one sized by the page, then the rest (which splits again when busy).
MAX_WINDOWS = 2


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
    None when splitting would not pay: the rest looks like a window's worth at the page's pace, or
    the page lies within one second of `from` (no earlier whole-second boundary than `from`).
    """
    if len(created) < 2 or created != sorted(created):
        return None
    boundary = created[-1].replace(microsecond=0)
    rest = ((end or now) - boundary).total_seconds()
    if boundary <= start or rest < MAX_WINDOWS:
        return None
    pace = max((created[-1] - created[0]).total_seconds(), 1.0)  # seconds a page spans
    window = math.ceil(pace * PAGES_PER_WINDOW)
    if window >= rest:
        return None  # the rest is about a window's worth: read it as it comes
    starts = [boundary, boundary + timedelta(seconds=window)]
    return Split(kept=bisect.bisect_left(created, boundary), starts=starts)

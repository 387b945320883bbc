"""The backlog: partitions read ahead and not yet written; what to fetch next, what to write next.

The SDK writes a stream's partitions one after another, each to its end, in the order the
stream's `partitions` gives them. While worker threads read ahead (`fetching.py`), that order
follows readiness rather than the plan, so that a slow or failing org holds no other back, and
what is kept or in flight stays within a cap (`Cap`), so that memory stays bounded.

The cap counts items: a page kept counts its items (an empty page one), a request in flight a
full page (`PAGE_ITEMS`). So the many small pages of the lookups or of quiet orgs are read ahead
while a slow partition is awaited, and a cap of full pages bounds what big ones keep.

Which partition of the stream the writer takes next (`next_to_write`):

1. one whose pages are all in (the earliest planned of them): it is written without a wait;
2. the one with the most items kept, once that is a worker's share (`SHARE`): it is being read
   at pace, like a big org, and is written as its pages come, freeing their room; or once the
   others cannot go on (`Cap.full`);
3. last, one whose reading failed: its pages before the failure are written, then the failure
   ends the run, after every other partition of the stream was written.

Otherwise it waits. A slow partition keeps few pages, so it is written once it is all in and then
waits for nothing. The order changes nothing of what is written: each partition's records in
order, each bookmark moved only over what was written, any STATE a safe point to resume from.

Which waiting search a worker fetches next (`next_to_fetch`):

1. the one the writer waits for, even at the cap (so the cap cannot deadlock);
2. the other searches of the partition being written, up to the cap: the last worker's worth of
   room (`Cap.reserve`) is theirs;
3. the others, in the sync's order of streams, each partition up to a worker's share. Below half
   the cap, partitions not begun yet are begun first within a stream, the orgs and groups that
   answered slowest so far first: a slow org late in the plan, or a slow org's lookups, start
   early rather than after every page of those before them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from singer_sdk.helpers.types import Context

    from tap_snyk.fetching import PagedStream, Search

#: The most items a page holds (Snyk's largest page): what a request in flight counts for.
PAGE_ITEMS = 100
#: Full pages of the cap per worker.
PAGES_PER_WORKER = 8
#: What a partition not being written may keep or have in flight: a worker's share of the cap.
#: One that has it kept is written as its pages come.
SHARE = PAGES_PER_WORKER * PAGE_ITEMS


@dataclass(eq=False)
class Partition:
    """One org's or group's pages of one stream, read ahead: its searches, and how far they are."""

    stream: PagedStream
    context: Context | None
    #: Where the plan puts it: the stream's place in the sync, then the partition's in the plan.
    key: tuple[int, int]
    #: Its first search; the searches that continue it follow from there.
    root: Search
    #: Searches neither read to their end nor failed (nor cancelled).
    unsettled: int = 1
    #: Items of the pages fetched and not yet written (as the cap counts them).
    kept: int = 0
    #: Requests of it in flight.
    fetching: int = 0
    #: Whether a worker took its first request.
    begun: bool = False
    #: Whether a search of it failed: what comes after the failure is never written.
    failed: bool = False

    @property
    def held(self) -> int:
        """What it holds of the cap: its items kept, and a full page for each request in flight."""
        return self.kept + self.fetching * PAGE_ITEMS

    @property
    def all_in(self) -> bool:
        """Whether every page of it is fetched: writing it waits for nothing."""
        return self.unsettled == 0 and not self.failed


@dataclass(frozen=True)
class Cap:
    """What is kept or in flight, in items, against the most there may be."""

    held: int
    most: int
    #: The room at the top kept for the partition being written: a full page per worker.
    reserve: int

    @property
    def room(self) -> int:
        """Items that may still be asked for."""
        return self.most - self.held

    @property
    def full(self) -> bool:
        """Whether only the partition being written may be fetched."""
        return self.room <= self.reserve


def next_to_write(waiting: Collection[Partition], cap: Cap) -> Partition | None:
    """Which of a stream's partitions not yet written to write next; None: wait."""
    healthy = [partition for partition in waiting if not partition.failed]
    if not healthy:
        return min(waiting, key=lambda partition: partition.key, default=None)
    all_in = [partition for partition in healthy if partition.all_in]
    if all_in:
        return min(all_in, key=lambda partition: partition.key)
    most = min(healthy, key=lambda partition: (-partition.kept, partition.key))
    return most if most.kept >= SHARE or cap.full else None


def next_to_fetch(
    waiting: Collection[Search],
    *,
    awaited: Search | None,
    cap: Cap,
    slowest: Callable[[Context | None], float],
) -> Search | None:
    """Which waiting search to fetch next; None: none may be, for now.

    `awaited`: the search the writer waits for, if any. `slowest`: the longest a request of a
    partition's org or group took so far, in seconds.
    """
    if awaited is not None and awaited in waiting and not awaited.pages:
        return awaited
    writing = awaited.partition if awaited is not None else None

    def rank(search: Search) -> tuple[Any, ...] | None:
        partition = search.partition
        if partition is None or partition is writing:
            return (0, search.key) if cap.room > 0 else None
        if cap.full or partition.held >= SHARE:
            return None
        stream = search.key[0]
        if not partition.begun and cap.room > cap.most // 2:
            return (1, stream, 0, -slowest(partition.context), search.key)
        return (1, stream, 1, 0.0, search.key)

    ranked = [(order, search) for search in waiting if (order := rank(search)) is not None]
    return min(ranked, key=lambda ranked: ranked[0])[1] if ranked else None

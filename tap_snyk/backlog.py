"""The partitions read ahead and not yet written: how far each is, and which one to write next.

The SDK writes a stream's partitions one after another, each to its end, in the order the
stream's `partitions` gives them. While worker threads read ahead, that order follows readiness
rather than the plan, so that a slow or failing org holds no other back, with what is kept still
capped (`PageFetcher.max_items`). Of the stream's partitions not yet written, the writer
takes:

1. one whose pages are all in (the earliest planned of them): it is written without a wait, and
   frees its pages' room;
2. the one with the most items kept, once that is a worker's share of full pages (`enough`): it
   is being read at pace, like a big org, and is written as its pages come, freeing their room;
   or once what is kept or in flight reaches the cap (the search the writer waits for may go on
   at the cap, so the cap cannot deadlock);
3. last, one whose reading failed: its pages before the failure are written, then the failure
   ends the run, after every other partition of the stream was written.

Otherwise it waits. A slow partition keeps few pages, so it is written once it is all in, and
waits for nothing then. The order changes nothing of what is written: each partition's records
in order, each bookmark moved only over what was written, any STATE a safe point to resume from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection

    from singer_sdk.helpers.types import Context

    from tap_snyk.fetching import PagedStream, Search

#: The most items a page holds (Snyk's largest page): what a request in flight counts for.
PAGE_ITEMS = 100


@dataclass(eq=False)
class Partition:
    """One org's or group's pages of one stream, read ahead: its searches, and how far they are."""

    stream: PagedStream
    context: Context | None
    #: Where the plan puts it: the stream's place in the sync, then the partition's in the stream.
    key: tuple[int, int]
    #: Its first search; the searches that continue it follow from there.
    root: Search
    #: Searches neither read to their end nor failed (nor cancelled).
    unsettled: int = 1
    #: Items of the pages fetched and not yet written (as the cap counts them).
    kept: int = 0
    #: Whether a search of it failed: what comes after the failure is never written.
    failed: bool = False
    #: Whether a worker took its first request.
    begun: bool = False
    #: Requests of it in flight.
    fetching: int = 0

    @property
    def held(self) -> int:
        """What it holds of the cap: its items kept, and a full page for each request in flight."""
        return self.kept + self.fetching * PAGE_ITEMS

    @property
    def all_in(self) -> bool:
        """Whether every page of it is fetched: writing it waits for nothing."""
        return self.unsettled == 0 and not self.failed


def next_to_write(waiting: Collection[Partition], *, enough: int, at_cap: bool) -> Partition | None:
    """Which of a stream's partitions not yet written to write next; None: wait.

    `enough`: the items kept from which a partition is written as its pages come. `at_cap`:
    whether what is kept or in flight reached the cap, so that only the partition being written
    could be fetched.
    """
    healthy = [partition for partition in waiting if not partition.failed]
    if not healthy:
        return min(waiting, key=lambda partition: partition.key, default=None)
    all_in = [partition for partition in healthy if partition.all_in]
    if all_in:
        return min(all_in, key=lambda partition: partition.key)
    most = min(healthy, key=lambda partition: (-partition.kept, partition.key))
    return most if at_cap or most.kept >= enough else None

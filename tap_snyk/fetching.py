"""Reading ahead of the writer: worker threads fetch pages, the main thread writes them.

The SDK syncs one stream and one partition after another, in one thread; it has no concurrency
of its own. `PageFetcher` reads ahead of it. At the start of a sync it is told every partition the
sync will read (selected streams in sync order, then each stream's partitions). Each partition
starts as one `Search`: a first request and the next links that follow it; a page may end a
search and name the searches that continue it (time windows of an audit log, read after it in
time order). Every search has a key that sorts it in the plan. Worker threads repeatedly take a
waiting search, fetch ONE page of it, keep the page for the main thread and put the search back
while it has a next page.

The main thread writes a stream's partitions in the order they are ready (`in_ready_order`) and
takes each partition's pages in order (`take`). So records, state and every Singer message are
written by it alone, each partition's records in order, and a bookmark only moves over what was
written: any STATE is a safe point to resume from. Which search to fetch and which partition to
write next, within a cap on what is kept, is the backlog's policy (`backlog.py`): a slow or
failing partition holds no other back, and memory stays bounded.

A worker's failure (a refusal, retries given up) is kept in place of the page and raised in the
main thread when it reaches it, after everything before it was written. Workers are daemon
threads and check for cancellation before every request, so an ended run (done, failed,
interrupted) never waits for them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from tap_snyk.backlog import (
    PAGE_ITEMS,
    PAGES_PER_WORKER,
    Cap,
    Partition,
    next_to_fetch,
    next_to_write,
)

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable

    from singer_sdk.helpers.types import Context

    from tap_snyk.pagination import NextLinkPaginator, PageRequest

_worker = threading.local()

#: The item lists of a partition's pages, in order.
Pages: TypeAlias = "Generator[list[dict[str, Any]], None, None]"


@dataclass
class FetchedPage:
    """One page of a search: its items, and what to ask for after it.

    `next` continues the same search (its next link); `then` lists searches that follow this one
    once it ends, in the order they are read (the time windows a search was split into).
    """

    items: list[dict[str, Any]]
    next: PageRequest | None = None
    then: list[PageRequest] = field(default_factory=list)
    #: Why the search cannot go on after these items (a next link that may not be followed).
    failure: Exception | None = None


class PagedStream(Protocol):
    """What the fetcher needs of a stream: its first request, and one page at a time."""

    name: str

    def first_page_request(self, context: Context | None) -> PageRequest:
        """The request of a partition's first page (built in the main thread: it reads state)."""

    def get_new_paginator(self) -> NextLinkPaginator:
        """A paginator for one search."""

    def fetch_page(
        self,
        context: Context | None,
        request: PageRequest,
        paginator: NextLinkPaginator,
        *,
        may_split: bool,
    ) -> FetchedPage:
        """Send one request (in any thread) and read its page."""


class Cancelled(Exception):
    """The search a worker is fetching is no longer wanted (its run ended or skipped it)."""


def stop_if_cancelled() -> None:
    """Raise `Cancelled` in a worker whose search was cancelled; nothing elsewhere.

    Called before every request, retries included, so an ended run sends nothing more.
    """
    search: Search | None = getattr(_worker, "search", None)
    if search is not None and search.cancelled:
        raise Cancelled


def in_cancelled_search() -> bool:
    """Whether the current thread is a worker fetching a search that was cancelled."""
    search: Search | None = getattr(_worker, "search", None)
    return search is not None and search.cancelled


class Search:
    """One chain of pages: a first request, then the next links that follow it."""

    def __init__(
        self,
        stream: PagedStream,
        context: Context | None,
        request: PageRequest,
        key: tuple[int, ...],
    ) -> None:
        self.stream = stream
        self.context = context
        self.request = request
        #: Where the plan puts it: its partition's key, then its place among the partition's.
        self.key = key
        self.paginator = stream.get_new_paginator()
        #: Pages fetched and not yet taken, or the failure that ended the search.
        self.pages: deque[FetchedPage | Exception] = deque()
        #: The searches that continue this one once it ends, in the order they are read.
        self.then: list[Search] = []
        #: The partition read ahead that it belongs to (None: read one page after another).
        self.partition: Partition | None = None
        self.done = False
        self.cancelled = False

    def fetch(self, *, may_split: bool) -> FetchedPage:
        """Fetch this search's next page, in whichever thread calls it."""
        page = self.stream.fetch_page(
            self.context, self.request, self.paginator, may_split=may_split
        )
        if page.next is not None:
            self.request = page.next
        return page

    def forget(self) -> None:
        """Let go of what a search read to its end still holds (its paginator's last page)."""
        self.paginator = self.stream.get_new_paginator()
        self.then = []

    def continuations(self, page: FetchedPage) -> list[Search]:
        """The searches that follow this one after `page`, each keyed just after it."""
        searches = [
            Search(self.stream, self.context, request, (*self.key, index))
            for index, request in enumerate(page.then)
        ]
        for search in searches:
            search.partition = self.partition
        return searches


def read_in_order(stream: PagedStream, context: Context | None) -> Pages:
    """A partition's pages, fetched in this thread one at a time (no reading ahead)."""
    waiting = [Search(stream, context, stream.first_page_request(context), ())]
    while waiting:
        search = waiting.pop()
        while True:
            page = search.fetch(may_split=False)
            yield page.items
            if page.failure is not None:
                raise page.failure
            if page.next is None:
                break
        waiting.extend(reversed(search.continuations(page)))


def _identity(stream: PagedStream, context: Context | None) -> tuple[Any, ...]:
    return (stream.name, *_scope(context))


def _scope(context: Context | None) -> tuple[Any, ...]:
    """The org or group a partition reads, whichever its stream."""
    return tuple(sorted((context or {}).items()))


def _weight(page: FetchedPage | Exception) -> int:
    """What a kept page counts for in the cap: its items (an empty page or a failure as one)."""
    return max(1, len(page.items)) if isinstance(page, FetchedPage) else 1


class ReadyOrder(list[dict[str, Any]]):
    """A stream's partitions: a list in the scope's order that iterates in the order to write.

    The SDK syncs a stream's partitions as it iterates them; while a sync reads ahead, iterating
    waits for each next partition to be ready (`PageFetcher.in_ready_order`).
    """

    def __init__(
        self, contexts: list[dict[str, Any]], fetcher: PageFetcher, stream: PagedStream
    ) -> None:
        super().__init__(contexts)
        self._fetcher = fetcher
        self._stream = stream

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._fetcher.in_ready_order(self._stream, list(super().__iter__()))


class PageFetcher:
    """Worker threads that read the planned searches ahead of the main thread.

    `with PageFetcher(workers) as fetcher:` starts them; `plan()` names each partition the sync
    will read, in the plan's order; `in_ready_order()` gives a stream's partitions in the order
    to write them; `take()` gives the main thread one partition's pages, in order.
    """

    def __init__(self, workers: int, *, max_items: int | None = None) -> None:
        self.workers = workers
        #: Items kept or in flight at most (`backlog.Cap`), but for the search the main thread
        #: waits for.
        self.max_items = max_items or PAGES_PER_WORKER * PAGE_ITEMS * workers
        #: The most items ever kept or in flight at once (for tests of the bound).
        self.peak_items = 0
        self._lock = threading.Lock()
        # Workers wait for a search to fetch; the main thread waits for a page. Two conditions on
        # one lock, so that a page wakes the main thread alone, and work one worker at a time.
        self._work_ready = threading.Condition(self._lock)
        self._page_ready = threading.Condition(self._lock)
        self._planned: dict[tuple[Any, ...], Partition] = {}
        self._stream_places: dict[str, int] = {}
        self._order = itertools.count()
        self._ready: set[Search] = set()
        self._live: set[Search] = set()  # planned or fetching, not yet read to the end
        self._head: Search | None = None
        #: Per org or group: the longest a request of it took so far, in seconds.
        self._slowest: dict[tuple[Any, ...], float] = {}
        self._held = 0  # items kept or in flight (a full page each)
        self._closed = False
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> PageFetcher:
        for number in range(self.workers):
            thread = threading.Thread(
                target=self._work, name=f"tap-snyk-fetch-{number + 1}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel every search and let the workers end; nothing waits for them."""
        with self._lock:
            self._closed = True
            for search in self._live:
                search.cancelled = True
            self._ready.clear()
            self._work_ready.notify_all()
            self._page_ready.notify_all()

    def plan(self, stream: PagedStream, context: Context | None) -> None:
        """Name a partition the sync will read; its pages are fetched from now on.

        Streams are planned in the order the sync reads them, each stream's partitions in a row.
        """
        request = stream.first_page_request(context)
        with self._lock:
            place = self._stream_places.setdefault(stream.name, len(self._stream_places))
            key = (place, next(self._order))
            root = Search(stream, context, request, key)
            root.partition = Partition(stream, context, key, root)
            self._planned[_identity(stream, context)] = root.partition
            self._add(root)

    def in_ready_order(
        self, stream: PagedStream, contexts: Iterable[Context]
    ) -> Iterator[dict[str, Any]]:
        """A stream's partitions in the order to write them, each once it is ready.

        Those not read ahead come first, as they are: nothing to wait for. The planned ones
        follow as `backlog.next_to_write` chooses, waiting while it chooses none.
        """
        planned: dict[tuple[Any, ...], dict[str, Any]] = {}
        unplanned: list[dict[str, Any]] = []
        with self._lock:
            for context in contexts:
                identity = _identity(stream, context)
                if identity in self._planned:
                    planned[identity] = dict(context)
                else:
                    unplanned.append(dict(context))
        yield from unplanned
        while planned:
            with self._lock:
                for identity in [i for i in planned if i not in self._planned]:
                    del planned[identity]  # taken by the sync already, in an order of its own
                waiting = [self._planned[identity] for identity in planned]
                chosen = self._choose(waiting)
                while chosen is None and waiting:
                    # A timeout keeps the main thread responsive to signals on every platform.
                    self._page_ready.wait(timeout=1.0)
                    chosen = self._choose(waiting)
            if chosen is not None:
                yield planned.pop(_identity(chosen.stream, chosen.context))

    def _choose(self, waiting: list[Partition]) -> Partition | None:
        return next_to_write(waiting, self._cap())

    def _cap(self) -> Cap:
        return Cap(self._held, self.max_items, reserve=self.workers * PAGE_ITEMS)

    def take(self, stream: PagedStream, context: Context | None) -> Pages | None:
        """The pages of a planned partition, in order, for the main thread; None if unplanned.

        A failure of a worker is raised in place of the page it failed to fetch. Whatever of the
        partition is left when the caller stops (it failed, or skipped the partition) is dropped.
        """
        with self._lock:
            partition = self._planned.pop(_identity(stream, context), None)
            if partition is None:
                return None
            self._drop_passed(partition)
        return self._pages_from(partition.root)

    def _pages_from(self, root: Search) -> Pages:
        waiting = [root]
        try:
            while waiting:
                search = waiting.pop()
                waiting.append(search)  # until read to its end: cancelled if the caller stops
                yield from self._pages_of(search)
                waiting.pop()
                waiting.extend(reversed(search.then))
                with self._lock:
                    self._live.discard(search)
                    search.forget()
        finally:
            with self._lock:
                self._cancel(waiting)
                self._head = None

    def _pages_of(self, search: Search) -> Pages:
        while True:
            with self._lock:
                self._head = search
                self._work_ready.notify()  # a worker held back by the cap may take it
                while not search.pages and not search.done:
                    # A timeout keeps the main thread responsive to signals on every platform.
                    self._page_ready.wait(timeout=1.0)
                if not search.pages:
                    return
                page = search.pages.popleft()
                self._held -= _weight(page)
                if search.partition is not None:
                    search.partition.kept -= _weight(page)
                self._work_ready.notify()  # room for one more page
            if isinstance(page, Exception):
                raise page
            yield page.items
            if page.failure is not None:
                raise page.failure

    def _add(self, search: Search) -> None:
        self._live.add(search)
        self._ready.add(search)
        self._work_ready.notify()

    def _drop_passed(self, reached: Partition) -> None:
        # The sync reads stream after stream: a planned partition of a stream it went past
        # (nothing to ask after all) will never be read, so its pages must not hold memory or
        # requests.
        passed = [p for p in self._planned.values() if p.key[0] < reached.key[0]]
        for partition in passed:
            del self._planned[_identity(partition.stream, partition.context)]
        self._cancel([partition.root for partition in passed])

    def _cancel(self, searches: list[Search]) -> None:
        """Drop searches and those that continue them: their pages, and their fetching."""
        while searches:
            search = searches.pop()
            if search.cancelled:
                continue
            search.cancelled = True
            self._live.discard(search)
            self._ready.discard(search)
            weight = sum(map(_weight, search.pages))
            self._held -= weight
            if (partition := search.partition) is not None:
                partition.kept -= weight
                partition.unsettled -= not search.done
            search.pages.clear()
            searches.extend(search.then)
        self._work_ready.notify_all()

    def _next_search(self) -> Search | None:
        """The search to fetch next, as the backlog's policy has it, if any."""
        if self._closed or not self._ready:
            return None
        return next_to_fetch(
            self._ready,
            awaited=self._head,
            cap=self._cap(),
            slowest=lambda context: self._slowest.get(_scope(context), 0.0),
        )

    def _work(self) -> None:
        while True:
            with self._lock:
                search = self._next_search()
                while search is None:
                    if self._closed:
                        return
                    self._work_ready.wait()
                    search = self._next_search()
                self._ready.discard(search)
                if search.partition is not None:
                    search.partition.begun = True
                    search.partition.fetching += 1
                self._held += PAGE_ITEMS
                self.peak_items = max(self.peak_items, self._held)
                if self._next_search() is not None:
                    self._work_ready.notify()  # more to fetch: wake one worker, who wakes the next
            _worker.search = search
            began = time.monotonic()
            outcome: FetchedPage | Exception | None
            try:
                outcome = search.fetch(may_split=True)
            except Cancelled:
                outcome = None
            except Exception as error:  # raised in the main thread, in order
                outcome = error
            finally:
                _worker.search = None
            took = time.monotonic() - began
            with self._lock:
                scope = _scope(search.context)
                self._slowest[scope] = max(self._slowest.get(scope, 0.0), took)
                self._settle(search, outcome)

    def _settle(self, search: Search, outcome: FetchedPage | Exception | None) -> None:
        """Keep a page (or failure) for the main thread; put the search back if it goes on."""
        partition = search.partition
        if partition is not None:
            partition.fetching -= 1
        if search.cancelled or outcome is None:
            self._held -= PAGE_ITEMS
        else:
            search.pages.append(outcome)
            self._held += _weight(outcome) - PAGE_ITEMS
            if partition is not None:
                partition.kept += _weight(outcome)
            if isinstance(outcome, Exception) or outcome.failure is not None:
                search.done = True
                if partition is not None:
                    self._fail(partition, search)
            elif outcome.next is None:
                search.then = search.continuations(outcome)
                for continuation in search.then:
                    self._add(continuation)
                search.done = True
                if partition is not None:
                    partition.unsettled += len(search.then) - 1
            else:
                self._ready.add(search)
        self._page_ready.notify()  # a page, or a partition further along, or room
        self._work_ready.notify()  # the search goes on, or room was freed

    def _fail(self, partition: Partition, failed: Search) -> None:
        """A partition's search failed: what comes after it is never written, so never fetched."""
        partition.failed = True
        partition.unsettled -= 1
        later = [s for s in self._live if s.partition is partition and s.key > failed.key]
        self._cancel(later)

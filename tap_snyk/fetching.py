"""Reading ahead of the writer: worker threads fetch pages, the main thread writes, in order.

The SDK syncs one stream and one partition after another, in one thread; it has no concurrency
of its own. `PageFetcher` reads ahead of it. At the start of a sync it is told every partition the
sync will read, in the order the sync will read them (selected streams in sync order, then each
stream's partitions). Each partition starts as one `Search`: a first request and the next links
that follow it; a page may end a search and name the searches that continue it (time windows of
an audit log, read after it in time order). Every search has a key that sorts it where the sync
will consume it. Worker threads repeatedly take the waiting search with the smallest key, fetch
ONE page of it, keep the page for the main thread and put the search back while it has a next
page. The main thread takes each search's pages in order (`PageFetcher.take`), so records,
state and every Singer message are written by it alone, and a bookmark only moves over what was
written: any STATE is a safe point to resume from.

Pages kept or in flight are capped (`max_pages`), bounding memory; the search the main thread
waits for may always proceed, so the cap cannot deadlock. A worker's failure (a refusal, retries
given up) is kept in place of the page and raised in the main thread when it reaches it, after
everything before it was written. Workers are daemon threads and check for cancellation before
every request, so an ended run (done, failed, interrupted) never waits for them.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Generator

    from singer_sdk.helpers.types import Context

    from tap_snyk.pagination import NextLinkPaginator, PageRequest

#: Pages each worker may have kept or in flight, beyond which only the awaited search proceeds.
PAGES_PER_WORKER = 8

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
        #: Where the sync consumes this search: smaller keys first.
        self.key = key
        self.paginator = stream.get_new_paginator()
        #: Pages fetched and not yet taken, or the failure that ended the search.
        self.pages: deque[FetchedPage | Exception] = deque()
        #: The searches that continue this one once it ends, in the order they are read.
        self.then: list[Search] = []
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
        return [
            Search(self.stream, self.context, request, (*self.key, index))
            for index, request in enumerate(page.then)
        ]


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
    return (stream.name, *sorted((context or {}).items()))


class PageFetcher:
    """Worker threads that read the planned searches ahead of the main thread, in its order.

    `with PageFetcher(workers) as fetcher:` starts them; `plan()` names each partition the sync
    will read, in order; `take()` gives the main thread one partition's pages, in order.
    """

    def __init__(self, workers: int, *, max_pages: int | None = None) -> None:
        self.workers = workers
        #: Pages kept or in flight at most, except for the search the main thread waits for.
        self.max_pages = max_pages or PAGES_PER_WORKER * workers
        #: The most pages ever kept or in flight at once (for tests of the bound).
        self.peak_pages = 0
        self._lock = threading.Lock()
        # Workers wait for a search to fetch; the main thread waits for a page. Two conditions on
        # one lock, so that a page wakes the main thread alone, and work one worker at a time.
        self._work_ready = threading.Condition(self._lock)
        self._page_ready = threading.Condition(self._lock)
        self._planned: dict[tuple[Any, ...], Search] = {}
        self._ready: set[Search] = set()
        self._live: set[Search] = set()  # planned or fetching, not yet read to the end
        self._head: Search | None = None
        self._held = 0  # pages kept or in flight
        self._order = itertools.count()
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
        """Name the next partition the sync will read; its pages are fetched from now on."""
        search = Search(stream, context, stream.first_page_request(context), (next(self._order),))
        with self._lock:
            self._planned[_identity(stream, context)] = search
            self._add(search)

    def take(self, stream: PagedStream, context: Context | None) -> Pages | None:
        """The pages of a planned partition, in order, for the main thread; None if unplanned.

        A failure of a worker is raised in place of the page it failed to fetch. Whatever of the
        partition is left when the caller stops (it failed, or skipped the partition) is dropped.
        """
        with self._lock:
            root = self._planned.pop(_identity(stream, context), None)
            if root is None:
                return None
            self._drop_passed(root)
        return self._pages_from(root)

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
                self._held -= 1
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

    def _drop_passed(self, reached: Search) -> None:
        # The sync reads in key order: a planned partition it went past (nothing to ask after
        # all) will never be read, so its pages must not hold memory or requests.
        passed = [s for s in self._planned.values() if s.key < reached.key]
        for search in passed:
            del self._planned[_identity(search.stream, search.context)]
        self._cancel(passed)

    def _cancel(self, searches: list[Search]) -> None:
        while searches:
            search = searches.pop()
            search.cancelled = True
            self._live.discard(search)
            self._ready.discard(search)
            self._held -= len(search.pages)
            search.pages.clear()
            searches.extend(search.then)
        self._work_ready.notify_all()

    def _next_search(self) -> Search | None:
        """The waiting search the sync will consume first, if the cap allows fetching it."""
        if self._closed or not self._ready:
            return None
        if self._held < self.max_pages:
            return min(self._ready, key=lambda search: search.key)
        # At the cap only the search the main thread waits for proceeds, when it has no page
        # kept: the main thread then takes that page and frees room.
        head = self._head
        return head if head in self._ready and head is not None and not head.pages else None

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
                self._held += 1
                self.peak_pages = max(self.peak_pages, self._held)
                if self._next_search() is not None:
                    self._work_ready.notify()  # more to fetch: wake one worker, who wakes the next
            _worker.search = search
            outcome: FetchedPage | Exception | None
            try:
                outcome = search.fetch(may_split=True)
            except Cancelled:
                outcome = None
            except Exception as error:  # raised in the main thread, in order
                outcome = error
            finally:
                _worker.search = None
            with self._lock:
                self._settle(search, outcome)

    def _settle(self, search: Search, outcome: FetchedPage | Exception | None) -> None:
        """Keep a page (or failure) for the main thread; put the search back if it goes on."""
        if search.cancelled or outcome is None:
            self._held -= 1
        else:
            search.pages.append(outcome)
            if isinstance(outcome, Exception) or outcome.next is None:
                if isinstance(outcome, FetchedPage):
                    search.then = search.continuations(outcome)
                    for continuation in search.then:
                        self._add(continuation)
                search.done = True
            else:
                self._ready.add(search)
            self._page_ready.notify()
        self._work_ready.notify()  # the search goes on, or room was freed

"""Audit-log searches: what a partition asks Snyk, page by page, and what each page keeps.

A partition (one org's or one group's audit log) is read oldest first, as searches over spans of
time. The policy lives here; the stream only sends each request and writes the records:

- Sweeps. A partition's first search starts at its bookmark, less `lookback_hours` when the
  partition sweeps this run, to catch events Snyk publishes late (`event_id` keeps the re-read
  events once). With `lookback_interval_minutes` a partition sweeps at most once per interval:
  its state records when (`lookback_swept_at`), and only once a sweep is complete.
- Windows. When reading ahead, a search whose first page links to more may split the rest of its
  span into time windows, each a search of its own (`windows.py`).
- Repeated heads. A page that begins with the items that ended the page before is read once. A
  repeat of several timestamps is certain (pages are oldest first) and dropped. One of a single
  timestamp may instead be identical events of their own: that second is asked again as a search
  of its own (`Recount`), and the page's later items wait for it (`HeldPage`). A warning tells
  how many items were served twice, only when that count is known.
- Bookmarks. Events re-read from the lookback window never move a bookmark back; one dated after
  the run's start never moves it past the start, or it would hide every later event.

Each page is one request: whatever else a page calls for is a further search, which the fetcher
plans (or the sequential read reads in order) after it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from tap_snyk.fetching import FetchedPage
from tap_snyk.pagination import FirstPage, HeldPage, NextPage, Recount, Span, created_of
from tap_snyk.records import parse_timestamp
from tap_snyk.settings import rfc3339
from tap_snyk.windows import MAX_WINDOWS, split_after_first_page

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_snyk.pagination import NextLinkPaginator, PageRequest
    from tap_snyk.settings import SnykSettings

#: A partition's state key: when its lookback window was last re-read in full (a sweep).
SWEPT_AT = "lookback_swept_at"
_SECOND = timedelta(seconds=1)


def api_timestamp(moment: datetime) -> str:
    """A timestamp for Snyk's `from` / `to`: whole seconds as Snyk documents them, else µs."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if not moment.microsecond else rfc3339(moment)


def search_params(settings: SnykSettings, span: Span) -> dict[str, Any]:
    """A search's parameters, every one spelled out: Snyk's defaults (DESC, yesterday) lose data."""
    params: dict[str, Any] = {
        "from": api_timestamp(span.start),
        "sort_order": "ASC",
        "size": settings.page_size,
    }
    if span.end:
        params["to"] = api_timestamp(span.end)
    if settings.events:
        params["events"] = ",".join(settings.events)
    if settings.exclude_events:
        params["exclude_events"] = ",".join(settings.exclude_events)
    return params


@dataclass
class AuditLogSearches:
    """The searches of one audit-log stream's partitions, from the first to the last page."""

    settings: SnykSettings
    logger: logging.Logger

    def __post_init__(self) -> None:
        #: Per partition: when this run's sweep of it began; None: it reads from the bookmark.
        self._sweeps: dict[str, datetime | None] = {}

    # -- a partition's first search ------------------------------------------------------------

    def first_page(self, partition: str, state: dict[str, Any], subject: str) -> FirstPage | None:
        """The first page of a partition, from its state; None when `end_date` leaves nothing.

        Whether the partition sweeps is decided at the first call, once per run: the pages read
        ahead and the sync ask the same `from`.
        """
        bookmark = state.get("replication_key_value")
        if partition not in self._sweeps:
            self._sweeps[partition] = self._sweep_due(bookmark, state.get(SWEPT_AT), subject)
        start = self.settings.start_date
        if bookmark:
            sweeping = self._sweeps[partition] is not None
            start = max(
                start,
                parse_timestamp(bookmark) - (self.settings.lookback if sweeping else timedelta(0)),
            )
        end = self.settings.end_date
        if end is not None and start >= end:
            return None  # Snyk would answer 400
        # Whole seconds, as Snyk documents; flooring `from` only re-reads events, never skips one.
        return FirstPage(Span(start.replace(microsecond=0), end))

    def record_sweep(self, partition: str, state: dict[str, Any]) -> None:
        """After every record of a partition is written: a sweep of it is complete.

        A run that ends part-way leaves the previous sweep recorded, so the next run sweeps again.
        """
        began = self._sweeps.get(partition)
        if began is not None and self.settings.lookback_interval:
            state[SWEPT_AT] = rfc3339(began)

    def _sweep_due(self, bookmark: object, recorded: object, subject: str) -> datetime | None:
        """Now, if this run must re-read the partition's lookback window; None if it need not.

        When in doubt (no record of a sweep, or one that is not a past time), it sweeps.
        """
        now = datetime.now(timezone.utc)
        interval = self.settings.lookback_interval
        if not interval or not bookmark:
            return now  # every run sweeps; or this is the first read, from start_date
        swept = _past_time(recorded, now)
        if swept is None:
            if recorded is not None:
                self.logger.warning(
                    "%s: `%s` in the state is not a past time (%r); reading its lookback again.",
                    subject,
                    SWEPT_AT,
                    recorded,
                )
            return now
        return now if now - swept >= interval else None

    # -- after each page -----------------------------------------------------------------------

    def after_page(
        self,
        request: PageRequest,
        items: list[Any],
        next_url: str | None,
        paginator: NextLinkPaginator,
        *,
        may_split: bool,
        subject: str,
    ) -> FetchedPage:
        """What a page keeps of its items, and what the search asks for after it."""
        if isinstance(request, HeldPage):  # read with the page before: no request was made
            paginator.remember(list(request.items))
            return FetchedPage(list(request.items), next=request.next)
        span = request.span
        assert span is not None  # every audit-log request covers a span of time
        if isinstance(request, NextPage) and (repeated := paginator.repeated_at_start(items)):
            stamps = {created_of(item) for item in repeated}
            if len(stamps) > 1:  # certain: the page before ended with these, oldest first
                self._warn_repeat(subject, len(repeated), stamps)
                items = items[len(repeated) :]
            elif span.recount is None:  # one timestamp: a repeat, or identical events?
                return self._recount(span, items, next_url, paginator)
        paginator.remember(items)
        kept, span = _skip_read(items, span)
        follows = NextPage(next_url, span) if next_url else None
        if follows is None and span.recount is not None:
            self._warn_recounted(subject, span.recount)
        if isinstance(request, FirstPage) and may_split and follows and span.recount is None:
            return self._windows(span, kept) or FetchedPage(kept, next=follows)
        return FetchedPage(kept, next=follows)

    def _recount(
        self, span: Span, items: list[Any], next_url: str | None, paginator: NextLinkPaginator
    ) -> FetchedPage:
        """Ask the second of a page's repeated head again; hold the page's later items for after."""
        stamp = created_of(items[0])
        moment = parse_timestamp(str(stamp))
        head = len(list(itertools.takewhile(lambda item: created_of(item) == stamp, items)))
        read = len(paginator.read_at(stamp))
        second = moment.replace(microsecond=0)
        later = [item for item in items[head:] if (_moment(item) or second) >= second + _SECOND]
        rest = replace(span, resume_at=second + _SECOND)
        recount = Recount(moment, read, read + head if head < len(items) else None)
        return FetchedPage(
            [],
            then=[
                FirstPage(Span(second, second + _SECOND, recount=recount)),
                HeldPage(tuple(later), NextPage(next_url, rest) if next_url else None),
            ],
        )

    def _windows(self, span: Span, items: list[Any]) -> FetchedPage | None:
        """A first page that splits the rest of its search into windows, if that pays.

        The windows are searches of their own, cut from one when busy; the rest after them cuts
        twice as many as this search did when its own first page shows it busy too.
        """
        created = [_moment(item) for item in items]
        if None in created:
            return None  # an item without a readable time: its search is read as it comes
        moments: list[datetime] = [moment for moment in created if moment is not None]
        now = datetime.now(timezone.utc)
        split = split_after_first_page(moments, span.start, span.end, now, windows=span.windows)
        if split is None:
            return None
        *starts, rest = split.starts
        windows = [
            FirstPage(Span(start, end)) for start, end in zip(starts, split.starts[1:], strict=True)
        ]
        doubled = min(2 * span.windows, MAX_WINDOWS)
        return FetchedPage(
            items[: split.kept], then=[*windows, FirstPage(Span(rest, span.end, windows=doubled))]
        )

    def _warn_repeat(self, subject: str, count: int, stamps: set[Any]) -> None:
        self.logger.warning(
            "%s: Snyk's next page began with %d item(s) that ended the page before (created "
            "%s): they are read once.",
            subject,
            count,
            ", ".join(sorted(map(str, stamps))),
        )

    def _warn_recounted(self, subject: str, recount: Recount) -> None:
        """At the end of a second asked again: a warning if Snyk served some of it twice."""
        if recount.served is not None and recount.served > recount.counted:
            self._warn_repeat(subject, recount.served - recount.counted, {rfc3339(recount.created)})

    # -- bookmarks -------------------------------------------------------------------------------

    def bookmarked(
        self,
        record: dict[str, Any],
        *,
        starting: str | None,
        signpost: str,
        subject: Callable[[], str],
    ) -> dict[str, Any] | None:
        """The record to move the bookmark with; None when it must not move it.

        An event re-read from the lookback window (older than the partition's starting
        bookmark) must not move the bookmark back. One dated after the run's start (the SDK's
        signpost) moves it only to the start, so that later events are still read. Timestamps
        are all in the tap's one format (`rfc3339`), so they compare as strings, as the SDK
        compares bookmarks.
        """
        created = record["created"]
        if starting is not None and created < starting:
            return None
        if created > signpost:
            self.logger.warning(
                "%s sent an event dated %s, after the start of this run (%s): it is loaded, but "
                "the bookmark stops at the run's start so that later events are still read.",
                subject(),
                created,
                signpost,
            )
            return {**record, "created": signpost}
        return record


def _skip_read(items: list[Any], span: Span) -> tuple[list[Any], Span]:
    """The items a search has not read yet, and its span as the next page goes on with it."""
    if span.resume_at is not None:
        resume_at = span.resume_at
        items = [item for item in items if (_moment(item) or resume_at) >= resume_at]
    recount = span.recount
    if recount is None:
        return items, span
    kept = []
    counted = recount.counted
    for item in items:
        moment = _moment(item)
        if moment is not None and moment < recount.created:
            continue  # read before the page boundary
        if moment == recount.created:
            counted += 1
            if counted <= recount.read:
                continue  # read before the page boundary
        kept.append(item)
    return kept, replace(span, recount=replace(recount, counted=counted))


def _moment(item: Any) -> datetime | None:
    """When an item was created, or None if it does not say readably (it is kept, and told)."""
    created = created_of(item)
    try:
        return parse_timestamp(created) if isinstance(created, str) else None
    except ValueError:
        return None


def _past_time(value: object, now: datetime) -> datetime | None:
    """A timestamp from the state, if it is one and not in the future (a hand-edited state)."""
    moment = _moment({"created": value})
    return moment if moment is not None and moment <= now else None

"""The audit-log search (contract 2024-04-29): its filters, and the events it searches.

`AuditQuery` reads and checks a search's parameters as the live service does: `from` defaults to
the start of yesterday, `sort_order` to DESC, `api.access` events are hidden unless asked for, and
`events` and `exclude_events` exclude each other. `RecentSearches` keeps the latest results so
that paging through one search does not sort the log again for every page.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

from fake_snyk.jsonapi import ApiError, int_param, list_param, time_param

AUDIT_LOG_CONTRACT = date(2024, 4, 29)  # older version dates are served the 2023-09-11 contract
API_ACCESS = "api.access"

#: Audit-log search results kept for paging (a concurrent reader pages many side by side).
SEARCHES_KEPT = 64


def start_of_yesterday(now: datetime) -> datetime:
    """Return where a search without `from` starts: midnight UTC at the start of yesterday."""
    yesterday = now.astimezone(timezone.utc).date() - timedelta(days=1)
    return datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=timezone.utc)


@dataclass(frozen=True)
class StoredEvent:
    """An item of an org's or a group's audit log, as the fake holds it."""

    created: datetime
    seq: int  # insertion order: breaks ties between equal timestamps
    item: Any  # an audit-log item; any JSON value for malformed-item tests


@dataclass(frozen=True)
class AuditQuery:
    """The filters and paging of one audit-log search, validated."""

    start: datetime
    end: datetime | None
    size: int
    descending: bool
    events: frozenset[str] | None
    excluded: frozenset[str]
    user_id: str | None
    project_id: str | None

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime) -> AuditQuery:
        """Read a search's parameters; `now` decides where "yesterday" starts."""
        start = time_param(params, "from") or start_of_yesterday(now)
        end = time_param(params, "to")
        if end is not None and end < start:
            raise ApiError(400, "to must not be before from", "to")
        sort_order = params.get("sort_order", "DESC")  # DESC is the live default, not ASC
        if sort_order not in ("ASC", "DESC"):
            raise ApiError(400, f"sort_order must be ASC or DESC, got {sort_order!r}", "sort_order")
        events, excluded = list_param(params, "events"), list_param(params, "exclude_events")
        if events is not None and excluded is not None:
            raise ApiError(400, "events and exclude_events cannot be used together", "events")
        return cls(
            start=start,
            end=end,
            size=int_param(params, "size", 100, 1, 100),
            descending=sort_order == "DESC",
            events=events,
            excluded=excluded or frozenset(),
            user_id=params.get("user_id"),
            project_id=params.get("project_id"),
        )

    def accepts(self, event: StoredEvent) -> bool:
        """Tell whether an event is among this search's results."""
        item = event.item if isinstance(event.item, dict) else {}
        if event.created < self.start or (self.end is not None and event.created >= self.end):
            return False
        name = item.get("event")
        if self.events is not None:
            if name not in self.events:
                return False
        elif name == API_ACCESS or name in self.excluded:
            return False
        if self.user_id is not None and item.get("user_id") != self.user_id:
            return False
        return self.project_id is None or item.get("project_id") == self.project_id


class RecentSearches:
    """The results of the latest audit-log searches, kept for paging.

    Paging re-runs one search page after page; keeping its result makes the fake fast enough for
    the benchmark (events are only ever added, so a count tells staleness). Several searches page
    side by side (a tap reading concurrently): the latest few are kept, not only the last one.
    """

    def __init__(self, kept: int = SEARCHES_KEPT) -> None:
        self._kept = kept
        self._results: dict[tuple[Any, ...], list[StoredEvent]] = {}
        self._lock = threading.Lock()

    def matching(
        self, scope: tuple[str, str], query: AuditQuery, stored: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        """The events of `stored` that `query` accepts, in its order (pages left to slice)."""
        search = (*scope, replace(query, size=0), len(stored))
        with self._lock:
            matching = self._results.get(search)
        if matching is None:
            matching = sorted(
                (e for e in stored if query.accepts(e)),
                key=lambda e: (e.created, e.seq),
                reverse=query.descending,
            )
            with self._lock:
                self._results[search] = matching
                while len(self._results) > self._kept:
                    del self._results[next(iter(self._results))]
        return matching

"""Pages: what a search asks for next, and following Snyk's `links.next` exactly as given.

A search is a first page and the next links that follow it. What to ask for is a value of its own:
`FirstPage` (the stream's path and parameters; for an audit log over a `Span` of time),
`NextPage` (a next link, as Snyk gave it), or `HeldPage` (a page already read, whose items wait
for a search planned before them: no request). Nothing guesses which kind a request is.

Snyk's next links come as a string or as `{"href": ...}`, as a path with or without the `/rest`
prefix or as an absolute URL. They already repeat every query parameter, so the link is the whole
next request: nothing is added to it. The token goes only to the configured API origin.
"""

from __future__ import annotations

import itertools
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, urlsplit

from singer_sdk.pagination import BaseAPIPaginator

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

from tap_snyk.errors import SnykError
from tap_snyk.responses import json_document

if TYPE_CHECKING:
    from datetime import datetime

    import requests

_logger = logging.getLogger("tap-snyk")


@dataclass(frozen=True)
class Recount:
    """A second asked again to tell a page's repeated head from identical events of its own.

    `created` had `read` items read before the page boundary; around the boundary Snyk served
    `served` items of it (None: unknown, the page held nothing later). `counted` items of
    `created` were met so far in the search that asks the second again.
    """

    created: datetime
    read: int
    served: int | None
    counted: int = 0


@dataclass(frozen=True)
class Span:
    """The time an audit-log search covers: `from` inclusive, `to` exclusive (None: up to now).

    `resume_at`: items created before it were read already (a search that goes on after a second
    asked again); `recount`: this search asks a second again; `windows`: how many time windows
    its first page cuts off when it shows the search busy (`windows.py`).
    """

    start: datetime
    end: datetime | None
    resume_at: datetime | None = None
    recount: Recount | None = None
    windows: int = 1


@dataclass(frozen=True)
class FirstPage:
    """A search's first page: the stream's path and parameters (an audit log's over `span`)."""

    span: Span | None = None


@dataclass(frozen=True)
class NextPage:
    """A later page of a search: Snyk's next link, as given; `span` is the search's."""

    url: str
    span: Span | None = None


@dataclass(frozen=True)
class HeldPage:
    """Items read with a page, to be written after a search planned before them, then `next`."""

    items: tuple[Any, ...]
    next: NextPage | None


#: What a search asks for next.
PageRequest: TypeAlias = FirstPage | NextPage | HeldPage


def next_link(document: dict[str, Any]) -> str | None:
    """The `links.next` of a JSON:API document, or None on the last page."""
    links = document.get("links") or {}
    link = links.get("next") if isinstance(links, dict) else None
    if isinstance(link, dict):
        link = link.get("href")
    return link if isinstance(link, str) and link.strip() else None


def resolve_next_link(link: str, api_origin: str) -> str:
    """The absolute URL of a next link, which must stay on `api_origin`."""
    parts = urlsplit(link)
    if parts.scheme or parts.netloc:
        if f"{parts.scheme}://{parts.netloc}".lower() != api_origin.lower():
            raise SnykError(
                f"The Snyk API answered with a next-page link to another host "
                f"({parts.scheme}://{parts.hostname}), not to `api_url` ({api_origin}). "
                "The tap stopped rather than send the token there: check `api_url`, and any "
                "proxy between the tap and Snyk."
            )
        return link
    path = parts.path if parts.path.startswith("/") else f"/{parts.path}"
    if not (path == "/rest" or path.startswith("/rest/")):
        path = f"/rest{path}"
    return f"{api_origin}{path}" + (f"?{parts.query}" if parts.query else "")


def created_of(item: Any) -> Any:
    """The `created` of an audit-log item as Snyk sent it (None for an item that is no object)."""
    return item.get("created") if isinstance(item, dict) else None


def _page_identity(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What makes two URLs the same page, whatever their encoding or parameter order."""
    parts = urlsplit(url)
    return parts.path, tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))


class NextLinkPaginator(BaseAPIPaginator[str | None]):
    """Pages through `links.next`; stops on no link, an empty page, or a page already read."""

    def __init__(self, api_origin: str) -> None:
        super().__init__(None)
        self._api_origin = api_origin
        self._pages_read: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self._last_page: list[Any] = []
        self._trail: list[Any] = []  # the items of the last timestamp read

    def repeated_at_start(self, items: list[Any]) -> list[Any]:
        """The items at the start of a page that repeat the end of the page remembered last.

        Some servers serve the item(s) that ended a page again at the start of the next one (an
        off-by-one cursor); whether they are repeats or events of their own is the caller's call.
        """
        previous = self._last_page
        for count in range(min(len(previous), len(items)), 0, -1):
            if previous[-count:] == items[:count]:
                return items[:count]
        return []

    def remember(self, items: list[Any]) -> None:
        """Keep a page's items, as read, for `repeated_at_start` and `read_at`."""
        if not items:
            return
        last = created_of(items[-1])
        if (
            self._trail
            and created_of(self._trail[-1]) == last
            and all(created_of(item) == last for item in items)
        ):
            self._trail = self._trail + items  # one timestamp across pages
        else:
            run = itertools.takewhile(lambda item: created_of(item) == last, reversed(items))
            self._trail = list(run)[::-1]
        self._last_page = items

    def read_at(self, created: str) -> list[Any]:
        """The items of timestamp `created` read so far, if it is the last one read."""
        return self._trail if self._trail and created_of(self._trail[-1]) == created else []

    def next_after(self, response: requests.Response, items: list[Any]) -> str | None:
        """The URL of the page after this one, or None: no link, an empty page, or a page read.

        Raises SnykError when the link leads off the API's origin (after the page's items).
        """
        if not items:
            self.continue_if_empty(response)  # ends paging, with a word if a link went on
            return None
        self.advance(response)
        return None if self.finished else self.current_value

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        """An empty page ends paging; said as a warning when it still links to a next page."""
        if next_link(json_document(response)) is not None:
            _logger.warning(
                "Snyk answered an empty page that links to a next one: paging ends here, "
                "and the next run asks again from the bookmark."
            )
        return False

    @override
    def get_next(self, response: requests.Response) -> str | None:
        """The URL of the next page, or None when paging is over."""
        self._pages_read.add(_page_identity(response.request.url or ""))
        link = next_link(json_document(response))
        if link is None:
            return None
        url = resolve_next_link(link, self._api_origin)
        if _page_identity(url) in self._pages_read:
            # Snyk clients have met next links that point back at a page already read.
            _logger.warning("Snyk's next-page link leads back to a page already read: paging ends.")
            return None
        return url

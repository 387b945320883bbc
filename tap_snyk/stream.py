"""The kinds of stream tap-snyk reads, on the SDK's REST stream, wired to the run's API client.

`SnykStream` lends the SDK's request path the run's parts (`RunContext.api`: session, rate limit,
retries, credentials, judging answers) through the SDK's own hooks, and reads one partition, an
org or a group, as searches of pages: each page one request, sent through the SDK's request path
(`request_decorator(_request)`), by the fetcher's workers or one after another. Its two kinds:

- `AuditLogStream`: incremental, oldest first from each partition's bookmark; what to ask and
  what a page keeps is the audit-log search policy (`searches.py`).
- `LookupStream`: a JSON:API list read in full each run, whose deletions a loader learns from
  ACTIVATE_VERSION once every partition was read.

`streams.py` declares the streams themselves.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import RESTStream, SchemaDirectory
from singer_sdk.streams.rest import HTTPRequest, PageContext

from tap_snyk import schemas
from tap_snyk.client import RETRIABLE_ERRORS, Endpoint, Refused
from tap_snyk.errors import SnykError, SnykRefusal
from tap_snyk.fetching import FetchedPage, ReadyOrder, read_in_order
from tap_snyk.pagination import FirstPage, HeldPage, NextPage
from tap_snyk.records import (
    AUDIT_FIELDS,
    EventIdentities,
    MalformedItem,
    normalized_item,
    parse_timestamp,
    resource_record,
)
from tap_snyk.searches import AuditLogSearches, search_params
from tap_snyk.settings import rfc3339

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if TYPE_CHECKING:
    import requests
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context, Record

    from tap_snyk.pagination import NextLinkPaginator, PageRequest
    from tap_snyk.run import RunContext

SCHEMAS = SchemaDirectory(schemas)


@dataclass(frozen=True)
class Partitioning:
    """How a stream is partitioned: per org or per group. The twins differ only by this."""

    key: str  # the context key and the records' column: "org_id" or "group_id"
    noun: str  # what one partition is: "organization" or "group"

    def of(self, context: Context | None) -> str:
        """A partition in words, e.g. "organization 1234…"."""
        return (
            f"{self.noun} {context[self.key]}"
            if context and self.key in context
            else "the Snyk API"
        )

    def shaped(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A twins' schema made this partitioning's.

        `{scope}` (org, group) and `{noun}` (organization, group) in its names and words are
        filled in, and the partition key is a required string.
        """
        scope = self.key.removesuffix("_id")
        text = json.dumps(schema).replace("{scope}", scope).replace("{noun}", self.noun)
        shaped: dict[str, Any] = json.loads(text)
        shaped["properties"][self.key]["type"] = "string"
        shaped["required"] = list(dict.fromkeys([*shaped.get("required", []), self.key]))
        return shaped


PER_ORG = Partitioning("org_id", "organization")
PER_GROUP = Partitioning("group_id", "group")


class SnykStream(RESTStream[FirstPage | NextPage]):
    """A stream read from the Snyk REST API, one partition per org or per group."""

    records_jsonpath = "$.data[*]"
    #: Per org or per group.
    partitioning: ClassVar[Partitioning]
    #: The Snyk permission a token needs to read this stream.
    required_permission: ClassVar[str]
    #: What else a person can do about a 403 than grant the permission.
    refusal_remedy: ClassVar[str] = "remove the id from the settings"
    #: `limit` of a paged JSON:API list (the audit-log searches page with `size` instead).
    page_limit: ClassVar[int | None] = None

    #: The schema file (`schemas/<schema_file>.json`): the stream's name, unless twins share one.
    schema_file: ClassVar[str | None] = None

    def __init__(self, tap: Tap, run: RunContext) -> None:
        """A stream of `tap`'s catalog that reads through `run`'s API client."""
        schema = SCHEMAS.get_schema(self.schema_file or self.name)
        if self.schema_file:
            schema = self.partitioning.shaped(schema)
        super().__init__(tap=tap, schema=schema)
        self.run = run
        #: What this run skipped of the stream: partitions refused, items not loaded.
        self.skipped: list[str] = []

    # -- the SDK's hooks, lent the run's parts ----------------------------------------------------

    @property
    @override
    def url_base(self) -> str:
        """The REST API of the configured region."""
        return f"{self.run.api.origin}/rest"

    @property
    @override
    def authenticator(self) -> Any:  # an AuthBase: the run's credentials
        """The run's credentials, shared by every stream: an API token or OAuth access tokens."""
        return self.run.api.credentials

    @property
    @override
    def requests_session(self) -> requests.Session:
        """The calling thread's HTTP session: the main thread and each worker its own."""
        return self.run.api.session()

    @property
    @override
    def timeout(self) -> int:
        """Seconds one request may take, so that a hung connection never hangs a job."""
        return self.run.settings.request_timeout

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: FirstPage | NextPage | None
    ) -> dict[str, Any]:
        """A first page's parameters; a next link already carries them all."""
        params: dict[str, Any] = {"version": self.run.settings.api_version}
        if self.page_limit:
            params["limit"] = self.page_limit
        return params

    @override
    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        """A first page from path and parameters; a later page is its next link as given."""
        token = page.next_page_token
        if isinstance(token, NextPage):
            return HTTPRequest(url=token.url, headers=self.http_headers)
        request = super().get_http_request(page=page)
        request.safe_query_chars = ","  # lists go comma separated, as Snyk documents
        return request

    @override
    def get_new_paginator(self) -> NextLinkPaginator:
        """Follow `links.next`, never off the API's origin."""
        return self.run.api.paginator()

    @override
    def validate_response(self, response: requests.Response) -> None:
        """Retry what may pass (429, 5xx, a body that is cut off); refuse the rest."""
        self.run.api.judge(response, self.records_jsonpath)

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        """The items of a page."""
        return self.run.api.records(response, self.records_jsonpath)

    @override
    def request_decorator(self, func: Any) -> Any:
        """Send at the pace of the run's rate limit; retry passing faults for a bounded time."""
        return self.run.api.retrying(func, subject=lambda args: self.partitioning.of(args[1]))

    @property
    @override
    def partitions(self) -> list[dict[str, Any]] | None:
        """One context per org or group of the run's scope, in the order they are written.

        While the run reads ahead, the SDK syncs whichever partition is ready first, so that a
        slow or failing org holds no other back (`backlog.py`).
        """
        return self.in_ready_order(self.scope_partitions())

    def scope_partitions(self) -> list[Context]:
        """One context per org or group of the run's scope, in the scope's order."""
        key = self.partitioning.key
        return [{key: partition} for partition in self.run.scope.partition_ids(key)]

    def in_ready_order(self, contexts: Iterable[Context]) -> list[dict[str, Any]]:
        """Partitions of this stream, iterated in the order they are ready while reading ahead."""
        listed = [dict(context) for context in contexts]
        fetcher = self.run.fetcher
        return ReadyOrder(listed, fetcher, self) if fetcher else listed

    # -- reading a partition ----------------------------------------------------------------------

    def endpoint(self, context: Context | None) -> Endpoint:
        """What a partition's requests read, in the words their failures are told in."""
        remedy = self.refusal_remedy.format(stream=self.name)
        return Endpoint(self.partitioning.of(context), self.required_permission, remedy)

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The records of one partition; a refusal the stream may skip is a warning."""
        if not context or self.partitioning.key not in context:
            # No org or group to read (the SDK syncs an empty partition list as one empty context).
            self.logger.debug(
                "No %s configured or discovered for %s.", self.partitioning.key, self.name
            )
            return
        try:
            yield from self.records_from(self.request_records(context), context)
        except SnykRefusal as refusal:
            if not self.may_skip(context, refusal):
                raise
            self.logger.warning("Skipped: %s", refusal)
            self.skipped.append(self.partitioning.of(context))

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Every item of a partition, page by page; a failure names the org or group.

        The pages of a partition the sync planned come from the run's fetcher, read ahead by
        worker threads; any other is read here, one page after another. The SDK's request
        counter counts the pages.
        """
        fetcher = self.run.fetcher
        pages = (fetcher.take(self, context) if fetcher else None) or read_in_order(self, context)
        with self.get_http_request_counter() as counter:
            counter.with_context(context)
            try:
                with contextlib.closing(pages):  # a partition left early frees what was read ahead
                    for items in pages:
                        counter.increment()
                        yield from items
            except (Refused, *RETRIABLE_ERRORS) as error:
                raise self.run.api.failure(error, self.endpoint(context)) from None

    def records_from(self, items: Iterable[Any], context: Context) -> Iterator[dict[str, Any]]:
        """The records of a partition's items."""
        raise NotImplementedError

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        """Each record as it is written: counted for the run's progress and summary."""
        partition = (context or {}).get(self.partitioning.key)
        self.run.report.record(self.name, partition, row.get("created"))
        return row

    def may_skip(self, context: Context, refusal: SnykRefusal) -> bool:
        """Whether a refused partition is skipped with a warning rather than failing the run."""
        raise NotImplementedError

    # -- pages, for the fetcher ------------------------------------------------------------------

    def planned_partitions(self) -> list[Context]:
        """The partitions a sync reads, so that their pages can be read ahead."""
        return self.scope_partitions()

    def first_page_request(self, context: Context | None) -> FirstPage:
        """What a partition's first page asks (built in the main thread: it may read state)."""
        return FirstPage()

    def fetch_page(
        self,
        context: Context | None,
        request: PageRequest,
        paginator: NextLinkPaginator,
        *,
        may_split: bool,
    ) -> FetchedPage:
        """Send one request and read its page, in the main thread or a worker.

        Prepared as the SDK prepares a request, sent through `request_decorator` (rate limit,
        retries, the authentication and metrics of `_request`), judged by `validate_response`.
        """
        if isinstance(request, HeldPage):
            return self.read_page(context, request, [], None, paginator, may_split=False)
        http = self.get_http_request(
            page=PageContext(stream_context=context, next_page_token=request)
        )
        prepared = self.build_prepared_request(
            method=http.method, url=http.url, params=http.encode_params(), headers=http.headers
        )
        response = self.request_decorator(self._request)(prepared, context)
        items = list(self.parse_response(response))
        try:
            next_url = paginator.next_after(response, items)
        except SnykError as failure:  # a next link that may not be followed: after the items
            page = self.read_page(context, request, items, None, paginator, may_split=False)
            page.failure = failure
            return page
        return self.read_page(context, request, items, next_url, paginator, may_split=may_split)

    def read_page(
        self,
        context: Context | None,
        request: PageRequest,
        items: list[Any],
        next_url: str | None,
        paginator: NextLinkPaginator,
        *,
        may_split: bool,
    ) -> FetchedPage:
        """What a page keeps, and what comes after it: the next link, as given."""
        return FetchedPage(items, next=NextPage(next_url) if next_url else None)


class AuditLogStream(SnykStream):
    """Audit logs, read oldest first from each partition's bookmark (see `searches.py`)."""

    replication_key = "created"
    is_sorted = True
    primary_keys = ("event_id",)
    records_jsonpath = "$.data.items[*]"
    schema_file = "audit_logs"

    @functools.cached_property
    def searches(self) -> AuditLogSearches:
        """What each partition asks Snyk, page by page, and what each page keeps."""
        return AuditLogSearches(self.run.settings, self.logger)

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: FirstPage | NextPage | None
    ) -> dict[str, Any]:
        """A search's first page: the version, then every search parameter spelled out."""
        assert isinstance(next_page_token, FirstPage)  # a later page is its next link
        assert next_page_token.span is not None  # every audit-log search covers a span
        params = super().get_url_params(context, next_page_token)
        return {**params, **search_params(self.run.settings, next_page_token.span)}

    @override
    def first_page_request(self, context: Context | None) -> FirstPage:
        """The partition's first search, from its bookmark and the sweep policy."""
        first = self._first_page(context)
        assert first is not None  # only partitions with something to ask are read
        return first

    def _first_page(self, context: Context | None) -> FirstPage | None:
        partition = str((context or {})[self.partitioning.key])
        state = self.get_context_state(context)
        first = self.searches.first_page(partition, state, self.partitioning.of(context))
        if first is not None and first.span is not None:
            self.run.report.span(self.name, partition, first.span.start, first.span.end)
        return first

    @override
    def planned_partitions(self) -> list[Context]:
        """The partitions with something to ask (their bookmark is not past `end_date`)."""
        return [context for context in super().planned_partitions() if self._first_page(context)]

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Nothing to ask when the bookmark is already past `end_date` (Snyk would answer 400)."""
        if context and self.partitioning.key in context and self._first_page(context) is None:
            self.logger.debug(
                "%s: nothing before `end_date` after the bookmark.", self.partitioning.of(context)
            )
            return
        yield from super().get_records(context)

    @override
    def read_page(
        self,
        context: Context | None,
        request: PageRequest,
        items: list[Any],
        next_url: str | None,
        paginator: NextLinkPaginator,
        *,
        may_split: bool,
    ) -> FetchedPage:
        """What the search policy keeps of a page, and which searches follow it."""
        return self.searches.after_page(
            request,
            items,
            next_url,
            paginator,
            may_split=may_split,
            subject=self.partitioning.of(context),
        )

    @override
    def records_from(self, items: Iterable[Any], context: Context) -> Iterator[dict[str, Any]]:
        """Records with the partition's id and a stable `event_id` (of the whole item).

        An item the tap cannot read (not an object, no readable `created`) is logged as an
        error and not loaded; the other items are, and the run ends with exit status 1.
        """
        key = self.partitioning.key
        partition = {key: context[key]}
        subject = self.partitioning.of(context)
        identities = EventIdentities()
        malformed = 0
        for raw in items:
            try:
                item = normalized_item(raw, partition)
            except MalformedItem as error:
                malformed += 1
                self.logger.error(
                    "%s: %s sent an item that %s; it is not loaded.", self.name, subject, error
                )
                continue
            if unknown := item.keys() - AUDIT_FIELDS:
                self._note_unknown_fields(frozenset(unknown))
            record = {field: item.get(field) for field in AUDIT_FIELDS}
            record["event_id"] = identities.event_id(item)
            yield record
        if malformed:
            self.run.report_problem(
                f"{self.name}: {malformed} item(s) of {subject} could not be read and were not "
                "loaded (each is logged above); every other item was. Snyk sent them malformed: "
                "report them to Snyk support. Runs go on past them.",
            )
        self.searches.record_sweep(str(context[key]), self.get_context_state(context))
        self.run.report.partition_done(self.name, str(context[key]))

    @override
    def may_skip(self, context: Context, refusal: SnykRefusal) -> bool:
        """Discovered orgs that refuse (403, or 404: gone) are skipped with a warning.

        Unlike a configured id, a discovered org cannot be fixed in the settings, so it must not
        stop the other orgs.
        """
        return refusal.status in (403, 404) and self.run.scope.is_discovered(context.get("org_id"))

    @functools.cache  # noqa: B019 (a handful of field names, once per stream)
    def _note_unknown_fields(self, fields: frozenset[str]) -> None:
        self.logger.warning(
            "Snyk sent audit-log fields that %s has no column for: %s. They count in event_id "
            "but are not loaded.",
            self.name,
            ", ".join(sorted(fields)),
        )

    @functools.cached_property
    def _signpost(self) -> str:
        """The SDK's cap on a bookmark (the stream's start), in the tap's timestamp format."""
        signpost = self.get_replication_key_signpost(None)
        assert isinstance(signpost, datetime)  # `created` is a date-time replication key
        return rfc3339(signpost)

    @override
    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        # Re-read events must not move the bookmark back, nor a future one past the run's start.
        starting = self.get_starting_replication_key_value(context)
        record = self.searches.bookmarked(
            latest_record,
            starting=_in_tap_format(starting) if starting else None,
            signpost=self._signpost,
            subject=lambda: f"{self.name}: {self.partitioning.of(context)}",
        )
        if record is not None:
            super()._increment_stream_state(record, context=context)


@functools.lru_cache(maxsize=1024)
def _in_tap_format(timestamp: str) -> str:
    """A timestamp (a bookmark, or `start_date` as configured) in the tap's one format."""
    return rfc3339(parse_timestamp(timestamp))


class LookupStream(SnykStream):
    """A JSON:API list read in full each run, one record per resource.

    Lookups only name what the audit logs hold, so an org or group whose lookup the token may
    not read is skipped with a warning rather than stopping the audit logs.

    Each run's records carry a version (the run's start); once the stream is read in full, an
    ACTIVATE_VERSION of that version lets the loader mark (target-postgres: `_sdc_deleted_at`)
    or delete (`hard_delete`) the rows that Snyk no longer lists: removed members, projects,
    orgs. The message is per stream, so a run that skipped a partition sends none for the
    stream: that partition's rows would otherwise look removed.
    """

    primary_keys = ("id",)
    page_limit: ClassVar[int | None] = 100
    refusal_remedy = (
        "deselect the stream (drop `{stream}.*` from tap-snyk's `select` in meltano.yml)"
    )
    #: The version this run's records carry, to activate once the stream is read in full.
    read_version: int | None = None

    @override
    def records_from(self, items: Iterable[Any], context: Context) -> Iterator[dict[str, Any]]:
        """The records of a partition's items; an item that is not an object is a problem."""
        properties = self.schema["properties"]
        partition = {k: v for k, v in context.items() if k in properties}
        subject = self.partitioning.of(context)
        for item in items:
            if not isinstance(item, dict):
                self.run.report_problem(
                    f"{self.name}: {subject} sent an item that is not an object "
                    f"({type(item).__name__}); it is not loaded."
                )
                self.skipped.append(f"an item of {subject}")
                continue
            yield {**resource_record(item, properties), **partition}

    @override
    def may_skip(self, context: Context, refusal: SnykRefusal) -> bool:
        """Any org or group that refuses (403 or 404) is skipped, with a warning."""
        return refusal.status in (403, 404)

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        """Always: it is how a loader learns what Snyk no longer lists."""
        return True

    @override
    def _write_activate_version_message(self, full_table_version: int) -> None:
        # The SDK calls this as a sync starts, before the first record: a target would then
        # mark every row removed until the records come back, and a partition skipped later
        # could not be spared. The version is activated after the last record instead.
        self.read_version = full_table_version

    @override
    def finalize_state_progress_markers(self, state: dict | None = None) -> None:
        """The SDK's end of a stream's sync (the tap calls it once the stream is read)."""
        super().finalize_state_progress_markers(state)
        if state is None:
            self.activate_read_version()

    @property
    def reads_group_listings(self) -> bool:
        """Whether some of this stream's orgs come from the groups' org listings."""
        return self.partitioning is PER_ORG and self.run.scope.discover_orgs

    def unread(self) -> list[str]:
        """What this run should have read of the stream but did not.

        The skipped partitions, and the groups' refused org listings when its orgs come from them.
        """
        refused_listings = self.run.scope.refused if self.reads_group_listings else {}
        return [*self.skipped, *(f"the org listing of group {g}" for g in refused_listings)]

    def activate_read_version(self) -> None:
        """After a complete read, ACTIVATE_VERSION; after one that missed a part, a warning.

        A run that fails ends before this, so it never marks anything removed.
        """
        if self.read_version is None:  # not selected, or not read
            return
        if unread := self.unread():
            self.logger.warning(
                "%s: deletions held back this run, because %s %s skipped: rows that Snyk no "
                "longer lists stay current until a run reads every org and group of the stream.",
                self.name,
                ", ".join(unread),
                "was" if len(unread) == 1 else "were",
            )
            return
        super()._write_activate_version_message(self.read_version)

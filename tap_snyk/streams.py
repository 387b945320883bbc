"""The streams of tap-snyk, declared: name, path, partition, keys.

Audit logs are read incrementally, one partition per org or group. The lookup streams
(organizations, memberships, projects) give the UUIDs in the audit logs their names; they are
read in full on every run and share the same partitions, client and failure handling.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import SchemaDirectory, StreamSchema
from singer_sdk.streams.rest import HTTPRequest

from tap_snyk import schemas
from tap_snyk.client import SnykStream
from tap_snyk.errors import SnykError, SnykRefusal
from tap_snyk.fetching import FetchedPage
from tap_snyk.pagination import created_of
from tap_snyk.records import (
    AUDIT_FIELDS,
    EventIdentities,
    MalformedItem,
    normalized_item,
    parse_timestamp,
    resource_record,
)
from tap_snyk.settings import rfc3339
from tap_snyk.windows import split_after_first_page

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

    from tap_snyk.pagination import NextLinkPaginator


SCHEMAS = SchemaDirectory(schemas)
#: A partition's state key: when its lookback window was last re-read in full (a sweep).
SWEPT_AT = "lookback_swept_at"


def api_timestamp(moment: datetime) -> str:
    """A timestamp for Snyk's `from` / `to`: whole seconds as Snyk documents them, else µs."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if not moment.microsecond else rfc3339(moment)


class ScopedStream(SnykStream):
    """A stream read once per org or once per group, each a partition of its own."""

    schema = StreamSchema(SCHEMAS)  # schemas/<stream name>.json
    #: The context key naming a partition: "org_id" or "group_id".
    partition_key: ClassVar[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: What this run skipped of the stream: partitions refused, items not loaded.
        self.skipped: list[str] = []

    @functools.cached_property
    def partitions(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """One context per org or group of the run's scope."""
        ids = self.tap.scope.partition_ids(self.partition_key)
        return [{self.partition_key: partition_id} for partition_id in ids]

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The records of one partition; a failure delivers what was read, then says why."""
        if not context or self.partition_key not in context:
            # No org or group to read (the SDK syncs an empty partition list as one empty context).
            self.logger.info(
                "No %s configured or discovered for %s.", self.partition_key, self.name
            )
            return
        try:
            yield from self.records_from(self.request_records(context), context)
        except SnykError as error:
            if isinstance(error, SnykRefusal) and self.may_skip(context, error):
                self.logger.warning("Skipped: %s", error)
                self.skipped.append(self.subject.format(**context))
                return
            # Every record read so far has been written: this state lets the next run resume
            # right after them rather than at the last periodic STATE.
            self.tap.state_writer.write_state(self.tap.state)
            raise

    def records_from(self, items: Iterable[dict[str, Any]], context: Context) -> Iterator[dict]:
        """The records of a partition's items; an item that is not an object is a problem."""
        properties = self.schema["properties"]
        partition = {k: v for k, v in context.items() if k in properties}
        subject = self.subject.format(**context)
        for item in items:
            if not isinstance(item, dict):
                self.tap.report_problem(
                    f"{self.name}: {subject} sent an item that is not an object "
                    f"({type(item).__name__}); it is not loaded."
                )
                self.skipped.append(f"an item of {subject}")
                continue
            yield {**resource_record(item, properties), **partition}

    def may_skip(self, context: Context, refusal: SnykRefusal) -> bool:
        """Discovered orgs that refuse (403, or 404: gone) are skipped with a warning.

        Unlike a configured id, a discovered org cannot be fixed in the settings, so it must not
        stop the other orgs.
        """
        return refusal.status in (403, 404) and self.tap.scope.is_discovered(context.get("org_id"))


class AuditLogStream(ScopedStream):
    """Audit logs, read oldest first from each partition's bookmark.

    A run sweeps: it starts `lookback_hours` before the partition's bookmark to catch events that
    Snyk publishes late; `event_id` lets a keyed destination hold the re-read events once. With
    `lookback_interval_minutes`, a partition sweeps at most once per interval (its state records
    when, once a sweep is complete) and the runs in between start at the bookmark.
    """

    records_jsonpath = "$.data.items[*]"
    replication_key = "created"
    is_sorted = True
    primary_keys = ("event_id",)

    @functools.cached_property
    def _sweeps(self) -> dict[str, datetime | None]:
        """Per partition id: when this run's sweep of it began; None: it reads from the bookmark."""
        return {}

    def search_start(self, context: Context | None) -> datetime:
        """`from` of a search: the bookmark, less the lookback if sweeping; at least start_date."""
        start = self.settings.start_date
        bookmark = self.get_starting_replication_key_value(context)
        if bookmark:
            partition_id = (context or {}).get(self.partition_key)
            # Undecided (asked before the partition's sync): the whole lookback, to be safe.
            from_bookmark = partition_id in self._sweeps and self._sweeps[partition_id] is None
            lookback = timedelta(0) if from_bookmark else self.settings.lookback
            start = max(start, parse_timestamp(bookmark) - lookback)
        return start

    def _sweep_due(self, context: Context) -> datetime | None:
        """Now, if this run must re-read the partition's lookback window; None if it need not.

        When in doubt (no record of a sweep, or one that is not a past time), it sweeps.
        """
        now = datetime.now(timezone.utc)
        interval = self.settings.lookback_interval
        if not interval or not self.get_starting_replication_key_value(context):
            return now  # every run sweeps; or this is the first read, from start_date
        recorded = self.get_context_state(context).get(SWEPT_AT)
        swept = _past_time(recorded, now)
        if swept is None:
            if recorded is not None:
                self.logger.warning(
                    "%s: `%s` in the state is not a past time (%r); reading its lookback again.",
                    self.subject.format(**context),
                    SWEPT_AT,
                    recorded,
                )
            return now
        return now if now - swept >= interval else None

    def get_url_params(
        self, context: Context | None, next_page_token: str | None
    ) -> dict[str, Any]:
        """The search, every parameter spelled out: Snyk's defaults (DESC, yesterday) lose data."""
        # Whole seconds, as Snyk documents; flooring `from` only re-reads events, never skips one.
        start = self.search_start(context).replace(microsecond=0)
        return self._search_params(context, start, self.settings.end_date)

    def _search_params(
        self, context: Context | None, start: datetime, end: datetime | None
    ) -> dict[str, Any]:
        settings = self.settings
        params = super().get_url_params(context, None)
        params["from"] = api_timestamp(start)
        params["sort_order"] = "ASC"
        params["size"] = settings.page_size
        if end:
            params["to"] = api_timestamp(end)
        if settings.events:
            params["events"] = ",".join(settings.events)
        if settings.exclude_events:
            params["exclude_events"] = ",".join(settings.exclude_events)
        return params

    @override
    def fetch_page(
        self,
        context: Context | None,
        request: HTTPRequest,
        paginator: NextLinkPaginator,
        *,
        may_split: bool = False,
    ) -> FetchedPage:
        """A page; when reading ahead, a busy search's first page splits the rest in windows.

        A page that begins with the items that ended the page before is read once (see
        `_without_repeats`).
        """
        page = super().fetch_page(context, request, paginator)
        if "from" not in request.params:  # a next page
            page.items = self._without_repeats(context, page.items, paginator)
        paginator.remember(page.items)
        if not may_split or page.next is None or "from" not in request.params:
            return page  # not a search's first page, or nothing after it
        try:
            created = [parse_timestamp(str(item["created"])) for item in page.items]
        except (KeyError, TypeError, ValueError):
            return page  # an item without a readable time: its search is read as it comes
        end = request.params.get("to")
        split = split_after_first_page(
            created,
            parse_timestamp(str(request.params["from"])),
            parse_timestamp(str(end)) if end else None,
            datetime.now(timezone.utc),
        )
        if split is None:
            return page
        windows = []
        for index, window_start in enumerate(split.starts):
            params = {**request.params, "from": api_timestamp(window_start)}
            if index + 1 < len(split.starts):
                params["to"] = api_timestamp(split.starts[index + 1])
            windows.append(dataclasses.replace(request, params=params))
        return FetchedPage(page.items[: split.kept], then=windows)

    def _without_repeats(
        self, context: Context | None, items: list[dict[str, Any]], paginator: NextLinkPaginator
    ) -> list[dict[str, Any]]:
        """A next page's items, less what Snyk served again from the end of the page before.

        A repeat of items of several timestamps is certain (the page before was oldest first)
        and dropped. Items of one timestamp might instead be identical events of their own:
        that second is asked again, in one search, and the page keeps of that timestamp what
        the answer holds beyond what was already read.
        """
        repeated = paginator.repeated_at_start(items)
        if not repeated:
            return items
        created = {str(created_of(item)) for item in repeated}
        if len(created) > 1:
            kept = items[len(repeated) :]
        else:
            [moment] = created
            try:
                second = self._items_of_second(context, parse_timestamp(moment))
            except ValueError:  # no readable time: kept as read, the item's own error follows
                return items
            truth = [item for item in second if created_of(item) == moment]
            head = len(list(itertools.takewhile(lambda i: created_of(i) == moment, items)))
            kept = truth[len(paginator.read_at(moment)) :] + items[head:]
        if dropped := len(items) - len(kept):
            self.logger.warning(
                "%s: Snyk's next page began with %d item(s) that ended the page before (created "
                "%s): they are read once.",
                self.subject.format(**(context or {})),
                dropped,
                ", ".join(sorted(created)),
            )
        return kept

    def _items_of_second(self, context: Context | None, moment: datetime) -> list[dict[str, Any]]:
        """Every item of the second of `moment`, in one search (followed to its end)."""
        second = moment.replace(microsecond=0)
        params = self._search_params(context, second, second + timedelta(seconds=1))
        request: HTTPRequest | None = HTTPRequest(
            url=self.get_url(context),
            params=params,
            headers=self.http_headers,
            safe_query_chars=",",
        )
        paginator = self.get_new_paginator()
        items: list[dict[str, Any]] = []
        while request is not None:
            page = SnykStream.fetch_page(self, context, request, paginator)
            items += page.items
            request = page.next
        return items

    def planned_partitions(self) -> list[Context]:
        """The partitions with something to ask, each `from` as the sync will send it."""
        planned = []
        for context in super().planned_partitions():
            # What the SDK does at the start of each partition's sync: `from` is read from it.
            self._write_starting_replication_value(context)
            self._decide_sweep(context)
            if not self._past_end_date(context):
                planned.append(context)
        return planned

    def records_from(self, items: Iterable[dict[str, Any]], context: Context) -> Iterator[dict]:
        """Records with the partition's id and a stable `event_id` (of the whole item).

        An item the tap cannot read (not an object, no readable `created`) is logged as an
        error and not loaded; the other items are, and the run ends with exit status 1.
        """
        partition = {self.partition_key: context[self.partition_key]}
        subject = self.subject.format(**context)
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
            self.tap.report_problem(
                f"{self.name}: {malformed} item(s) of {subject} could not be read and were not "
                "loaded (each is logged above); every other item was. Snyk sent them malformed: "
                "report them to Snyk support. Runs go on past them.",
            )
        # Every page is read and every record written: only now does a sweep count, so a run
        # that ends part-way leaves the previous sweep recorded and the next run sweeps again.
        began = self._sweeps.get(context[self.partition_key])
        if began is not None and self.settings.lookback_interval:
            self.get_context_state(context)[SWEPT_AT] = rfc3339(began)

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Nothing to ask when the bookmark is already past `end_date` (Snyk would answer 400)."""
        if context and self.partition_key in context:
            self._decide_sweep(context)
        if context and self._past_end_date(context):
            self.logger.info("%s: nothing before `end_date` after the bookmark.", context)
            return
        yield from super().get_records(context)

    def _decide_sweep(self, context: Context) -> None:
        # Once per partition and run: at the plan when reading ahead, else at its sync, so that
        # the `from` of the pages read ahead is the one the sync would have asked.
        if context[self.partition_key] not in self._sweeps:
            self._sweeps[context[self.partition_key]] = self._sweep_due(context)

    def _past_end_date(self, context: Context) -> bool:
        end = self.settings.end_date
        return end is not None and self.search_start(context) >= end

    @functools.cache  # noqa: B019 (a handful of field names, once per stream)
    def _note_unknown_fields(self, fields: frozenset[str]) -> None:
        self.logger.warning(
            "Snyk sent audit-log fields that %s has no column for: %s. They count in event_id "
            "but are not loaded.",
            self.name,
            ", ".join(sorted(fields)),
        )

    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        # Events re-read from the lookback window are older than the bookmark; the bookmark must
        # not move back for them (nor may the SDK's sort check reject them).
        created = parse_timestamp(latest_record["created"])
        bookmark = self.get_starting_replication_key_value(context)
        if bookmark and created < parse_timestamp(bookmark):
            return
        # A bookmark never passes the run's start (the SDK's signpost, which a sorted stream does
        # not apply by itself): an event dated in the future would hide every later one.
        signpost = self.get_replication_key_signpost(context)
        if isinstance(signpost, datetime) and created > signpost:
            self.logger.warning(
                "%s: %s sent an event dated %s, after the start of this run (%s): it is loaded, "
                "but the bookmark stops at the run's start so that later events are still read.",
                self.name,
                self.subject.format(**(context or {})),
                latest_record["created"],
                rfc3339(signpost),
            )
            latest_record = {**latest_record, "created": rfc3339(signpost)}
        super()._increment_stream_state(latest_record, context=context)


def _past_time(value: object, now: datetime) -> datetime | None:
    """A timestamp from the state, if it is one and not in the future (a hand-edited state)."""
    try:
        moment = parse_timestamp(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment <= now else None


class OrgAuditLogsStream(AuditLogStream):
    """Audit logs of organizations: the configured ones and, with `discover_orgs`, their groups'."""

    name = "org_audit_logs"
    path = "/orgs/{org_id}/audit_logs/search"
    partition_key = "org_id"
    subject = "organization {org_id}"
    required_permission = "org.audit_log.read"


class GroupAuditLogsStream(AuditLogStream):
    """Audit logs of groups."""

    name = "group_audit_logs"
    path = "/groups/{group_id}/audit_logs/search"
    partition_key = "group_id"
    subject = "group {group_id}"
    required_permission = "group.audit.read"


class LookupStream(ScopedStream):
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
        return self.partition_key == "org_id" and self.tap.scope.discover_orgs

    def unread(self) -> list[str]:
        """What this run should have read of the stream but did not.

        The skipped partitions, and the groups' refused org listings when its orgs come from them.
        """
        refused_listings = self.tap.scope.refused if self.reads_group_listings else {}
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


class GroupMembershipsStream(LookupStream):
    """Who is in each group, with which role: names and emails for the audit logs' user ids."""

    name = "group_memberships"
    path = "/groups/{group_id}/memberships"
    partition_key = "group_id"
    subject = "group {group_id}"
    required_permission = "group.membership.read"


class OrgMembershipsStream(LookupStream):
    """Who is in each org, with which role."""

    name = "org_memberships"
    path = "/orgs/{org_id}/memberships"
    partition_key = "org_id"
    subject = "organization {org_id}"
    required_permission = "org.membership.read"


class ProjectsStream(LookupStream):
    """The projects of each org: names and types for the audit logs' project ids."""

    name = "projects"
    path = "/orgs/{org_id}/projects"
    partition_key = "org_id"
    subject = "organization {org_id}"
    required_permission = "org.project.read"


class OrganizationsStream(LookupStream):
    """Every configured org and every org of the configured groups, with names and slugs."""

    name = "organizations"
    path = "/orgs/{org_id}"
    records_jsonpath = "$.data"
    page_limit = None  # one org per request
    partition_key = "org_id"
    subject = "organization {org_id}"
    required_permission = "org.read"

    @property
    def partitions(self) -> None:  # type: ignore[override]
        """None: the groups' orgs come from their listings, the other orgs one by one."""
        return None

    @property
    @override
    def reads_group_listings(self) -> bool:
        """Always: the orgs of every configured group come from its listing."""
        return True

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The groups' orgs from their listings, then each configured org not among them.

        A group whose listing was refused is skipped with a warning, as lookups are.
        """
        scope = self.tap.scope
        properties = self.schema["properties"]
        for group_id in scope.group_ids:
            if refusal := scope.refused.get(group_id):
                self.logger.warning("Skipped: %s", refusal)
            for org in scope.group_orgs.get(group_id, ()):
                yield resource_record(org, properties)
        for context in self.planned_partitions():
            yield from super().get_records(context)

    def planned_partitions(self) -> list[Context]:
        """The configured orgs that no group's listing described: each asked for by itself."""
        scope = self.tap.scope
        listed = {org["id"] for orgs in scope.group_orgs.values() for org in orgs}
        return [{"org_id": org_id} for org_id in scope.org_ids if org_id not in listed]


class GroupOrgsStream(SnykStream):
    """The orgs of a group: the listing behind `discover_orgs` (and `organizations`).

    Not a stream of the catalog: `TapSnyk.resolve_scope` reads it once, at the start of a run.
    """

    name = "group_orgs"
    path = "/groups/{group_id}/orgs"
    schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {"id": {"type": "string"}}}
    page_limit = 100
    subject = "group {group_id}"
    required_permission = "group.read (to list the group's organizations)"
    refusal_remedy = "turn `discover_orgs` off and name the group's orgs in `org_ids`"


class GroupOrgsLookupStream(GroupOrgsStream):
    """The same listing when only the `organizations` lookup needs it (`discover_orgs` off)."""

    refusal_remedy = LookupStream.refusal_remedy.replace("{stream}", "organizations")


class SelfStream(SnykStream):
    """Who the token belongs to: the first thing the connection check asks."""

    name = "self"
    path = "/self"
    records_jsonpath = "$.data"
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"id": {"type": "string"}, "attributes": {"type": "object"}},
    }
    subject = "`/rest/self` (who the credentials belong to)"

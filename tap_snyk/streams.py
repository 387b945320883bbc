"""The streams of tap-snyk, declared: name, path, partition, keys."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import SchemaDirectory, StreamSchema

from tap_snyk import schemas
from tap_snyk.client import SnykStream
from tap_snyk.errors import SnykError, SnykRefusal
from tap_snyk.records import EventIdentities, audit_record, parse_timestamp
from tap_snyk.settings import rfc3339

if TYPE_CHECKING:
    from datetime import datetime

    from singer_sdk.helpers.types import Context, Record

SCHEMAS = SchemaDirectory(schemas)


class AuditLogStream(SnykStream):
    """Audit logs, one partition per org or group, read oldest first from each bookmark.

    Each run starts `lookback_hours` before the partition's bookmark to catch events that Snyk
    publishes late; `event_id` lets a keyed destination hold the re-read events once.
    """

    schema = StreamSchema(SCHEMAS)  # schemas/<stream name>.json
    records_jsonpath = "$.data.items[*]"
    replication_key = "created"
    is_sorted = True
    primary_keys = ("event_id",)
    #: The context key naming a partition: "org_id" or "group_id".
    partition_key: ClassVar[str]

    _partitions: list[dict[str, Any]] | None = None

    @abc.abstractmethod
    def partition_ids(self) -> Iterable[str]:
        """The ids of the orgs or groups to read."""

    @property
    def partitions(self) -> list[dict[str, Any]]:
        """One context per org or group, each with a bookmark of its own; listed once a run."""
        if self._partitions is None:
            self._partitions = [{self.partition_key: pid} for pid in self.partition_ids()]
        return self._partitions

    def search_start(self, context: Context | None) -> datetime:
        """`from` of a partition's search: its bookmark less the lookback, not before start_date."""
        start = self.settings.start_date
        bookmark = self.get_starting_replication_key_value(context)
        if bookmark:
            start = max(start, parse_timestamp(bookmark) - self.settings.lookback)
        return start

    def get_url_params(
        self, context: Context | None, next_page_token: str | None
    ) -> dict[str, Any]:
        """The search, every parameter spelled out: Snyk's defaults (DESC, yesterday) lose data."""
        settings = self.settings
        params = super().get_url_params(context, next_page_token)
        # Whole seconds, as Snyk documents; flooring `from` only re-reads events, never skips one.
        params["from"] = rfc3339(self.search_start(context).replace(microsecond=0))
        params["sort_order"] = "ASC"
        params["size"] = settings.page_size
        if settings.end_date:
            params["to"] = rfc3339(settings.end_date)
        if settings.events:
            params["events"] = ",".join(settings.events)
        if settings.exclude_events:
            params["exclude_events"] = ",".join(settings.exclude_events)
        return params

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Records with the partition's id and a stable `event_id`."""
        if not context or self.partition_key not in context:
            # No org or group to read (the SDK syncs an empty partition list as one empty context).
            self.logger.info(
                "No %s configured or discovered for %s.", self.partition_key, self.name
            )
            return
        partition = {self.partition_key: context[self.partition_key]}
        identities = EventIdentities()
        try:
            for item in self.request_records(context):
                record = audit_record(item, partition)
                record["event_id"] = identities.event_id(record)
                yield record
        except SnykError as error:
            if isinstance(error, SnykRefusal) and self.may_skip(context, error):
                self.logger.warning("Skipped: %s", error)
                return
            # Every record read so far has been written: this state lets the next run resume
            # right after them rather than at the last periodic STATE.
            self._tap.state_writer.write_state(self._tap.state)
            raise

    def may_skip(self, context: Context, refusal: SnykRefusal) -> bool:
        """Whether a refused partition may be passed over, with a warning, instead of failing."""
        return False

    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        # Events re-read from the lookback window are older than the bookmark; the bookmark must
        # not move back for them (nor may the SDK's sort check reject them).
        bookmark = self.get_starting_replication_key_value(context)
        if bookmark and parse_timestamp(latest_record["created"]) < parse_timestamp(bookmark):
            return
        super()._increment_stream_state(latest_record, context=context)


class GroupOrgsStream(SnykStream):
    """The orgs of a group, listed at run start when `discover_orgs` is on."""

    name = "group_orgs"
    path = "/groups/{group_id}/orgs"
    primary_keys = ("id",)
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"id": {"type": "string"}},
    }
    subject = "group {group_id}"
    required_permission = "group membership (to list the group's organizations)"

    def get_url_params(
        self, context: Context | None, next_page_token: str | None
    ) -> dict[str, Any]:
        """Pages as large as Snyk allows."""
        return {**super().get_url_params(context, next_page_token), "limit": 100}


class SelfStream(SnykStream):
    """Who the token belongs to: the first thing the connection check asks."""

    name = "self"
    path = "/self"
    records_jsonpath = "$.data"
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"id": {"type": "string"}, "attributes": {"type": "object"}},
    }
    subject = "the API token"


class OrgAuditLogsStream(AuditLogStream):
    """Audit logs of organizations: the configured ones and, with `discover_orgs`, their groups'."""

    name = "org_audit_logs"
    path = "/orgs/{org_id}/audit_logs/search"
    partition_key = "org_id"
    subject = "organization {org_id}"
    required_permission = "org.audit_log.read"

    _discovered: frozenset[str] = frozenset()

    def partition_ids(self) -> Iterable[str]:
        """Configured orgs first, then the orgs of each group when `discover_orgs` is on."""
        discovered: list[str] = []
        if self.settings.discover_orgs:
            lister = GroupOrgsStream(tap=self._tap)
            for group_id in self.settings.group_ids:
                discovered += [org["id"] for org in lister.request_records({"group_id": group_id})]
        self._discovered = frozenset(discovered) - set(self.settings.org_ids)
        return dict.fromkeys([*self.settings.org_ids, *discovered])

    def may_skip(self, context: Context, refusal: SnykRefusal) -> bool:
        """Discovered orgs that refuse (403, or 404: gone) are skipped with a warning.

        Unlike a configured id, a discovered org cannot be fixed in the settings, so it must not
        stop the other orgs.
        """
        return refusal.status in (403, 404) and context["org_id"] in self._discovered


class GroupAuditLogsStream(AuditLogStream):
    """Audit logs of groups."""

    name = "group_audit_logs"
    path = "/groups/{group_id}/audit_logs/search"
    partition_key = "group_id"
    subject = "group {group_id}"
    required_permission = "group.audit.read"

    def partition_ids(self) -> Iterable[str]:
        """The configured groups."""
        return self.settings.group_ids

"""The streams of tap-snyk, declared: name, path, partitioning, permission.

Audit logs are read incrementally, one partition per org or group. The lookup streams
(organizations, memberships, projects) give the UUIDs in the audit logs their names; they are
read in full on every run and share the same partitions, client and failure handling. What each
kind does lives in `stream.py`; the audit-log search policy in `searches.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tap_snyk.records import resource_record
from tap_snyk.stream import PER_GROUP, PER_ORG, AuditLogStream, LookupStream

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class OrgAuditLogsStream(AuditLogStream):
    """Audit logs of organizations (Panther's Snyk.OrgAudit): configured and discovered orgs."""

    name = "org_audit_logs"
    path = "/orgs/{org_id}/audit_logs/search"
    partitioning = PER_ORG
    required_permission = "org.audit_log.read"


class GroupAuditLogsStream(AuditLogStream):
    """Audit logs of groups (Panther's Snyk.GroupAudit)."""

    name = "group_audit_logs"
    path = "/groups/{group_id}/audit_logs/search"
    partitioning = PER_GROUP
    required_permission = "group.audit.read"


class GroupMembershipsStream(LookupStream):
    """Who is in each group, with which role: names and emails for the audit logs' user ids."""

    name = "group_memberships"
    path = "/groups/{group_id}/memberships"
    schema_file = "memberships"
    partitioning = PER_GROUP
    required_permission = "group.membership.read"


class OrgMembershipsStream(LookupStream):
    """Who is in each org, with which role."""

    name = "org_memberships"
    path = "/orgs/{org_id}/memberships"
    schema_file = "memberships"
    partitioning = PER_ORG
    required_permission = "org.membership.read"


class ProjectsStream(LookupStream):
    """The projects of each org: names and types for the audit logs' project ids."""

    name = "projects"
    path = "/orgs/{org_id}/projects"
    partitioning = PER_ORG
    required_permission = "org.project.read"


class OrganizationsStream(LookupStream):
    """Every configured org and every org of the configured groups, with names and slugs.

    The groups' orgs come from their listings, read once with the run's scope; each configured
    org that no listing described is asked for by itself (one request, no paging).
    """

    name = "organizations"
    path = "/orgs/{org_id}"
    records_jsonpath = "$.data"
    page_limit = None
    partitioning = PER_ORG
    required_permission = "org.read"

    @property
    @override
    def partitions(self) -> None:
        """None: the stream's records are not read partition by partition (`get_records`)."""
        return None

    @property
    @override
    def reads_group_listings(self) -> bool:
        """Always: the orgs of every configured group come from its listing."""
        return True

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The groups' orgs from their listings, then each configured org not among them.

        A group whose listing was refused is skipped with a warning, as lookups are.
        """
        scope = self.run.scope
        properties = self.schema["properties"]
        for group_id in scope.group_ids:
            if refusal := scope.refused.get(group_id):
                self.logger.warning("Skipped: %s", refusal)
            for org in scope.group_orgs.get(group_id, ()):
                yield resource_record(org, properties)
        for org_context in self.in_ready_order(self.planned_partitions()):
            yield from super().get_records(org_context)

    @override
    def planned_partitions(self) -> list[Context]:
        """The configured orgs that no group's listing described: each asked for by itself."""
        scope = self.run.scope
        listed = {org["id"] for orgs in scope.group_orgs.values() for org in orgs}
        return [{"org_id": org_id} for org_id in scope.org_ids if org_id not in listed]


#: Every stream, in the order a sync reads them: the audit logs, then the lookups.
STREAMS = (
    OrgAuditLogsStream,
    GroupAuditLogsStream,
    OrganizationsStream,
    GroupMembershipsStream,
    OrgMembershipsStream,
    ProjectsStream,
)

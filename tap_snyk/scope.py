"""The run's scope: which orgs and groups a run reads, worked out once, up front, as data.

The only requests here list the orgs of the configured groups. `RunContext.resolve_scope()` makes
them at the start of the sync and of the connection check, inside their error handling; every
stream then reads the answer (`RunContext.scope`) and no property makes a request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tap_snyk.errors import SnykRefusal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from tap_snyk.settings import SnykSettings

_logger = logging.getLogger("tap-snyk")
#: Answers to a group's org listing that are a fact about access, not a passing fault.
REFUSED_LISTING = (403, 404)


@dataclass(frozen=True)
class RunScope:
    """The orgs and groups one run reads, and what their listings said.

    - `org_ids`: the configured orgs, in the order given.
    - `discovered_org_ids`: orgs read only because `discover_orgs` found them in a group (sorted;
      none without `discover_orgs`).
    - `group_ids`: the configured groups, in the order given.
    - `group_orgs`: each group's orgs as its listing described them (JSON:API resources), for the
      groups whose orgs were listed: with `discover_orgs`, or for the `organizations` lookup.
    - `refused`: the groups whose listing Snyk refused (403 or 404), with the refusal.

    What a refused listing means: with `discover_orgs` on, the user asked for that group's orgs
    and gets none, so the sync reads everything else and then ends non-zero naming the group
    (`--test` says FAIL). With `discover_orgs` off, the listing only feeds the `organizations`
    lookup, so the sync and `--test` warn and skip the group there, as lookups do.
    """

    org_ids: tuple[str, ...]
    discovered_org_ids: tuple[str, ...]
    group_ids: tuple[str, ...]
    discover_orgs: bool
    group_orgs: Mapping[str, tuple[dict[str, Any], ...]]
    refused: Mapping[str, SnykRefusal]

    @property
    def audited_org_ids(self) -> tuple[str, ...]:
        """The orgs whose audit logs and lookups are read: configured first, then discovered."""
        return (*self.org_ids, *self.discovered_org_ids)

    def partition_ids(self, partition_key: str) -> tuple[str, ...]:
        """The ids of the partitions of a stream read per `org_id` or per `group_id`."""
        return self.audited_org_ids if partition_key == "org_id" else self.group_ids

    def is_discovered(self, org_id: str | None) -> bool:
        """Whether an org is read only because a group listed it (no setting can fix it)."""
        return org_id in self.discovered_org_ids

    @property
    def failed_discoveries(self) -> dict[str, SnykRefusal]:
        """Refused listings that cost orgs the user asked for: a problem of the run."""
        return dict(self.refused) if self.discover_orgs else {}


def resolve_scope(
    settings: SnykSettings,
    *,
    list_orgs: Callable[[str], Iterable[dict[str, Any]]],
    need_listings: bool,
) -> RunScope:
    """List each configured group's orgs (when anything needs them) and build the run's scope.

    `list_orgs(group_id)` requests one group's listing; a 403 or 404 is kept in `refused`, any
    other failure (`SnykError`) propagates: the run cannot know its orgs.
    """
    listed: dict[str, tuple[dict[str, Any], ...]] = {}
    refused: dict[str, SnykRefusal] = {}
    if settings.discover_orgs or need_listings:
        for group_id in settings.group_ids:
            try:
                listed[group_id] = tuple(_resources(list_orgs(group_id), group_id))
            except SnykRefusal as refusal:
                if refusal.status not in REFUSED_LISTING:
                    raise
                refused[group_id] = refusal
    discovered: tuple[str, ...] = ()
    if settings.discover_orgs:
        found = {org["id"] for orgs in listed.values() for org in orgs}
        discovered = tuple(sorted(found - set(settings.org_ids)))
    return RunScope(
        org_ids=settings.org_ids,
        discovered_org_ids=discovered,
        group_ids=settings.group_ids,
        discover_orgs=settings.discover_orgs,
        group_orgs=MappingProxyType(listed),
        refused=MappingProxyType(refused),
    )


def _resources(items: Iterable[Any], group_id: str) -> Iterator[dict[str, Any]]:
    """The items of a group's listing that are JSON:API resources (objects with an id)."""
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            yield item
        else:
            _logger.warning(
                "The org listing of group %s held an item that is not an organization (an object "
                "with an id); it is ignored: %.200s",
                group_id,
                item,
            )

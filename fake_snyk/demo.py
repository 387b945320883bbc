"""Demo data: a few named orgs in groups, with events of the past three days, members, projects.

What `fake-snyk` serves, and what the dbt tests and `scripts/sync --demo` load.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from fake_snyk.data import make_events, make_members, make_projects, uuid_for
from fake_snyk.store import Store

#: The service account `fake-snyk --oauth` registers and hands to the command it runs.
DEMO_CLIENT_ID, DEMO_CLIENT_SECRET = "demo-service-account", "demo-client-secret"
_DEMO_GROUP_NAMES = ("Acme Corp", "Globex", "Initech")
_DEMO_ORG_NAMES = ("Payments", "Storefront", "Data Platform", "Mobile", "Security Tools")


def _demo_name(names: Sequence[str], index: int) -> str:
    name = names[index % len(names)]
    return name if index < len(names) else f"{name} {index // len(names) + 1}"


def seed_demo_data(
    api: Store,
    *,
    orgs: int,
    groups: int,
    events: int,
    now: datetime,
) -> tuple[list[str], list[str]]:
    """Fill `api` with demo data; return (org_ids, group_ids).

    Orgs, with readable names, are spread over the groups; every org and every group gets
    `events` events spanning the past three days, well inside a default 90-day start date, and
    the members those events name; every org gets the projects its events name.
    """
    group_ids = [uuid_for(f"demo-group-{g}") for g in range(groups)]
    org_ids = [uuid_for(f"demo-org-{o}") for o in range(orgs)]
    start = now - timedelta(days=3)
    step_ms = max(1, int(timedelta(days=2.5) / timedelta(milliseconds=1) / max(1, events / 2)))
    for g, group_id in enumerate(group_ids):
        api.add_group(group_id, name=_demo_name(_DEMO_GROUP_NAMES, g))
        api.add_group_orgs(
            group_id, [org_id for o, org_id in enumerate(org_ids) if o % groups == g]
        )
        api.add_group_members(group_id, make_members(group_id, seed=g, level="group"))
        api.add_group_events(
            group_id,
            make_events(events, start=start, group_id=group_id, seed=1000 + g, step_ms=step_ms),
        )
    for o, org_id in enumerate(org_ids):
        api.add_org(org_id, name=_demo_name(_DEMO_ORG_NAMES, o))
        api.add_org_members(org_id, make_members(org_id, seed=o))
        api.add_org_projects(org_id, make_projects(org_id, seed=o))
        parent = group_ids[o % groups] if groups else None
        api.add_org_events(
            org_id,
            make_events(
                events, start=start, org_id=org_id, group_id=parent, seed=o, step_ms=step_ms
            ),
        )
    return org_ids, group_ids

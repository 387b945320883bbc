"""Stories the demo tells: ten hours of events that fire every detection rule of transform/.

`alert_scenarios` adds them to one org and its group, at fixed offsets before the demo's `now`,
after the random events of `make_events` (which end about half a day before it). Each story is
one rule or two (transform/seeds/snyk_alert_rules.csv); together they fire all of them, so
`scripts/sync --demo` leaves alerts of every kind. Members and projects are the demo's own
(`make_members`, `make_projects`), and one more member: a contractor who is removed from the org
and still acts there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fake_snyk.data import uuid_for
from fake_snyk.jsonapi import format_created
from fake_snyk.store import Store

ADA, GRACE, JOSE, CI_BOT = (uuid_for(f"user-{k}") for k in range(4))  # make_members' users
#: The contractor removed from the org who still acts there (TapSnyk.Member.ActsAfterRemoval).
CONTRACTOR = {
    "user_id": uuid_for("demo/contractor"),
    "name": "Mallory Byrne",
    "username": "mbyrne-contractor",
    "email": "mallory.byrne@contractor.example.com",
    "role": "Org Collaborator",
    "created_at": "2024-02-01T09:00:00Z",
}


@dataclass(frozen=True)
class Step:
    """One event of a story: when (before the demo's now), in which log, by whom, what."""

    before: timedelta
    log: str  # "org" or "group"
    event: str
    user_id: str
    content: Mapping[str, Any]
    project: int | None = None  # which of make_projects' projects


def stories() -> list[Step]:
    """The steps of every story, in the order told."""
    org, group, h, m = "org", "group", timedelta(hours=1), timedelta(minutes=1)
    deployer = uuid_for("demo/temporary-deployer")
    admin_role = {"role": "ADMIN", "name": "Group Admin", "publicId": uuid_for("demo/group-admin")}
    policy_rule = {
        "name": "Mature exploits are critical",
        "actions": [{"type": "severity-override", "data": {"severity": "critical"}}],
    }
    contractor = str(CONTRACTOR["user_id"])
    return [
        # Ada tries a feature flag, opens the group to access requests, tightens a policy.
        Step(10 * h, group, "group.feature_flags.edit", ADA, {"flag": "newProjectsPage"}),
        Step(
            10 * h - 10 * m,
            group,
            "group.request_access_settings.edit",
            ADA,
            {"before": {"isEnabled": False}, "after": {"isEnabled": True}},
        ),
        Step(
            10 * h - 20 * m,
            group,
            "group.policy.edit",
            ADA,
            {
                "publicId": uuid_for("demo/security-policy"),
                "before": {"name": "Default security policy", "configuration": {"rules": []}},
                "after": {
                    "name": "Default security policy",
                    "configuration": {"rules": [policy_rule]},
                },
            },
        ),
        # Snyk Support edits the SSO connection, logged as the admin who asked for it.
        Step(10 * h - 30 * m, group, "group.sso.edit", ADA, {"connection": "okta-acme"}),
        # Ada makes Grace an admin of the org; Grace adds a webhook.
        Step(
            9 * h,
            org,
            "org.user.role.edit",
            ADA,
            {"userPublicId": GRACE, "beforeRoleName": "Org Collaborator", "afterRoleName": "ADMIN"},
        ),
        Step(
            9 * h - 10 * m,
            org,
            "org.webhook.add",
            GRACE,
            {"webhookPublicId": uuid_for("demo/webhook"), "url": "https://hooks.example.com/snyk"},
        ),
        # Grace creates an admin service account for a deployment and deletes it 3 hours later.
        Step(
            8 * h + 30 * m,
            group,
            "group.service_account.create",
            GRACE,
            {"serviceAccountPublicId": deployer, "name": "temporary-deployer", "role": admin_role},
        ),
        Step(
            5 * h + 30 * m,
            group,
            "group.service_account.delete",
            GRACE,
            {"serviceAccountPublicId": deployer},
        ),
        # Ada removes the contractor from the org; an hour later the contractor exports an SBOM.
        Step(
            8 * h,
            org,
            "org.user.remove",
            ADA,
            {"userPublicId": contractor, "email": CONTRACTOR["email"], "force": True},
        ),
        Step(
            7 * h,
            org,
            "org.sbom.export",
            contractor,
            {"format": "cyclonedx1.4+json", "bytes": 48213},
            project=0,
        ),
        # José ignores an issue for every path of a project, with no end date.
        Step(
            6 * h,
            org,
            "org.project.ignore.create",
            JOSE,
            {"issueId": "SNYK-JS-LODASH-567746", "ignorePath": "*", "reasonType": "wont-fix"},
            project=1,
        ),
        # The CI service account's token stops monitoring five projects in four minutes.
        *(
            Step(4 * h - k * m, org, "org.project.stop_monitor", CI_BOT, {}, project=k)
            for k in range(5)
        ),
    ]


def alert_scenarios(store: Store, *, org_id: str, group_id: str, now: datetime) -> None:
    """Add the stories to an org (of the group) and to the group's own log, before `now`."""
    store.add_org_members(org_id, [CONTRACTOR])
    logs: dict[str, list[dict[str, Any]]] = {"org": [], "group": []}
    for step in stories():
        item: dict[str, Any] = {
            "content": dict(step.content),
            "created": format_created(now - step.before),
            "event": step.event,
            "group_id": group_id,
            "user_id": step.user_id,
        }
        if step.log == "org":
            item["org_id"] = org_id
        if step.project is not None:
            item["project_id"] = uuid_for(f"{org_id}/project-{step.project}")  # make_projects'
        logs[step.log].append(dict(sorted(item.items())))  # the live service sends keys sorted
    store.add_org_events(org_id, logs["org"])
    store.add_group_events(group_id, logs["group"])

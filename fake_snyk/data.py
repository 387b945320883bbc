"""Realistic data for the fake to serve: deterministic ids, audit-log events, members, projects.

`uuid_for` turns a readable name ("org-a") into the same UUID every time. `make_events` makes
audit-log items shaped like the live service's, awkward on purpose; `make_members` and
`make_projects` make the users and projects those events name. Each is deterministic for a seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from fake_snyk.audit_logs import API_ACCESS
from fake_snyk.jsonapi import format_created

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "fake-snyk.tap-snyk.test")


def uuid_for(name: str) -> str:
    """Return a deterministic UUID string (uuid5) for a readable name such as "org-a"."""
    return str(uuid.uuid5(_NAMESPACE, name))


ContentMaker = Callable[[random.Random, str], "dict[str, Any] | None"]


@dataclass(frozen=True)
class _EventKind:
    name: str
    group_level: bool  # group-level events carry no org_id
    by_user: bool  # system events carry no user_id
    on_project: bool
    content: ContentMaker  # None: the item has no content key at all
    weight: int = 10


_UNICODE_NAMES = ["Zoë Ångström", "José Müller", "李小龙", "Ørjan Ødegård 🚀", 'Zoë "Q" O\'Neil']


def _files_content(rng: random.Random, _: str) -> dict[str, Any]:
    return {
        "files": [
            {"path": f"services/{k}/package.json", "sizeBytes": rng.randint(200, 90000)}
            for k in range(rng.randint(0, 3))
        ],
        "notSupported": {"": rng.randint(1, 3), ".json": rng.randint(100, 5000)},
    }


def _issue_content(rng: random.Random, _: str) -> dict[str, Any]:
    return {
        "issueId": rng.choice(["SNYK-JS-LODASH-567746", "SNYK-PYTHON-REQUESTS-6928867"]),
        "severity": rng.choice(["low", "medium", "high", "critical"]),
        "cvssScore": rng.choice([5.3, 7.5, 9.8]),
        "isFixable": rng.random() < 0.5,
        "ignoreReason": None,
        "packages": ["lodash@4.17.15", "requests@2.31.0"][: rng.randint(1, 2)],
    }


def _test_content(rng: random.Random, _: str) -> dict[str, Any]:
    return {
        "source": rng.choice(["cli", "github", "api"]),
        "targetFile": "package.json",
        "durationMs": rng.randint(80, 60000),
        "passed": rng.random() < 0.7,
    }


def _settings_content(rng: random.Random, _: str) -> dict[str, Any]:
    limit = rng.choice([None, 5, 10])
    return {
        "before": {"pullRequestTestEnabled": False, "autoDepUpgradeLimit": None},
        "after": {"pullRequestTestEnabled": True, "autoDepUpgradeLimit": limit},
    }


def _user_content(rng: random.Random, scope: str) -> dict[str, Any]:
    name = rng.choice(_UNICODE_NAMES)
    return {
        "userPublicId": uuid_for(f"{scope}/member-{rng.randint(0, 9)}"),
        "role": rng.choice(["collaborator", "admin", "Group Admin"]),
        "displayName": name,
        "email": "zoë.ångström@exämple.test",
    }


def _integration_content(rng: random.Random, scope: str) -> dict[str, Any]:
    return {
        "integrationId": uuid_for(f"{scope}/integration"),
        "settings": {
            "autoDepUpgradeIgnoredDependencies": [],
            "pullRequestFailOnAnyVulns": rng.random() < 0.5,
            "dailyReportsEnabled": True,
            "upgradeLimit": rng.randint(1, 10),
        },
    }


def _jira_content(rng: random.Random, _: str) -> dict[str, Any]:
    key = f"SEC-{rng.randint(1, 999)}"
    return {
        "jiraIssue": {"key": key, "url": f"https://jira.example.test/browse/{key}"},
        "issueIds": ["SNYK-JS-LODASH-567746"],
        "labels": ["security", "tëst"],
    }


def _api_access_content(rng: random.Random, scope: str) -> dict[str, Any]:
    return {
        "url": f"/rest/orgs/{scope}/projects?version=2024-10-15&limit=100",
        "method": "GET",
        "userAgent": "snyk-cli/1.1293.0",
        "status": 200,
    }


def _sso_sync_content(rng: random.Random, _: str) -> dict[str, Any]:
    added = rng.randint(0, 40)
    return {
        "provider": "okta",
        "added": added,
        "removed": 0,
        "ratio": round(added / 40, 3),
        "groups": [{"name": "Sécurité", "members": added}],
    }


_EVENT_KINDS = [
    _EventKind("org.project.files.create", False, False, True, _files_content, 14),
    _EventKind("org.project.issue.create", False, False, True, _issue_content, 14),
    _EventKind("org.project.test", False, True, True, _test_content, 12),
    _EventKind("org.project.settings.edit", False, True, True, _settings_content, 6),
    _EventKind("org.user.add", False, True, False, _user_content, 5),
    _EventKind("org.integration.settings.edit", False, True, False, _integration_content, 4),
    _EventKind("org.edit", False, True, False, lambda rng, scope: {}, 3),
    _EventKind("org.project.stop_monitor", False, True, True, lambda rng, scope: None, 2),
    # Names outside every documented list: a tap must not validate `event` against an enum.
    _EventKind("org.project.jira_issue.create", False, True, True, _jira_content, 3),
    _EventKind(
        "org.sbom.export",
        False,
        True,
        True,
        lambda rng, scope: {"format": "cyclonedx1.4+json", "bytes": rng.randint(1, 10**7)},
        3,
    ),
    _EventKind(API_ACCESS, False, True, False, _api_access_content, 2),
    _EventKind("group.user.add", True, True, False, _user_content, 5),
    _EventKind("group.sso.membership.sync", True, False, False, _sso_sync_content, 4),
    _EventKind(
        "group.service_account.secret.rotate",
        True,
        True,
        False,
        lambda rng, scope: {
            "serviceAccountId": uuid_for(f"{scope}/sa"),
            "expiresAt": "2025-01-01T00:00:00Z",
        },
        2,
    ),
]


def make_events(
    count: int,
    *,
    start: datetime,
    org_id: str | None = None,
    group_id: str | None = None,
    seed: int = 0,
    step_ms: int = 60_000,
) -> list[dict[str, Any]]:
    """Return `count` audit-log items in ascending `created` order, deterministic for a seed.

    Shaped like the live service on purpose: runs of several events sharing one millisecond (one
    run of at least four is guaranteed when count >= 4), system events without user_id, events
    without project_id, event names outside the documented lists, an occasional api.access event,
    content with nested objects, lists, unicode, an empty-string key, floats, ints, booleans,
    null, an empty object, and one kind with no content at all. With org_id the items are an
    org's log; with group_id (and no org_id) a group's log, where group-level events carry no
    org_id and org-level ones name one of three orgs. `step_ms` is the mean gap between distinct
    timestamps (0: all share `start`); with count >= 20 every kind of event appears at least once.
    """
    rng = random.Random(seed)
    scope = org_id or group_id or "fake"
    group_log = group_id is not None and org_id is None
    kinds = [k for k in _EVENT_KINDS if group_log or not k.group_level]
    sequence = kinds[:]  # each kind once, then weighted picks; shuffled together
    sequence += rng.choices(kinds, weights=[k.weight for k in kinds], k=max(0, count - len(kinds)))
    rng.shuffle(sequence)
    sequence = sequence[:count]
    users = [uuid_for(f"user-{k}") for k in range(4)]
    projects = [uuid_for(f"{scope}/project-{k}") for k in range(5)]
    group_orgs = [uuid_for(f"{scope}/org-{k}") for k in range(3)]
    moment = start if start.tzinfo is not None else start.replace(tzinfo=timezone.utc)
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    stamps: list[str] = []
    forced_run = count < 4
    while len(stamps) < count:
        run = rng.choice([1, 1, 1, 1, 2, 3, 5])  # mean 2 events per timestamp
        if not forced_run and len(stamps) >= count // 3:
            run, forced_run = max(run, 4), True
        stamps += [format_created(moment)] * min(run, count - len(stamps))
        moment += timedelta(milliseconds=rng.randint(1, 2 * step_ms - 1) if step_ms > 0 else 0)
    items = []
    for kind, created in zip(sequence, stamps, strict=True):
        item: dict[str, Any] = {"created": created, "event": kind.name}
        content = kind.content(rng, scope)
        if content is not None:
            item["content"] = content
        if group_id is not None:
            item["group_id"] = group_id
        owner = org_id or (rng.choice(group_orgs) if group_log else None)
        if owner is not None and not kind.group_level:
            item["org_id"] = owner
        if kind.on_project and rng.random() < 0.9:
            item["project_id"] = rng.choice(projects)
        if kind.by_user:
            item["user_id"] = rng.choice(users)
        items.append(dict(sorted(item.items())))  # the live service sends keys sorted
    return items


# The users of make_events: (name, username, email, login_method); the same user everywhere.
_USERS = (
    ("Ada Lovelace", "ada.lovelace", "ada.lovelace@example.com", "saml"),
    ("Grace Hopper", "ghopper", "grace.hopper@example.com", "github"),
    ("José Müller", "jose.muller", "jose.muller@example.com", "google"),
    # Service-account-like: a bot, no login method.
    ("CI Service Account", "snyk-ci-bot", "snyk-ci-bot@service.example.com", None),
)
_ROLES = {  # level: (admin, member, the service account's)
    "org": ("Org Admin", "Org Collaborator", "Org Collaborator"),
    "group": ("Group Admin", "Group Member", "Group Viewer"),
}


def make_members(scope_id: str, *, seed: int = 0, level: str = "org") -> list[dict[str, Any]]:
    """Return the four users of `make_events` (user-0..user-3) as members of an org or a group.

    For `add_org_members` (level "org": roles Org Admin / Org Collaborator) or
    `add_group_members` (level "group": Group Admin / Group Member / Group Viewer). A user has
    the same name, username and email in every scope; roles and join dates vary with the scope
    and the seed, with at least one admin and one non-admin. user-3 is a service account
    without a login method.
    """
    if level not in _ROLES:
        raise ValueError(f"level must be 'org' or 'group', got {level!r}")
    admin, member, service = _ROLES[level]
    rng = random.Random(f"{scope_id}/{seed}")
    first_admin = rng.randrange(3)
    joined = datetime(2023, 1, 2, 9, tzinfo=timezone.utc)
    members = []
    for k, (name, username, email, login_method) in enumerate(_USERS):
        role = service if login_method is None else member
        if k == first_admin or (k != 3 and k != (first_admin + 1) % 3 and rng.random() < 0.5):
            role = admin
        joined += timedelta(days=rng.randint(1, 120), seconds=rng.randint(0, 86399))
        members.append(
            {
                "user_id": uuid_for(f"user-{k}"),
                "name": name,
                "username": username,
                "email": email,
                "login_method": login_method,
                "role": role,
                "created_at": joined.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return members


# The projects of make_events, project-0..project-4: (repository, type, target file, origin).
_PROJECTS = (
    ("web-shop", "npm", "package.json", "github"),
    ("payments-api", "maven", "pom.xml", "github"),
    ("ml-pipeline", "pip", "requirements.txt", "cli"),
    ("web-shop", "sast", "", "github"),  # code analysis scans the whole repository
    ("payments-api", "dockerfile", "Dockerfile", "github"),
)


def make_projects(org_id: str, *, seed: int = 0) -> list[dict[str, Any]]:
    """Return the five projects `make_events` names in an org's log, for `add_org_projects`.

    Realistic names ("acme/web-shop:package.json"), types npm, maven, pip, sast, dockerfile,
    origins github and cli, creation times, tags (one with a non-ASCII value), business
    attributes, settings, the target and the importing user (the CLI project: the service
    account). The repository owner, dates, tags and settings vary with the seed.
    """
    rng = random.Random(f"{org_id}/{seed}")
    owner = rng.choice(["acme", "globex", "initech"])
    created = datetime(2023, 3, 1, 8, tzinfo=timezone.utc)
    projects = []
    for k, (repo, kind, target_file, origin) in enumerate(_PROJECTS):
        created += timedelta(days=rng.randint(1, 60), milliseconds=rng.randint(0, 86_399_999))
        from_github = origin == "github"
        name = f"{owner}/{repo}" if from_github else repo
        if target_file:
            name += f":{target_file}"
        pull_requests: dict[str, Any] = {}  # CLI projects get no pull requests: inherited
        if from_github:
            pull_requests = {
                "is_enabled": True,
                "fail_only_for_issues_with_fix": rng.random() < 0.5,
                "policy": rng.choice(["all", "only_new"]),
                "severity_threshold": rng.choice(["medium", "high", "critical"]),
            }
        settings: dict[str, Any] = {
            "recurring_tests": {
                "frequency": rng.choice(["daily", "weekly"]) if from_github else "never"
            },
            "pull_requests": pull_requests,
        }
        if kind == "npm":
            settings["auto_dependency_upgrade"] = {
                "is_enabled": True,
                "ignored_dependencies": ["typescript"],
                "limit": rng.randint(1, 10),
            }
        tags = [{"key": "team", "value": "payments" if "payments" in repo else "storefront"}]
        if rng.random() < 0.5:
            tags.append({"key": "owner", "value": "sécurité"})
        projects.append(
            {
                "id": uuid_for(f"{org_id}/project-{k}"),
                "name": name,
                "type": kind,
                "origin": origin,
                "status": "inactive" if k == 4 else "active",
                "target_reference": "main" if from_github else "release/2024.05",
                "target_file": target_file,
                "created": format_created(created),
                "business_criticality": [rng.choice(["critical", "high", "medium", "low"])],
                "environment": ["backend", "external"] if "api" in repo else ["frontend"],
                "lifecycle": ["production"] if k != 2 else ["development"],
                "tags": tags,
                "read_only": False,
                "settings": settings,
                "target_id": uuid_for(f"{org_id}/target/{owner}/{repo}"),
                "importer_id": uuid_for("user-3" if origin == "cli" else f"user-{k % 3}"),
            }
        )
    return projects

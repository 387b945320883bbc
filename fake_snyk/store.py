"""What the fake holds: orgs, groups, their audit logs, members and projects.

`Store` takes what a test gives it (checked, and copied so that later changes by the test do not
leak in) and is safe to change while the fake serves; `Org`, `Group` and `Member` say how each is
listed as a JSON:API resource, with the defaults the contract's required fields need.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fake_snyk.audit_logs import StoredEvent
from fake_snyk.data import uuid_for
from fake_snyk.jsonapi import parse_rfc3339

_MEMBER_KEYS = frozenset(
    {"user_id", "name", "username", "email", "login_method", "role", "created_at"}
)
_DEFAULT_ROLES = {"org": "Org Collaborator", "group": "Group Member"}


@dataclass(frozen=True)
class Member:
    """One user's membership of an org or a group."""

    user_id: str
    name: str
    username: str
    email: str
    role: str
    login_method: str | None  # None: left out, as for a service account
    created_at: str

    @classmethod
    def parse(cls, spec: Mapping[str, Any], level: str) -> Member:
        """A member as a test gives it (a dict), with defaults for what it leaves out."""
        _check_keys(spec, "user_id", _MEMBER_KEYS, "a member")
        user_id = str(spec["user_id"])
        short = user_id[:8]
        return cls(
            user_id=user_id,
            name=spec.get("name", f"User {short}"),
            username=spec.get("username", f"user-{short}"),
            email=spec.get("email", f"user-{short}@example.com"),
            role=spec.get("role", _DEFAULT_ROLES[level]),
            login_method=spec.get("login_method", "saml"),
            created_at=spec.get("created_at", "2023-02-01T09:00:00Z"),
        )

    def resource(self, level: str, scope_id: str, scope_name: str) -> dict[str, Any]:
        """The membership as listed under /orgs/{id}/memberships or /groups/{id}/memberships."""
        user: dict[str, Any] = {"name": self.name, "username": self.username, "email": self.email}
        if self.login_method is not None:
            user["login_method"] = self.login_method
        return {
            "id": uuid_for(f"{level}-membership/{scope_id}/{self.user_id}"),
            "type": f"{level}_membership",
            "attributes": {"created_at": self.created_at},
            "relationships": {
                level: {
                    "data": {"id": scope_id, "type": level, "attributes": {"name": scope_name}}
                },
                "role": {
                    "data": {
                        "id": uuid_for(f"{level}-role/{self.role}"),
                        "type": f"{level}_role",
                        "attributes": {"name": self.role},
                    }
                },
                "user": {"data": {"id": self.user_id, "type": "user", "attributes": user}},
            },
        }


_PROJECT_ATTRIBUTES = (
    "name",
    "type",
    "origin",
    "status",
    "target_reference",
    "target_file",
    "target_runtime",
    "created",
    "business_criticality",
    "environment",
    "lifecycle",
    "tags",
    "read_only",
    "settings",
    "build_args",
)
_PROJECT_KEYS = frozenset({"id", "target_id", "importer_id", *_PROJECT_ATTRIBUTES})


def _project_resource(org_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A project as /orgs/{id}/projects lists it; attributes given as None are left out."""
    _check_keys(spec, "id", _PROJECT_KEYS, "a project")
    given = json.loads(json.dumps(spec))  # a copy: later changes by the test do not leak in
    project_id = str(given["id"])
    short = project_id[:8]
    attributes: dict[str, Any] = {
        "name": f"example/repo-{short}:package.json",
        "type": "npm",
        "origin": "cli",
        "status": "active",
        "target_reference": "main",
        "target_file": "package.json",
        "created": "2023-06-01T10:00:00.000Z",
        "business_criticality": [],
        "environment": [],
        "lifecycle": [],
        "tags": [],
        "read_only": False,
        "settings": {"recurring_tests": {"frequency": "daily"}, "pull_requests": {}},
    }
    attributes.update((k, v) for k, v in given.items() if k in _PROJECT_ATTRIBUTES)
    target_id = given.get("target_id") or uuid_for(f"{org_id}/target/{project_id}")
    relationships: dict[str, Any] = {
        "organization": _relationship("org", org_id, f"/orgs/{org_id}"),
        "target": _relationship("target", target_id, f"/orgs/{org_id}/targets/{target_id}"),
    }
    importer_id = given.get("importer_id")
    if importer_id is not None:
        relationships["importer"] = _relationship(
            "user", importer_id, f"/orgs/{org_id}/users/{importer_id}"
        )
    return {
        "id": project_id,
        "type": "project",
        "attributes": {k: v for k, v in attributes.items() if v is not None},
        "relationships": relationships,
    }


def _relationship(kind: str, resource_id: str, related: str) -> dict[str, Any]:
    # The contract's Relationship requires both data and links.
    return {"data": {"id": resource_id, "type": kind}, "links": {"related": related}}


def _check_keys(spec: Mapping[str, Any], required: str, allowed: frozenset[str], what: str) -> None:
    # A misspelt key would otherwise be ignored silently and leave a default in its place.
    if required not in spec:
        raise ValueError(f"{what} needs {required!r}: {spec!r}")
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; allowed: {sorted(allowed)}")


@dataclass
class Org:
    """An org: what /orgs/{id} says of it, and its audit log, members and projects."""

    id: str
    name: str
    slug: str
    group_id: str | None = None
    access_requests_enabled: bool = False
    created_at: str = "2023-01-10T09:00:00Z"
    updated_at: str = "2024-03-01T12:00:00Z"
    events: list[StoredEvent] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)  # by user id
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # resources by id

    def resource(self) -> dict[str, Any]:
        """The org as /orgs/{id} and the orgs of a group list it."""
        attributes: dict[str, Any] = {"name": self.name, "slug": self.slug}
        if self.group_id is not None:
            # The contract's group_id is a string, never null: a personal org has none.
            attributes["group_id"] = self.group_id
        attributes.update(
            is_personal=self.group_id is None,
            access_requests_enabled=self.access_requests_enabled,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
        return {"id": self.id, "type": "org", "attributes": attributes}


@dataclass
class Group:
    """A group: its orgs, its own audit log and its members."""

    id: str
    name: str
    org_ids: list[str] = field(default_factory=list)
    events: list[StoredEvent] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)  # by user id


class Store:
    """The orgs and groups a fake serves, and what each holds; every change takes its lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._orgs: dict[str, Org] = {}
        self._groups: dict[str, Group] = {}

    def add_org_events(self, org_id: str, events: Iterable[Mapping[str, Any]]) -> None:
        """Add events to an org's audit log (creating the org); may be called while serving."""
        with self._lock:
            self._org(org_id).events.extend(self._stored(events))

    def add_malformed_org_item(self, org_id: str, item: Any, *, at: datetime) -> None:
        """Serve `item` as it is among an org's events, as if created `at` (any JSON value)."""
        with self._lock:
            stored = StoredEvent(at, next(self._seq), json.loads(json.dumps(item)))
            self._org(org_id).events.append(stored)

    def add_group_events(self, group_id: str, events: Iterable[Mapping[str, Any]]) -> None:
        """Add events to a group's own audit log (creating the group)."""
        with self._lock:
            self._group(group_id).events.extend(self._stored(events))

    def add_group_orgs(self, group_id: str, orgs: Iterable[Mapping[str, Any] | str]) -> None:
        """Put orgs into a group, creating both as needed.

        Each org is an id or a dict with "id" and optionally name, slug, created_at, updated_at.
        """
        with self._lock:
            group = self._group(group_id)
            for given in orgs:
                spec: Mapping[str, Any] = {"id": given} if isinstance(given, str) else given
                org = self._org(str(spec["id"]))
                self._describe(org, spec)
                org.group_id = group_id
                if org.id not in group.org_ids:
                    group.org_ids.append(org.id)

    def add_org(
        self,
        org_id: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        access_requests_enabled: bool | None = None,
        created_at: str | None = None,
        updated_at: str | None = None,
    ) -> None:
        """Create an org or change what /orgs/{org_id} says of it; None keeps the current value.

        Without a name an org is "Org <first 8 characters of its id>"; a name without a slug
        gets a slug made from the name.
        """
        given = {
            "name": name,
            "slug": slug,
            "access_requests_enabled": access_requests_enabled,
            "created_at": created_at,
            "updated_at": updated_at,
        }
        with self._lock:
            self._describe(self._org(org_id), {k: v for k, v in given.items() if v is not None})

    def add_group(self, group_id: str, *, name: str | None = None) -> None:
        """Create a group or rename it (memberships name their group; default "Group <id[:8]>")."""
        with self._lock:
            group = self._group(group_id)
            if name is not None:
                group.name = name

    def add_group_members(self, group_id: str, members: Iterable[Mapping[str, Any]]) -> None:
        """Add members to a group (creating it); a user added again is replaced.

        Each member is a dict with "user_id" and optionally name, username, email, login_method
        (None leaves it out), role (default "Group Member") and created_at.
        """
        parsed = [Member.parse(spec, "group") for spec in members]
        with self._lock:
            self._group(group_id).members.update((m.user_id, m) for m in parsed)

    def add_org_members(self, org_id: str, members: Iterable[Mapping[str, Any]]) -> None:
        """Add members to an org (creating it); as `add_group_members`, role "Org Collaborator"."""
        parsed = [Member.parse(spec, "org") for spec in members]
        with self._lock:
            self._org(org_id).members.update((m.user_id, m) for m in parsed)

    def add_org_projects(self, org_id: str, projects: Iterable[Mapping[str, Any]]) -> None:
        """Add projects to an org (creating it); a project added again is replaced.

        Each project is a dict with "id" and optionally any ProjectAttributes of the contract
        (name, type, origin, status, target_reference, target_file, target_runtime, created,
        business_criticality, environment, lifecycle, tags, read_only, settings, build_args;
        None leaves one out), "target_id" and "importer_id" (a user id; without it, no importer).
        """
        resources = [_project_resource(org_id, spec) for spec in projects]
        with self._lock:
            self._org(org_id).projects.update((r["id"], r) for r in resources)

    def remove_member(self, user_id: str) -> None:
        """Take a user out of every org and group (someone who left the company)."""
        with self._lock:
            scopes: list[Org | Group] = [*self._orgs.values(), *self._groups.values()]
            for scope in scopes:
                scope.members.pop(user_id, None)

    def remove_org_projects(self, org_id: str, project_ids: Iterable[str]) -> None:
        """Delete projects of an org."""
        with self._lock:
            for project_id in project_ids:
                self._org(org_id).projects.pop(project_id, None)

    def _org(self, org_id: str) -> Org:
        if org_id not in self._orgs:
            short = org_id[:8]
            self._orgs[org_id] = Org(org_id, name=f"Org {short}", slug=f"org-{short}")
        return self._orgs[org_id]

    def _group(self, group_id: str) -> Group:
        if group_id not in self._groups:
            self._groups[group_id] = Group(group_id, name=f"Group {group_id[:8]}")
        return self._groups[group_id]

    @staticmethod
    def _describe(org: Org, spec: Mapping[str, Any]) -> None:
        for name in ("name", "slug", "access_requests_enabled", "created_at", "updated_at"):
            if name in spec:
                setattr(org, name, spec[name])
        if "name" in spec and "slug" not in spec:
            org.slug = re.sub(r"[^a-z0-9]+", "-", org.name.lower()).strip("-")

    def _stored(self, events: Iterable[Mapping[str, Any]]) -> list[StoredEvent]:
        stored = []
        for event in events:
            # A JSON round trip: later changes by the test do not leak in, and a value JSON
            # cannot carry fails here rather than in the middle of a response.
            item = json.loads(json.dumps(event))
            try:
                created = parse_rfc3339(item["created"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"an audit-log event needs an RFC3339 'created': {event!r}"
                ) from exc
            stored.append(StoredEvent(created, next(self._seq), item))
        return stored

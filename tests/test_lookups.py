"""Lookup streams: organizations, memberships and projects give the audit logs' ids names."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

from fake_snyk import FakeSnyk, Fault, make_events, make_members, make_projects, uuid_for
from tap_snyk.tap import TapSnyk
from tests.conftest import GROUP, ORG_A, ORG_B, run_tap, tap_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)
LOOKUPS = ("organizations", "group_memberships", "org_memberships", "projects")


def seed(api: FakeSnyk) -> str:
    """Org A configured; org B and a third org in the group; members and projects everywhere."""
    third = uuid_for("org-third")
    api.add_group_orgs(GROUP, [ORG_B, third])
    api.add_group_events(GROUP, [])
    api.add_group_members(GROUP, make_members(GROUP, level="group"))
    for org_id in (ORG_A, ORG_B, third):
        api.add_org_events(org_id, make_events(40, start=NOW - timedelta(days=1), org_id=org_id))
        api.add_org_members(org_id, make_members(org_id))
        api.add_org_projects(org_id, make_projects(org_id))
    return third


def test_organizations_are_the_configured_ones_and_every_org_of_the_groups(
    snyk_api: FakeSnyk,
) -> None:
    third = seed(snyk_api)
    run = run_tap(tap_config(snyk_api, org_ids=[ORG_A, ORG_B], group_ids=[GROUP]))
    assert run.exit_code == 0
    organizations = run.records("organizations")
    assert sorted(o["id"] for o in organizations) == sorted([ORG_A, ORG_B, third])
    assert all(o["name"] for o in organizations)
    in_group = {o["id"]: o["group_id"] for o in organizations}
    assert in_group[ORG_B] == GROUP
    # Org A is outside the configured group: it is read on its own.
    assert any(r.path == f"/rest/orgs/{ORG_A}" for r in snyk_api.requests)
    assert not any(r.path == f"/rest/orgs/{ORG_B}" for r in snyk_api.requests)


def test_memberships_name_every_user_of_the_audit_logs(snyk_api: FakeSnyk) -> None:
    seed(snyk_api)
    run = run_tap(tap_config(snyk_api, group_ids=[GROUP]))
    members = run.records("org_memberships")
    names = {m["user_id"]: m["user_name"] for m in members if m["org_id"] == ORG_A}
    assert all(names.values())
    audit_users = {r["user_id"] for r in run.records("org_audit_logs") if r["user_id"]}
    assert audit_users
    assert audit_users <= names.keys()
    member = members[0]
    assert set(member) >= {"id", "org_id", "user_id", "user_email", "role_name", "created_at"}
    assert {m["group_id"] for m in run.records("group_memberships")} == {GROUP}


def test_projects_name_every_project_of_the_audit_logs(snyk_api: FakeSnyk) -> None:
    seed(snyk_api)
    run = run_tap(tap_config(snyk_api))
    projects = {p["id"]: p for p in run.records("projects")}
    audit_projects = {r["project_id"] for r in run.records("org_audit_logs") if r["project_id"]}
    assert audit_projects
    assert audit_projects <= projects.keys()
    assert all(p["org_id"] == ORG_A and p["name"] and p["type"] for p in projects.values())


def test_lookups_follow_discovered_orgs(snyk_api: FakeSnyk) -> None:
    third = seed(snyk_api)
    run = run_tap(tap_config(snyk_api, group_ids=[GROUP], discover_orgs=True))
    assert {p["org_id"] for p in run.records("projects")} == {ORG_A, ORG_B, third}
    assert {m["org_id"] for m in run.records("org_memberships")} == {ORG_A, ORG_B, third}
    # The group's orgs were listed once, for discovery and organizations alike.
    assert sum(r.path == f"/rest/groups/{GROUP}/orgs" for r in snyk_api.requests) == 1


def test_lookups_page_through_long_lists(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    many = [
        {"user_id": uuid_for(f"member-{n}"), "name": f"Member {n}", "email": f"m{n}@example.com"}
        for n in range(230)
    ]
    snyk_api.add_org_members(ORG_A, many)
    run = run_tap(tap_config(snyk_api))
    assert sorted(m["user_id"] for m in run.records("org_memberships")) == sorted(
        m["user_id"] for m in many
    )
    pages = [r for r in snyk_api.requests if r.path.endswith("/memberships")]
    assert len(pages) == 3
    assert all(len(values) == 1 for page in pages for values in page.query.values())


def test_each_lookup_can_be_deselected(snyk_api: FakeSnyk) -> None:
    seed(snyk_api)
    config = tap_config(snyk_api, group_ids=[GROUP])
    catalog = copy.deepcopy(TapSnyk(config=config, parse_env_config=False).catalog_dict)
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] in ("projects", "org_memberships"):
            for metadata in entry["metadata"]:
                if metadata["breadcrumb"] == []:
                    metadata["metadata"]["selected"] = False
    run = run_tap(config, catalog=catalog)
    assert run.exit_code == 0
    assert run.records("projects") == []
    assert run.records("org_memberships") == []
    assert run.records("group_memberships")
    assert not any(
        r.path.endswith(("/projects", f"/orgs/{ORG_A}/memberships")) for r in snyk_api.requests
    )


def test_a_lookup_the_token_may_not_read_is_skipped_and_the_audit_logs_still_load(
    snyk_api: FakeSnyk, caplog
) -> None:
    import logging

    seed(snyk_api)
    snyk_api.faults.append(Fault(status=403, path="/projects"))
    with caplog.at_level(logging.WARNING):
        run = run_tap(tap_config(snyk_api))
    assert run.exit_code == 0
    assert run.records("org_audit_logs")
    assert run.records("projects") == []
    assert "deselect the stream (drop `projects.*`" in caplog.text


def test_a_lookup_item_that_is_not_an_object_is_a_problem_not_a_crash(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    project = {"id": uuid_for("project-x"), "type": "project", "attributes": {"name": "x"}}
    page = {"data": ["junk", project], "jsonapi": {"version": "1.0"}}
    snyk_api.faults.append(Fault(body=json.dumps(page).encode(), path=f"/orgs/{ORG_A}/projects"))
    run = run_tap(tap_config(snyk_api))
    assert [p["id"] for p in run.records("projects")] == [project["id"]]
    assert run.exit_code == 1
    assert run.error is not None
    assert f"projects: organization {ORG_A} sent an item that is not an object" in run.error

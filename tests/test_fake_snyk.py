"""Specifications of the fake Snyk API the tap's tests run against: it must behave like the
live service where the live service surprises clients."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
import requests

from fake_snyk import (
    CLIENT_ASSERTION_TYPE,
    FakeSnyk,
    Fault,
    make_events,
    make_members,
    make_projects,
    seed_demo_data,
    uuid_for,
)
from fake_snyk.scenarios import stories
from tests.conftest import make_key_pair

VERSION = "2024-10-15"
ORG = uuid_for("org-a")
GROUP = uuid_for("group-a")
AUTH = {"Authorization": "token test-token"}
WEEK_AGO = "2024-05-08T00:00:00Z"


@pytest.fixture
def api():
    with FakeSnyk() as fake:
        yield fake


def search(api: FakeSnyk, params=(), *, org=ORG, headers=AUTH) -> requests.Response:
    """One org audit-log search; `params` is a dict or a list of pairs, version added."""
    pairs = [("version", VERSION), *(params.items() if isinstance(params, dict) else params)]
    return requests.get(
        f"{api.url}/rest/orgs/{org}/audit_logs/search", params=pairs, headers=headers, timeout=5
    )


def event(created: str, name: str = "org.project.test", **fields) -> dict:
    return {"content": {}, "created": created, "event": name, "org_id": ORG, **fields}


def follow(api: FakeSnyk, first: requests.Response) -> list[dict]:
    """Every page of a search, following links.next as given."""
    pages = [first.json()]
    while "links" in pages[-1]:
        response = requests.get(api.url + pages[-1]["links"]["next"], headers=AUTH, timeout=5)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def test_results_default_to_newest_first(api):
    api.add_org_events(
        ORG,
        [
            event("2024-05-15T10:00:00.000Z"),
            event("2024-05-15T12:00:00.000Z"),
            event("2024-05-15T11:00:00.000Z"),
        ],
    )
    items = search(api, {"from": WEEK_AGO}).json()["data"]["items"]
    assert [i["created"][11:13] for i in items] == ["12", "11", "10"]


def test_from_defaults_to_the_start_of_yesterday_utc(api):
    api.clock = lambda: datetime(2024, 5, 15, 12, 0, tzinfo=timezone.utc)
    api.add_org_events(
        ORG,
        [
            event("2024-05-13T23:59:59.999Z"),
            event("2024-05-14T00:00:00.000Z"),
            event("2024-05-15T11:00:00.000Z"),
        ],
    )
    items = search(api, {"sort_order": "ASC"}).json()["data"]["items"]
    assert [i["created"] for i in items] == ["2024-05-14T00:00:00.000Z", "2024-05-15T11:00:00.000Z"]


def test_to_is_exclusive_and_from_inclusive(api):
    api.add_org_events(ORG, [event("2024-05-15T10:00:00.000Z"), event("2024-05-15T11:00:00.000Z")])
    items = search(api, {"from": "2024-05-15T10:00:00Z", "to": "2024-05-15T11:00:00Z"}).json()
    assert [i["created"] for i in items["data"]["items"]] == ["2024-05-15T10:00:00.000Z"]


def test_next_link_is_relative_under_rest_and_repeats_every_parameter_once(api):
    api.add_org_events(ORG, [event(f"2024-05-15T10:00:0{s}.000Z") for s in range(3)])
    sent = {"from": WEEK_AGO, "size": "1", "sort_order": "ASC", "exclude_events": "org.edit,x.y"}
    first = search(api, sent).json()["links"]["next"]
    second = requests.get(api.url + first, headers=AUTH, timeout=5).json()["links"]["next"]
    for link in (first, second):
        assert link.startswith(f"/rest/orgs/{ORG}/audit_logs/search?")
        query = parse_qs(urlsplit(link).query, keep_blank_values=True)
        assert {k: v for k, v in query.items() if k != "cursor"} == {
            k: [v] for k, v in {**sent, "version": VERSION}.items()
        }
        assert len(query["cursor"]) == 1
    assert parse_qs(urlsplit(first).query)["cursor"] != parse_qs(urlsplit(second).query)["cursor"]


def test_last_page_has_no_links_key(api):
    api.add_org_events(ORG, [event("2024-05-15T10:00:00.000Z"), event("2024-05-15T11:00:00.000Z")])
    body = search(api, {"from": WEEK_AGO, "size": "2"}).json()
    assert len(body["data"]["items"]) == 2
    assert "links" not in body


def test_empty_result_is_exactly_the_live_document(api):
    api.add_org_events(ORG, [])
    response = search(api, {"from": WEEK_AGO})
    assert response.headers["Content-Type"] == "application/vnd.api+json"
    assert response.json() == {
        "data": {"items": [], "type": "audit_log_search"},
        "jsonapi": {"version": "1.0"},
    }


def test_walking_pages_of_seven_returns_every_event_once_in_ascending_order(api):
    events = make_events(
        60, start=datetime(2024, 5, 15, tzinfo=timezone.utc), org_id=ORG, seed=3, step_ms=1000
    )
    api.add_org_events(ORG, events)
    pages = follow(api, search(api, {"from": WEEK_AGO, "size": "7", "sort_order": "ASC"}))
    walked = [item for page in pages for item in page["data"]["items"]]
    expected = [e for e in events if e["event"] != "api.access"]
    assert walked == expected  # ties keep insertion order
    assert len(pages) == -(-len(expected) // 7)
    splits = [
        a["data"]["items"][-1]["created"] == b["data"]["items"][0]["created"]
        for a, b in pairwise(pages)
    ]
    assert any(splits), "some page boundary should fall inside a run of equal timestamps"


def test_events_and_exclude_events_together_are_rejected(api):
    api.add_org_events(ORG, [])
    response = search(api, {"events": "org.edit", "exclude_events": "org.user.add"})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/vnd.api+json"
    assert response.json()["errors"][0]["status"] == "400"


@pytest.mark.parametrize("repeated", [("size", "5"), ("version", VERSION), ("events", "org.edit")])
def test_a_repeated_query_parameter_is_rejected(api, repeated):
    api.add_org_events(ORG, [])
    assert search(api, [("from", WEEK_AGO), repeated, repeated]).status_code == 400


def test_a_version_older_than_2024_04_29_is_rejected(api):
    api.add_org_events(ORG, [])
    response = requests.get(
        f"{api.url}/rest/orgs/{ORG}/audit_logs/search",
        params={"version": "2023-09-11"},
        headers=AUTH,
        timeout=5,
    )
    assert response.status_code == 400
    assert "2024-04-29" in response.json()["errors"][0]["detail"]


def test_api_access_events_are_hidden_unless_asked_for(api):
    api.add_org_events(
        ORG,
        [
            event("2024-05-15T10:00:00.000Z", "api.access"),
            event("2024-05-15T11:00:00.000Z", "org.user.add"),
        ],
    )

    def names(params: dict) -> list[str]:
        body = search(api, {"from": WEEK_AGO, **params}).json()
        return [item["event"] for item in body["data"]["items"]]

    assert names({}) == ["org.user.add"]
    assert names({"exclude_events": "org.edit"}) == ["org.user.add"]
    assert names({"events": "api.access"}) == ["api.access"]
    assert names({"event": "api.access"}) == ["org.user.add"]  # singular `event` is ignored


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("token wrong-token", 401),
        ("", 401),
        ("test-token", 401),
        ("token test-token", 200),
        ("Bearer test-token", 200),
    ],
)
def test_only_a_known_token_with_token_or_bearer_scheme_is_accepted(api, authorization, status):
    api.add_org_events(ORG, [])
    response = search(api, {"from": WEEK_AGO}, headers={"Authorization": authorization})
    assert response.status_code == status
    if status == 401:
        assert response.json()["errors"][0]["status"] == "401"


def test_an_unknown_org_is_not_found_and_a_forbidden_one_is_403(api):
    api.add_org_events(ORG, [])
    api.forbidden.add(uuid_for("org-secret"))
    assert search(api, {"from": WEEK_AGO}).status_code == 200
    missing = search(api, {"from": WEEK_AGO}, org=uuid_for("org-never-added"))
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["status"] == "404"
    assert search(api, {"from": WEEK_AGO}, org=uuid_for("org-secret")).status_code == 403


def test_paths_without_rest_are_not_found(api):
    api.add_org_events(ORG, [])
    response = requests.get(
        f"{api.url}/orgs/{ORG}/audit_logs/search",
        params={"version": VERSION},
        headers=AUTH,
        timeout=5,
    )
    assert response.status_code == 404


def test_an_injected_429_is_served_once_then_service_resumes(api):
    api.add_org_events(ORG, [])
    api.faults.append(Fault(status=429, headers={"Retry-After": "1"}))
    limited = search(api, {"from": WEEK_AGO})
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert search(api, {"from": WEEK_AGO}).status_code == 200
    assert api.faults == []
    assert len(api.requests) == 2


def test_transport_faults_break_the_response(api):
    api.add_org_events(ORG, [event("2024-05-15T10:00:00.000Z")])
    api.faults += [
        Fault(truncated_body=True),
        Fault(not_json=True),
        Fault(reset=True),
        Fault(delay=0.5),
    ]
    truncated = search(api, {"from": WEEK_AGO})
    assert truncated.status_code == 200
    assert int(truncated.headers["Content-Length"]) == len(truncated.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)
    html = search(api, {"from": WEEK_AGO})
    assert html.status_code == 200
    assert html.headers["Content-Type"].startswith("text/html")
    with pytest.raises(requests.ConnectionError):
        search(api, {"from": WEEK_AGO})
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{api.url}/rest/self", params={"version": VERSION}, headers=AUTH, timeout=0.1)


def test_next_link_styles_and_pathological_links(api):
    api.add_org_events(ORG, [event(f"2024-05-15T10:00:0{s}.000Z") for s in range(3)])
    page = {"from": WEEK_AGO, "size": "1"}
    api.next_link_style = "object"
    assert search(api, page).json()["links"]["next"]["href"].startswith("/rest/orgs/")
    api.next_link_style = "absolute"
    assert search(api, page).json()["links"]["next"].startswith(f"{api.url}/rest/orgs/")
    api.next_link_style = "no_rest"
    assert search(api, page).json()["links"]["next"].startswith(f"/orgs/{ORG}/")
    api.next_link_style = "relative"
    api.foreign_next_link = "http://127.0.0.2:9/rest/steal"
    assert search(api, page).json()["links"]["next"] == "http://127.0.0.2:9/rest/steal"
    assert search(api, page).json()["links"]["next"].startswith("/rest/orgs/")  # served once
    api.repeat_next_link = True
    current = search(api, page)
    assert (
        current.json()["links"]["next"]
        == urlsplit(current.url).path + "?" + urlsplit(current.url).query
    )


def test_requests_are_recorded_with_their_query(api):
    api.add_org_events(ORG, [])
    search(api, {"from": WEEK_AGO, "events": "a,b"})
    [recorded] = api.requests
    assert recorded.path == f"/rest/orgs/{ORG}/audit_logs/search"
    assert recorded.query == {"version": [VERSION], "from": [WEEK_AGO], "events": ["a,b"]}
    assert recorded.header("authorization") == "token test-token"
    api.reset_requests()
    assert api.requests == []


def test_group_search_serves_the_groups_own_events(api):
    api.add_group_events(
        GROUP, [{"created": "2024-05-15T10:00:00.000Z", "event": "group.edit", "group_id": GROUP}]
    )
    api.add_org_events(ORG, [event("2024-05-15T10:00:00.000Z")])
    response = requests.get(
        f"{api.url}/rest/groups/{GROUP}/audit_logs/search",
        params={"version": VERSION, "from": WEEK_AGO},
        headers=AUTH,
        timeout=5,
    )
    assert [i["event"] for i in response.json()["data"]["items"]] == ["group.edit"]


def test_orgs_of_a_group_are_listed_by_name_in_pages_of_ten(api):
    api.add_group_orgs(
        GROUP, [{"id": uuid_for(f"org-{n}"), "name": f"Org {n:02d}"} for n in reversed(range(25))]
    )
    first = requests.get(
        f"{api.url}/rest/groups/{GROUP}/orgs", params={"version": VERSION}, headers=AUTH, timeout=5
    )
    pages = [first.json()]
    while "next" in pages[-1]["links"]:
        assert pages[-1]["links"]["next"].startswith(f"/rest/groups/{GROUP}/orgs?")
        pages.append(
            requests.get(api.url + pages[-1]["links"]["next"], headers=AUTH, timeout=5).json()
        )
    assert [len(p["data"]) for p in pages] == [10, 10, 5]
    names = [org["attributes"]["name"] for p in pages for org in p["data"]]
    assert names == [f"Org {n:02d}" for n in range(25)]
    assert pages[0]["data"][0]["attributes"]["group_id"] == GROUP


def test_self_answers_a_valid_token(api):
    response = requests.get(
        f"{api.url}/rest/self", params={"version": VERSION}, headers=AUTH, timeout=5
    )
    assert response.json()["data"]["attributes"]["username"] == "fake"


def test_make_events_is_deterministic_and_awkward_on_purpose():
    start = datetime(2024, 5, 15, tzinfo=timezone.utc)
    events = make_events(200, start=start, group_id=GROUP, seed=7)
    assert events == make_events(200, start=start, group_id=GROUP, seed=7)
    assert events != make_events(200, start=start, group_id=GROUP, seed=8)
    created = [e["created"] for e in events]
    assert created == sorted(created)
    assert all(len(c) == 24 and c.endswith("Z") for c in created)
    assert max(Counter(created).values()) >= 4
    assert any("user_id" not in e for e in events)
    assert any("org_id" not in e for e in events)
    assert any(e["event"] == "api.access" for e in events)
    assert any("" in e.get("content", {}).get("notSupported", {}) for e in events)


def test_module_runs_a_command_against_seeded_data():
    probe = (
        "import json, os, sys, urllib.request as u; "
        "org = json.loads(os.environ['TAP_SNYK_ORG_IDS'])[0]; "
        "r = u.Request(os.environ['TAP_SNYK_API_URL'] + f'/rest/orgs/{org}/audit_logs/"
        "search?version=2024-10-15&from=2020-01-01T00:00:00Z', "
        "headers={'Authorization': 'token ' + os.environ['TAP_SNYK_API_TOKEN']}); "
        "sys.exit(len(json.load(u.urlopen(r))['data']['items']))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fake_snyk",
            "--port",
            "0",
            "--events",
            "30",
            "--",
            sys.executable,
            "-c",
            probe,
        ],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "TAP_SNYK_GROUP_IDS=[" in done.stderr
    # The org's events but api.access, as exit code, and the demo's stories told in that org.
    told = sum(step.log == "org" for step in stories())
    assert 20 + told <= done.returncode <= 30 + told


def test_latency_delays_every_answer_and_concurrent_answers_side_by_side():
    latency, clients = 0.5, 8
    with FakeSnyk(latency=latency) as api:
        api.add_org_events(ORG, [event("2024-05-10T00:00:00.000Z")])

        def timed_search(_: int) -> float:
            began = time.perf_counter()
            assert search(api, {"from": WEEK_AGO}).status_code == 200
            return time.perf_counter() - began

        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            durations = list(pool.map(timed_search, range(clients)))
        elapsed = time.perf_counter() - began
    assert min(durations) >= latency
    # One after another they would take clients * latency (4 s); side by side about 0.5 s.
    assert elapsed < clients * latency


def test_scope_latency_delays_the_answers_about_one_org_alone():
    slow = uuid_for("slow-org")
    with FakeSnyk() as api:
        for org in (ORG, slow):
            api.add_org_events(org, [event("2024-05-10T00:00:00.000Z", org_id=org)])
        api.scope_latency[slow] = (0.4, 0.5)

        def timed_search(org: str) -> float:
            began = time.perf_counter()
            assert search(api, {"from": WEEK_AGO}, org=org).status_code == 200
            return time.perf_counter() - began

        slow_took, fast_took = timed_search(slow), timed_search(ORG)
    assert slow_took >= 0.4
    assert fast_took < 0.4


def test_module_serves_with_the_latency_asked_for():
    probe = (
        "import os, sys, time, urllib.request as u; "
        "began = time.perf_counter(); "
        "u.urlopen(u.Request(os.environ['TAP_SNYK_API_URL'] + '/rest/self?version=2024-10-15', "
        "headers={'Authorization': 'token ' + os.environ['TAP_SNYK_API_TOKEN']})); "
        "sys.exit(0 if time.perf_counter() - began >= 0.3 else 1)"
    )
    fake = [sys.executable, "-m", "fake_snyk", "--port", "0", "--latency", "0.3"]
    done = subprocess.run(
        [*fake, "--", sys.executable, "-c", probe],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# -- orgs, memberships and projects -------------------------------------------------------------


def get(api: FakeSnyk, path: str, params: dict | None = None) -> requests.Response:
    """One GET under /rest with the version added."""
    query = {"version": VERSION, **(params or {})}
    return requests.get(f"{api.url}/rest{path}", params=query, headers=AUTH, timeout=5)


def walk(api: FakeSnyk, path: str, params: dict | None = None) -> list[dict]:
    """Every page of a listing, following links.next as given."""
    first = get(api, path, params)
    assert first.status_code == 200, first.text
    pages = [first.json()]
    while "next" in pages[-1]["links"]:
        response = requests.get(api.url + pages[-1]["links"]["next"], headers=AUTH, timeout=5)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def add_members(api: FakeSnyk, level: str, scope_id: str, members: list[dict]) -> None:
    if level == "org":
        api.add_org_members(scope_id, members)
    else:
        api.add_group_members(scope_id, members)


SCOPES = [("org", ORG), ("group", GROUP)]


@pytest.mark.parametrize(("level", "scope_id"), SCOPES)
def test_memberships_come_in_pages_of_limit_linked_by_next_until_the_last(api, level, scope_id):
    users = [uuid_for(f"member-{n}") for n in range(25)]
    add_members(api, level, scope_id, [{"user_id": user} for user in users])
    path = f"/{level}s/{scope_id}/memberships"
    pages = walk(api, path, {"limit": "10"})
    assert [len(page["data"]) for page in pages] == [10, 10, 5]
    listed = [m["relationships"]["user"]["data"]["id"] for page in pages for m in page["data"]]
    assert listed == users
    for page in pages[:-1]:
        link = page["links"]["next"]
        assert link.startswith(f"/rest{path}?")
        query = parse_qs(urlsplit(link).query)
        assert {k: len(v) for k, v in query.items()} == {
            "version": 1,
            "limit": 1,
            "starting_after": 1,
        }
        assert query["limit"] == ["10"]


@pytest.mark.parametrize(("level", "scope_id"), SCOPES)
def test_a_membership_has_the_contracts_shape(api, level, scope_id):
    if level == "group":
        api.add_group(scope_id, name="Acme Corp")
    else:
        api.add_org(scope_id, name="Acme Corp")
    user = uuid_for("user-0")
    add_members(
        api,
        level,
        scope_id,
        [{"user_id": user, "name": "Ada", "username": "ada", "email": "ada@example.com"}],
    )
    [membership] = get(api, f"/{level}s/{scope_id}/memberships").json()["data"]
    assert membership["type"] == f"{level}_membership"
    assert set(membership["attributes"]) == {"created_at"}
    relationships = membership["relationships"]
    assert set(relationships) == {level, "role", "user"}
    assert relationships[level]["data"] == {
        "id": scope_id,
        "type": level,
        "attributes": {"name": "Acme Corp"},
    }
    role = relationships["role"]["data"]
    assert role["type"] == f"{level}_role"
    assert role["attributes"] == {"name": "Org Collaborator" if level == "org" else "Group Member"}
    assert relationships["user"]["data"] == {
        "id": user,
        "type": "user",
        "attributes": {
            "name": "Ada",
            "username": "ada",
            "email": "ada@example.com",
            "login_method": "saml",
        },
    }


def test_projects_come_in_pages_of_limit_and_default_to_ten(api):
    projects = [{"id": uuid_for(f"project-{n}"), "name": f"repo-{n}"} for n in range(23)]
    api.add_org_projects(ORG, projects)
    assert [len(page["data"]) for page in walk(api, f"/orgs/{ORG}/projects")] == [10, 10, 3]
    pages = walk(api, f"/orgs/{ORG}/projects", {"limit": "20"})
    assert [len(page["data"]) for page in pages] == [20, 3]
    assert pages[0]["links"]["next"].startswith(f"/rest/orgs/{ORG}/projects?")
    assert "next" not in pages[-1]["links"]
    assert [p["id"] for page in pages for p in page["data"]] == [p["id"] for p in projects]


def test_a_project_has_the_contracts_shape_with_defaults_filled_in(api):
    project, user = uuid_for("project-x"), uuid_for("user-1")
    api.add_org_projects(ORG, [{"id": project, "type": "maven", "importer_id": user}])
    [item] = get(api, f"/orgs/{ORG}/projects").json()["data"]
    assert item["id"] == project
    assert item["type"] == "project"
    assert item["attributes"]["type"] == "maven"
    required = {"name", "type", "target_file", "target_reference", "origin", "created", "status"}
    assert required | {"read_only", "settings"} <= set(item["attributes"])
    assert {"recurring_tests", "pull_requests"} <= set(item["attributes"]["settings"])
    relationships = item["relationships"]
    assert relationships["organization"]["data"] == {"id": ORG, "type": "org"}
    assert relationships["target"]["data"]["type"] == "target"
    assert relationships["importer"]["data"] == {"id": user, "type": "user"}
    assert all("related" in r["links"] for r in relationships.values())


@pytest.mark.parametrize("limit", ["5", "15", "110", "ten"])
def test_a_limit_outside_10_to_100_in_tens_is_rejected(api, limit):
    api.add_org_projects(ORG, [])
    response = get(api, f"/orgs/{ORG}/projects", {"limit": limit})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"] == {"parameter": "limit"}


@pytest.mark.parametrize(
    "path", [f"/orgs/{ORG}", f"/orgs/{ORG}/memberships", f"/orgs/{ORG}/projects"]
)
def test_org_endpoints_answer_403_for_a_forbidden_org_and_404_for_an_unknown_one(api, path):
    assert get(api, path).status_code == 404
    api.add_org_events(ORG, [])
    assert get(api, path).status_code == 200
    api.forbidden.add(ORG)
    forbidden = get(api, path)
    assert forbidden.status_code == 403
    assert forbidden.json()["errors"][0]["status"] == "403"


def test_group_memberships_answer_403_for_a_forbidden_group_and_404_for_an_unknown_one(api):
    assert get(api, f"/groups/{GROUP}/memberships").status_code == 404
    api.add_group(GROUP)
    assert get(api, f"/groups/{GROUP}/memberships").json()["data"] == []
    api.forbidden.add(GROUP)
    assert get(api, f"/groups/{GROUP}/memberships").status_code == 403


def test_an_org_known_only_from_its_events_gets_a_name_from_its_id_and_no_group(api):
    api.add_org_events(ORG, [])
    body = get(api, f"/orgs/{ORG}").json()
    assert body["data"] == {
        "id": ORG,
        "type": "org",
        "attributes": {
            "name": f"Org {ORG[:8]}",
            "slug": f"org-{ORG[:8]}",
            "is_personal": True,
            "access_requests_enabled": False,
            "created_at": "2023-01-10T09:00:00Z",
            "updated_at": "2024-03-01T12:00:00Z",
        },
    }
    assert body["jsonapi"] == {"version": "1.0"}
    assert body["links"]["self"].startswith(f"/rest/orgs/{ORG}?")


def test_an_org_of_a_group_names_its_group(api):
    api.add_org_events(ORG, [])
    api.add_group_orgs(GROUP, [{"id": ORG, "name": "Payments Team"}])
    response = get(api, f"/orgs/{ORG}")
    assert response.headers["Content-Type"] == "application/vnd.api+json"
    attributes = response.json()["data"]["attributes"]
    assert attributes["group_id"] == GROUP
    assert attributes["is_personal"] is False
    assert (attributes["name"], attributes["slug"]) == ("Payments Team", "payments-team")


def test_the_new_endpoints_need_a_token_and_a_version_and_are_recorded(api):
    api.add_org_projects(ORG, [])
    unauthorised = requests.get(
        f"{api.url}/rest/orgs/{ORG}/projects", params={"version": VERSION}, timeout=5
    )
    assert unauthorised.status_code == 401
    no_version = requests.get(f"{api.url}/rest/orgs/{ORG}", headers=AUTH, timeout=5)
    assert no_version.status_code == 400
    assert [r.path for r in api.requests] == [f"/rest/orgs/{ORG}/projects", f"/rest/orgs/{ORG}"]


def test_faults_apply_to_the_new_endpoints(api):
    api.add_group(GROUP)
    api.faults.append(Fault(status=429, path="/memberships", headers={"Retry-After": "2"}))
    limited = get(api, f"/groups/{GROUP}/memberships")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    assert get(api, f"/groups/{GROUP}/memberships").status_code == 200


def test_setters_reject_a_member_or_project_without_its_id_or_with_an_unknown_key(api):
    with pytest.raises(ValueError, match="user_id"):
        api.add_org_members(ORG, [{"name": "Ada"}])
    with pytest.raises(ValueError, match="emial"):
        api.add_group_members(GROUP, [{"user_id": uuid_for("user-0"), "emial": "a@b.c"}])
    with pytest.raises(ValueError, match="nmae"):
        api.add_org_projects(ORG, [{"id": uuid_for("p"), "nmae": "typo"}])


def test_every_user_and_project_of_an_org_log_has_a_member_and_a_project():
    start = datetime(2024, 5, 15, tzinfo=timezone.utc)
    events = make_events(300, start=start, org_id=ORG, seed=5)
    users = {member["user_id"] for member in make_members(ORG)}
    projects = {project["id"] for project in make_projects(ORG)}
    named_users = {e["user_id"] for e in events if "user_id" in e}
    named_projects = {e["project_id"] for e in events if "project_id" in e}
    assert named_users <= users
    assert named_projects <= projects
    assert len(named_users) == 4  # the log names every user and project, so the check bites
    assert len(named_projects) == 5


def test_every_user_of_a_group_log_is_a_member_of_the_group():
    events = make_events(300, start=datetime(2024, 5, 15, tzinfo=timezone.utc), group_id=GROUP)
    users = {member["user_id"] for member in make_members(GROUP, level="group")}
    assert {e["user_id"] for e in events if "user_id" in e} <= users


def test_make_members_mixes_roles_and_keeps_each_users_name_across_scopes():
    for level, scope_id in SCOPES:
        for seed in range(10):
            members = make_members(scope_id, seed=seed, level=level)
            roles = {m["role"] for m in members}
            assert f"{level.capitalize()} Admin" in roles
            assert len(roles) >= 2
    names = [{m["user_id"]: m["name"] for m in make_members(s)} for s in (ORG, GROUP)]
    assert names[0] == names[1]
    assert "Ada Lovelace" in names[0].values()
    assert sum(m["login_method"] is None for m in make_members(ORG)) == 1  # the service account


def test_make_projects_is_deterministic_and_varied():
    projects = make_projects(ORG, seed=1)
    assert projects == make_projects(ORG, seed=1)
    assert {p["type"] for p in projects} == {"npm", "maven", "pip", "sast", "dockerfile"}
    assert {p["origin"] for p in projects} == {"github", "cli"}
    assert all(p["created"].endswith("Z") and p["tags"] for p in projects)


def test_the_demo_serves_members_and_projects_for_every_user_and_project_its_logs_name(api):
    org_ids, group_ids = seed_demo_data(
        api, orgs=3, groups=2, events=60, now=datetime(2024, 5, 15, tzinfo=timezone.utc)
    )
    for org_id in org_ids:
        name = get(api, f"/orgs/{org_id}").json()["data"]["attributes"]["name"]
        assert not name.startswith("Org ")  # a readable name, not one made from the id
        members = walk(api, f"/orgs/{org_id}/memberships", {"limit": "100"})[0]["data"]
        projects = walk(api, f"/orgs/{org_id}/projects", {"limit": "100"})[0]["data"]
        events = search(api, {"from": "2024-01-01T00:00:00Z"}, org=org_id).json()["data"]["items"]
        users = {m["relationships"]["user"]["data"]["id"] for m in members}
        assert {e["user_id"] for e in events if "user_id" in e} <= users
        assert {e["project_id"] for e in events if "project_id" in e} <= {p["id"] for p in projects}
    for group_id in group_ids:
        assert len(get(api, f"/groups/{group_id}/memberships").json()["data"]) == 4


# -- the OAuth token endpoint -------------------------------------------------------------------


def token_request(api: FakeSnyk, form: dict, content_type: str | None = None) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.post(f"{api.url}/oauth2/token", data=form, headers=headers, timeout=5)


def assertion(key_pair, api: FakeSnyk, **changes) -> str:
    now = int(time.time())
    claims = {
        "iss": "jwt-client",
        "sub": "jwt-client",
        "aud": f"{api.url}/oauth2/token",
        "jti": changes.pop("jti", f"jti-{time.monotonic_ns()}"),
        "iat": now,
        "exp": now + 300,
        **changes,
    }
    kid = claims.pop("kid", key_pair.key_id)
    signer = claims.pop("signer", key_pair.private_pem)
    return pyjwt.encode(claims, signer, algorithm="RS256", headers={"kid": kid})


def jwt_form(token: str) -> dict:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": token,
    }


@pytest.fixture
def oauth(api: FakeSnyk, key_pair) -> FakeSnyk:
    api.add_oauth_client("secret-client", secret="s3cret")
    api.add_oauth_client("jwt-client", public_key=key_pair.public_pem, key_id=key_pair.key_id)
    api.add_org_events(ORG, [])
    return api


def test_the_token_endpoint_issues_a_bearer_token_for_a_client_secret(oauth: FakeSnyk) -> None:
    form = {"grant_type": "client_credentials", "client_id": "secret-client",
            "client_secret": "s3cret"}  # fmt: skip
    answer = token_request(oauth, form)
    assert answer.status_code == 200
    document = answer.json()
    assert document["token_type"] == "bearer"
    assert document["expires_in"] == 3599
    bearer = {"Authorization": f"bearer {document['access_token']}"}
    assert search(oauth, {"from": WEEK_AGO}, headers=bearer).status_code == 200


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_id": "secret-client",
          "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "s3cret"},
         401, "invalid_client"),
        ({"grant_type": "password", "client_id": "secret-client", "client_secret": "s3cret"},
         400, "unsupported_grant_type"),
    ],
    ids=["wrong-secret", "unknown-client", "other-grant"],
)  # fmt: skip
def test_the_token_endpoint_refuses_like_oauth(
    oauth: FakeSnyk, form: dict, status: int, error: str
) -> None:
    answer = token_request(oauth, form)
    assert answer.status_code == status
    assert answer.json()["error"] == error


def test_the_token_endpoint_wants_a_form(oauth: FakeSnyk) -> None:
    answer = requests.post(
        f"{oauth.url}/oauth2/token",
        json={"grant_type": "client_credentials", "client_id": "secret-client"},
        timeout=5,
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


def test_a_signed_assertion_gets_a_token_once(oauth: FakeSnyk, key_pair) -> None:
    token = assertion(key_pair, oauth, jti="only-once")
    assert token_request(oauth, jwt_form(token)).status_code == 200
    again = token_request(oauth, jwt_form(token))
    assert (again.status_code, again.json()["error"]) == (401, "invalid_client")
    assert "jti" in again.json()["error_description"]


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"kid": "other-key"}, "kid"),
        ({"aud": "https://api.snyk.io/oauth2/token"}, "audience"),
        ({"iss": "secret-client", "sub": "secret-client"}, "unknown client"),
        ({"sub": "someone-else"}, "sub"),
        ({"exp": int(time.time()) + 3600}, "too far"),
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"signer": "other"}, "Signature"),
    ],
    ids=["kid", "aud", "client-without-key", "sub", "exp-far", "exp-past", "signature"],
)
def test_an_assertion_that_is_not_snyks_kind_is_refused(
    oauth: FakeSnyk, key_pair, changes: dict, said: str
) -> None:
    if changes.get("signer") == "other":
        changes["signer"] = make_key_pair().private_pem
    answer = token_request(oauth, jwt_form(assertion(key_pair, oauth, **changes)))
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")
    assert said.lower() in answer.json()["error_description"].lower()


def test_the_assertion_type_must_be_the_oauth_urn(oauth: FakeSnyk, key_pair) -> None:
    form = {**jwt_form(assertion(key_pair, oauth)), "client_assertion_type": "private_key_jwt"}
    assert token_request(oauth, form).status_code == 400


def test_an_access_token_expires_and_can_be_revoked(oauth: FakeSnyk) -> None:
    form = {"grant_type": "client_credentials", "client_id": "secret-client",
            "client_secret": "s3cret"}  # fmt: skip
    first = token_request(oauth, form).json()["access_token"]
    second = token_request(oauth, form).json()["access_token"]
    assert search(oauth, {"from": WEEK_AGO}, headers={"Authorization": f"bearer {first}"}).ok
    assert oauth.revoke_access_tokens() == 2
    refused = search(oauth, {"from": WEEK_AGO}, headers={"Authorization": f"bearer {second}"})
    assert refused.status_code == 401
    oauth.token_lifetime = 1
    third = token_request(oauth, form).json()["access_token"]
    time.sleep(1.2)
    expired = search(oauth, {"from": WEEK_AGO}, headers={"Authorization": f"bearer {third}"})
    assert expired.status_code == 401
    assert "expired" in expired.json()["errors"][0]["detail"]
    assert oauth.unauthorized == 2


def test_module_hands_a_command_an_oauth_service_account():
    done = subprocess.run(
        [sys.executable, "-m", "fake_snyk", "--port", "0", "--events", "30", "--oauth",
         "--token-lifetime", "2", "--", sys.executable, "-m", "tap_snyk", "--config", "ENV",
         "--test"],
        cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "OK   the OAuth service account: OAuth 2.0 client credentials" in done.stderr
    assert "access token obtained, valid for 2 s" in done.stderr

"""Specifications of the fake Snyk API the tap's tests run against: it must behave like the
live service where the live service surprises clients."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.fake_snyk import FakeSnyk, Fault, make_events, uuid_for

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
            "tests.fake_snyk",
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
    assert 20 <= done.returncode <= 30  # the org's events except api.access, as exit code

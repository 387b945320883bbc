"""What the tap asks Snyk: the search parameters, the auth header, and how it follows next links."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from fake_snyk import FakeSnyk, format_created, make_events, uuid_for
from tests.conftest import GROUP, ORG_A, ORG_B, TOKEN, run_tap, tap_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def visible(events: list[dict]) -> list[dict]:
    """The events a search without `events` returns: Snyk hides api.access."""
    return [e for e in events if e["event"] != "api.access"]


def search_requests(api: FakeSnyk) -> list:
    return [r for r in api.requests if r.path.endswith("/audit_logs/search")]


def test_first_request_sends_every_search_parameter_once(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, make_events(3, start=NOW - timedelta(hours=2), org_id=ORG_A))
    run = run_tap(
        tap_config(
            snyk_api,
            start_date="2026-10-01T00:00:00Z",
            end_date=(NOW + timedelta(days=1)).isoformat(),
            events=["org.user.add", "org.project.files.create"],
            page_size=25,
        )
    )
    assert run.exit_code == 0
    query = search_requests(snyk_api)[0].query
    assert query == {
        "version": ["2024-10-15"],
        "from": ["2026-10-01T00:00:00Z"],
        "to": [(NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")],
        "sort_order": ["ASC"],
        "size": ["25"],
        "events": ["org.user.add,org.project.files.create"],
    }


def test_exclude_events_are_sent_comma_separated(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    run_tap(tap_config(snyk_api, exclude_events=["api.access", "org.user.add"]))
    assert search_requests(snyk_api)[0].query["exclude_events"] == ["api.access,org.user.add"]


def test_from_defaults_to_90_days_ago_never_to_snyks_yesterday(snyk_api: FakeSnyk) -> None:
    old = make_events(5, start=NOW - timedelta(days=30), org_id=ORG_A)
    snyk_api.add_org_events(ORG_A, old)
    run = run_tap(tap_config(snyk_api))
    sent_from = datetime.fromisoformat(search_requests(snyk_api)[0].query["from"][0].rstrip("Z"))
    expected = (datetime.now(timezone.utc) - timedelta(days=90)).replace(tzinfo=None)
    assert abs(sent_from - expected) < timedelta(minutes=5)
    assert len(run.records("org_audit_logs")) == len(visible(old))


def test_token_goes_in_the_authorization_header(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    run_tap(tap_config(snyk_api))
    assert search_requests(snyk_api)[0].headers["Authorization"] == f"token {TOKEN}"


def test_bearer_scheme_for_oauth_access_tokens(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, [])
    run = run_tap(tap_config(snyk_api, auth_scheme="bearer"))
    assert run.exit_code == 0
    assert search_requests(snyk_api)[0].headers["Authorization"] == f"bearer {TOKEN}"


def test_api_url_with_trailing_rest_reaches_the_same_api(snyk_api: FakeSnyk) -> None:
    events = make_events(4, start=NOW - timedelta(hours=1), org_id=ORG_A)
    snyk_api.add_org_events(ORG_A, events)
    run = run_tap(tap_config(snyk_api, api_url=f"{snyk_api.url}/rest/"))
    assert run.exit_code == 0
    assert len(run.records("org_audit_logs")) == len(visible(events))


@pytest.mark.parametrize("style", ["relative", "object", "absolute", "no_rest"])
def test_every_page_is_read_once_whatever_the_next_link_looks_like(
    snyk_api: FakeSnyk, style: str
) -> None:
    events = make_events(57, start=NOW - timedelta(days=2), org_id=ORG_A, seed=3)
    snyk_api.add_org_events(ORG_A, events)
    snyk_api.next_link_style = style
    # One request at a time: one search, page after page (not split in time windows).
    run = run_tap(tap_config(snyk_api, page_size=10, concurrent_requests=1))
    assert run.exit_code == 0
    records = run.records("org_audit_logs")
    assert [r["event"] for r in records] == [e["event"] for e in visible(events)]
    pages = search_requests(snyk_api)
    assert len(pages) == -(-len(visible(events)) // 10)
    # A next link already carries every parameter: none may be sent twice.
    assert all(len(values) == 1 for page in pages for values in page.query.values())


def test_a_next_link_back_to_a_page_already_read_ends_paging_with_a_warning(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    events = make_events(30, start=NOW - timedelta(days=1), org_id=ORG_A)
    snyk_api.add_org_events(ORG_A, events)
    snyk_api.repeat_next_link = True
    with caplog.at_level(logging.WARNING):
        run = run_tap(tap_config(snyk_api, page_size=10))
    assert run.exit_code == 0
    assert "leads back to a page already read" in caplog.text
    assert len(search_requests(snyk_api)) == 1
    assert len(run.records("org_audit_logs")) == 10


def test_api_access_events_come_only_when_asked_for(snyk_api: FakeSnyk) -> None:
    events = make_events(200, start=NOW - timedelta(days=1), org_id=ORG_A, seed=5)
    assert any(e["event"] == "api.access" for e in events)
    snyk_api.add_org_events(ORG_A, events)
    default_run = run_tap(tap_config(snyk_api))
    asked_run = run_tap(tap_config(snyk_api, events=["api.access"]))
    assert all(r["event"] != "api.access" for r in default_run.records("org_audit_logs"))
    assert {r["event"] for r in asked_run.records("org_audit_logs")} == {"api.access"}


def test_each_org_and_group_is_its_own_partition(snyk_api: FakeSnyk) -> None:
    start = NOW - timedelta(hours=5)
    snyk_api.add_org_events(ORG_A, make_events(6, start=start, org_id=ORG_A, seed=1))
    snyk_api.add_org_events(ORG_B, make_events(4, start=start, org_id=ORG_B, seed=2))
    snyk_api.add_group_events(GROUP, make_events(5, start=start, group_id=GROUP, seed=3))
    run = run_tap(tap_config(snyk_api, org_ids=[ORG_A, ORG_B], group_ids=[GROUP]))
    assert run.exit_code == 0
    assert {r["org_id"] for r in run.records("org_audit_logs")} == {ORG_A, ORG_B}
    assert {r["group_id"] for r in run.records("group_audit_logs")} == {GROUP}
    paths = {r.path for r in search_requests(snyk_api)}
    assert paths == {
        f"/rest/orgs/{ORG_A}/audit_logs/search",
        f"/rest/orgs/{ORG_B}/audit_logs/search",
        f"/rest/groups/{GROUP}/audit_logs/search",
    }


def test_discover_orgs_reads_every_org_of_the_group(snyk_api: FakeSnyk) -> None:
    discovered = uuid_for("org-discovered")
    start = NOW - timedelta(hours=3)
    snyk_api.add_group_orgs(GROUP, [ORG_B, discovered])
    snyk_api.add_group_events(GROUP, [])
    snyk_api.add_org_events(ORG_A, make_events(2, start=start, org_id=ORG_A, seed=1))
    snyk_api.add_org_events(ORG_B, make_events(2, start=start, org_id=ORG_B, seed=2))
    snyk_api.add_org_events(discovered, make_events(2, start=start, org_id=discovered, seed=4))
    config = tap_config(snyk_api, group_ids=[GROUP], discover_orgs=True)
    run = run_tap(config)
    assert run.exit_code == 0
    assert {r["org_id"] for r in run.records("org_audit_logs")} == {ORG_A, ORG_B, discovered}

    # An org added to the group later is read by the next run, with no change of config.
    newcomer = uuid_for("org-newcomer")
    snyk_api.add_group_orgs(GROUP, [newcomer])
    snyk_api.add_org_events(newcomer, make_events(3, start=start, org_id=newcomer, seed=6))
    next_run = run_tap(config, state=run.final_state)
    assert newcomer in {r["org_id"] for r in next_run.records("org_audit_logs")}


def test_without_discover_orgs_the_group_orgs_audit_logs_are_not_read(snyk_api: FakeSnyk) -> None:
    snyk_api.add_group_orgs(GROUP, [ORG_B])
    snyk_api.add_group_events(GROUP, [])
    snyk_api.add_org_events(ORG_A, [])
    snyk_api.add_org_events(ORG_B, make_events(2, start=NOW - timedelta(hours=1), org_id=ORG_B))
    run = run_tap(tap_config(snyk_api, group_ids=[GROUP]))
    assert run.records("org_audit_logs") == []
    assert not any(ORG_B in r.path for r in search_requests(snyk_api))


def test_an_empty_page_ends_paging(snyk_api: FakeSnyk) -> None:
    events = visible(make_events(30, start=NOW - timedelta(days=1), org_id=ORG_A))[:20]
    snyk_api.add_org_events(ORG_A, events)
    snyk_api.empty_last_page = True  # the full last page links to an empty one
    run = run_tap(tap_config(snyk_api, page_size=10, concurrent_requests=1))
    assert run.exit_code == 0
    assert len(run.records("org_audit_logs")) == 20
    assert len(search_requests(snyk_api)) == 3


@pytest.mark.parametrize("concurrent_requests", [1, 8])
@pytest.mark.parametrize("repeated", [1, 3])
def test_items_served_again_at_the_start_of_the_next_page_are_written_once(
    snyk_api: FakeSnyk,
    caplog: pytest.LogCaptureFixture,
    repeated: int,
    concurrent_requests: int,
) -> None:
    snyk_api.add_org_events(ORG_A, make_events(95, start=NOW - timedelta(days=2), org_id=ORG_A))
    config = tap_config(snyk_api, page_size=10, concurrent_requests=concurrent_requests)
    clean = run_tap(config)
    snyk_api.repeat_at_page_start = repeated
    with caplog.at_level(logging.WARNING):
        run = run_tap(config)
    assert run.exit_code == 0
    assert run.records("org_audit_logs") == clean.records("org_audit_logs")
    warnings = [r.getMessage() for r in caplog.records if "ended the page before" in r.getMessage()]
    assert warnings
    assert all(m.startswith(f"organization {ORG_A}: ") for m in warnings)
    assert all(f"with {repeated} item(s)" in m for m in warnings)


def test_a_page_that_only_repeats_the_page_before_does_not_end_paging(snyk_api: FakeSnyk) -> None:
    events = make_events(30, start=NOW - timedelta(days=2), org_id=ORG_A)
    snyk_api.add_org_events(ORG_A, events)
    config = tap_config(snyk_api, page_size=5, concurrent_requests=1)
    clean = run_tap(config)
    snyk_api.repeat_at_page_start = 5  # every later page: the page before, then its own
    run = run_tap(config)
    assert run.records("org_audit_logs") == clean.records("org_audit_logs")


def test_identical_events_on_both_sides_of_a_page_boundary_are_all_kept(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    distinct = visible(make_events(20, start=NOW - timedelta(days=1), org_id=ORG_A, seed=5))[:9]
    # Three identical events in the last distinct event's millisecond.
    twin = {"content": {"n": 1}, "created": distinct[-1]["created"], "event": "x.y"}
    snyk_api.add_org_events(ORG_A, [*distinct, twin, twin, twin])  # page 1 ends with one twin
    with caplog.at_level(logging.WARNING):
        run = run_tap(tap_config(snyk_api, page_size=10, concurrent_requests=1))
    assert run.exit_code == 0
    twins = [r for r in run.records("org_audit_logs") if r["event"] == "x.y"]
    assert len(twins) == 3
    assert len({r["event_id"] for r in twins}) == 3  # #1, #2, #3
    assert not [r for r in caplog.records if "ended the page before" in r.getMessage()]


@pytest.mark.parametrize("concurrent_requests", [1, 8])
def test_more_than_a_page_of_one_millisecond_with_identical_events_is_exact_and_warns_of_nothing(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture, concurrent_requests: int
) -> None:
    before = visible(make_events(30, start=NOW - timedelta(days=2), org_id=ORG_A, seed=3))[:12]
    stamp = format_created(NOW - timedelta(days=1))
    # 25 events of one millisecond, some identical (a scan's bulk changes): 2.5 pages of 10.
    tie = [
        {"content": {"n": n % 7}, "created": stamp, "event": "org.project.ignore.create"}
        for n in range(25)
    ]
    after = visible(make_events(30, start=NOW - timedelta(hours=20), org_id=ORG_A, seed=4))[:13]
    snyk_api.add_org_events(ORG_A, [*before, *tie, *after])
    config = tap_config(snyk_api, page_size=10, concurrent_requests=1)
    one_by_one = run_tap(config)
    with caplog.at_level(logging.WARNING):
        run = run_tap({**config, "concurrent_requests": concurrent_requests})
    assert run.exit_code == one_by_one.exit_code == 0
    assert len(run.records("org_audit_logs")) == 50
    assert run.records("org_audit_logs") == one_by_one.records("org_audit_logs")
    ids = [r["event_id"] for r in run.records("org_audit_logs")]
    assert len(set(ids)) == 50
    assert not [r for r in caplog.records if "ended the page before" in r.getMessage()]

"""The records: fields of the Panther definitions, content kept as is, a stable `event_id`."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from fake_snyk import FakeSnyk, Fault, make_events
from tap_snyk.records import EventIdentities, normalized_item
from tests.conftest import GROUP, ORG_A, ORG_B, bookmark, run_tap, tap_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def visible(events: list[dict]) -> list[dict]:
    """The events a search returns without `events`: all but `api.access`."""
    return [e for e in events if e["event"] != "api.access"]


ODD_CONTENT = {
    "notSupported": {"": 1, ".json": 3500},
    "names": ["ünïcødé", "日本語", "emoji 🔐"],
    "nested": [{"a": [1, 2.5, None, True]}, []],
    'quote"and\\slash': "line\nbreak",
}


def item(created: str, **fields: object) -> dict:
    return {"created": created, "event": "org.user.add", **fields}


def test_records_carry_the_panther_fields_in_snake_case(snyk_api: FakeSnyk) -> None:
    created = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.123Z")
    snyk_api.add_org_events(
        ORG_A,
        [item(created, org_id=ORG_A, user_id="u-1", project_id="p-1", content={"k": "v"})],
    )
    [record] = run_tap(tap_config(snyk_api)).records("org_audit_logs")
    assert set(record) == {
        "event_id", "created", "event", "org_id", "group_id", "user_id", "project_id", "content",
    }  # fmt: skip
    assert record["created"] == created.replace(".123Z", ".123000Z")
    assert record["user_id"] == "u-1"
    assert record["project_id"] == "p-1"


def test_content_is_kept_byte_for_byte_in_meaning(snyk_api: FakeSnyk) -> None:
    created = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    snyk_api.add_org_events(ORG_A, [item(created, content=ODD_CONTENT)])
    [record] = run_tap(tap_config(snyk_api)).records("org_audit_logs")
    assert record["content"] == ODD_CONTENT


def test_org_records_always_carry_the_org_id(snyk_api: FakeSnyk) -> None:
    created = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    snyk_api.add_org_events(ORG_A, [item(created, event="org.project.files.create")])
    [record] = run_tap(tap_config(snyk_api)).records("org_audit_logs")
    assert record["org_id"] == ORG_A
    assert record["user_id"] is None


def test_group_records_always_carry_the_group_id(snyk_api: FakeSnyk) -> None:
    created = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    snyk_api.add_group_events(GROUP, [item(created, event="group.policy.edit", user_id="u")])
    run = run_tap(tap_config(snyk_api, org_ids=[], group_ids=[GROUP]))
    [record] = run.records("group_audit_logs")
    assert record["group_id"] == GROUP
    assert record["org_id"] is None


def test_event_id_is_the_hash_of_the_records_canonical_json() -> None:
    record = normalized_item(
        item("2026-11-01T10:00:00.000Z", content={"b": 1, "a": "é"}), {"org_id": ORG_A}
    )
    event_id = EventIdentities().event_id(record)  # record: the normalized item
    canonical = (
        '{"content":{"a":"é","b":1},"created":"2026-11-01T10:00:00.000000Z",'
        f'"event":"org.user.add","org_id":"{ORG_A}"}}'
    )
    assert event_id == hashlib.sha256(canonical.encode()).hexdigest()


def test_event_id_is_the_same_on_every_run(snyk_api: FakeSnyk) -> None:
    snyk_api.add_org_events(ORG_A, make_events(120, start=NOW - timedelta(days=2), org_id=ORG_A))
    first = run_tap(tap_config(snyk_api, page_size=7)).records("org_audit_logs")
    second = run_tap(tap_config(snyk_api, page_size=100)).records("org_audit_logs")
    assert [r["event_id"] for r in first] == [r["event_id"] for r in second]


def test_events_differing_in_any_field_get_different_ids() -> None:
    base = item("2026-11-01T10:00:00.000Z", user_id="u", content={"x": 1})
    variants = [
        base,
        {**base, "event": "org.user.remove"},
        {**base, "user_id": "v"},
        {**base, "project_id": "p"},
        {**base, "content": {"x": 2}},
        {**base, "content": {"x": 1, "": None}},
        {**base, "created": "2026-11-01T10:00:00.001Z"},
    ]
    ids = [EventIdentities().event_id(normalized_item(v, {"org_id": ORG_A})) for v in variants]
    assert len(set(ids)) == len(variants)
    other_org = EventIdentities().event_id(normalized_item(base, {"org_id": GROUP}))
    assert other_org not in ids


def test_identical_twins_get_distinct_ids_that_are_stable_across_runs(snyk_api: FakeSnyk) -> None:
    created = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    twin = item(created, user_id="u", content={"ip": "10.0.0.1"})
    snyk_api.add_org_events(ORG_A, [twin, dict(twin), item(created, user_id="w")])
    first = [
        r["event_id"] for r in run_tap(tap_config(snyk_api, page_size=1)).records("org_audit_logs")
    ]
    second = [r["event_id"] for r in run_tap(tap_config(snyk_api)).records("org_audit_logs")]
    assert len(set(first)) == 3
    assert sorted(first) == sorted(second)


def test_canonical_json_of_a_loaded_row_gives_back_its_event_id(snyk_api: FakeSnyk) -> None:
    created = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    snyk_api.add_org_events(ORG_A, [item(created, content=ODD_CONTENT)])
    [record] = run_tap(tap_config(snyk_api)).records("org_audit_logs")
    row = {k: v for k, v in record.items() if k != "event_id" and v is not None}
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert record["event_id"] == hashlib.sha256(canonical.encode()).hexdigest()


def test_fields_outside_the_schema_count_in_event_id_and_are_reported(
    snyk_api: FakeSnyk, caplog
) -> None:
    created = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    snyk_api.add_org_events(
        ORG_A,
        [
            item(created, user_id="u", actor_ip="10.0.0.1"),
            item(created, user_id="u", actor_ip="10.0.0.2"),
        ],
    )
    with caplog.at_level(logging.WARNING):
        records = run_tap(tap_config(snyk_api)).records("org_audit_logs")
    assert len({r["event_id"] for r in records}) == 2  # they differ only outside the schema
    assert all("actor_ip" not in r for r in records)
    assert "fields that org_audit_logs has no column for: actor_ip" in caplog.text


def test_a_lone_surrogate_in_content_cannot_stop_the_run(snyk_api: FakeSnyk) -> None:
    created = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    snyk_api.add_org_events(ORG_A, [item(created, content={"name": "bad \ud800 half", "ok": "🔒"})])
    run = run_tap(tap_config(snyk_api))
    assert run.exit_code == 0
    [record] = run.records("org_audit_logs")
    assert record["content"] == {"name": "bad \ufffd half", "ok": "🔒"}


MALFORMED = [
    ({"event": "org.user.add"}, "has no `created`"),
    ({"created": None, "event": "org.user.add"}, "has no `created`"),
    ({"created": 1700000000, "event": "org.user.add"}, "has `created` 1700000000, not a timestamp"),
    ({"created": "last tuesday", "event": "x"}, 'has `created` "last tuesday", not a timestamp'),
    ("just a string", 'is not an object but "just a string"'),
    ([1, 2], "is not an object but [1, 2]"),
]


def test_malformed_items_are_reported_and_everything_else_is_read(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    start = NOW - timedelta(hours=3)
    good_a = make_events(6, start=start, org_id=ORG_A, seed=1, step_ms=60_000)
    snyk_api.add_org_events(ORG_A, good_a)
    for n, (bad, _) in enumerate(MALFORMED):
        snyk_api.add_malformed_org_item(ORG_A, bad, at=start + timedelta(seconds=n))
    snyk_api.add_org_events(ORG_B, make_events(4, start=start, org_id=ORG_B, seed=2))
    config = tap_config(snyk_api, org_ids=[ORG_A, ORG_B], lookback_hours=0, page_size=3)
    with caplog.at_level(logging.WARNING):
        run = run_tap(config)

    # Every other item of the org, and the org after it, were read...
    records = run.records("org_audit_logs")
    assert len([r for r in records if r["org_id"] == ORG_A]) == len(visible(good_a))
    assert {r["org_id"] for r in records} == {ORG_A, ORG_B}
    # ...each bad item was named with its org and what is wrong with it...
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    for _, what in MALFORMED:
        assert any(f"organization {ORG_A} sent an item that {what}" in e for e in errors), what
    # ...the final state covers what was written, and the run says it had a problem.
    last_a = max(r["created"] for r in records if r["org_id"] == ORG_A)
    assert bookmark(run.final_state, "org_audit_logs", "org_id", ORG_A) == last_a
    assert run.exit_code == 1
    assert run.error is not None
    assert f"6 item(s) of organization {ORG_A} could not be read" in run.error
    assert "\n" not in run.error

    # The next run is not stuck: it goes on from the bookmark.
    later = make_events(2, start=NOW - timedelta(minutes=30), org_id=ORG_A, seed=3)
    snyk_api.add_org_events(ORG_A, later)
    again = run_tap(config, state=run.final_state)
    assert again.exit_code == 0
    assert len(again.records("org_audit_logs")) >= len(visible(later))


def test_one_bad_utf8_byte_spoils_only_its_own_string(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    snyk_api.add_org_events(ORG_A, [])
    created = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    page = {
        "data": {
            "items": [
                item(created, content={"name": "Ünïcode 日本語"}),
                item(created, content={"name": "bad BYTE here", "ok": "🔐"}),
            ]
        },
        "jsonapi": {"version": "1.0"},
    }
    body = json.dumps(page, ensure_ascii=False).encode("utf-8").replace(b"BYTE", b"\xff")
    snyk_api.faults.append(Fault(body=body, path=f"/orgs/{ORG_A}/audit_logs/search"))
    with caplog.at_level(logging.WARNING):
        run = run_tap(tap_config(snyk_api))
    assert run.exit_code == 0
    first, second = run.records("org_audit_logs")
    assert first["content"] == {"name": "Ünïcode 日本語"}
    assert second["content"] == {"name": "bad \ufffd here", "ok": "🔐"}
    assert any(
        r.levelno == logging.WARNING
        and f"/rest/orgs/{ORG_A}/audit_logs/search held bytes that are not UTF-8" in r.getMessage()
        for r in caplog.records
    )

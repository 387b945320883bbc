"""snyk_ocsf_events: every audit event as an OCSF 1.8.0 event, valid for its class, and written
to Parquet for Amazon Security Lake as transform/README.md shows.

The events are the `alerting` pipeline's (the demo's, api.access, the cases of Panther's rules);
tests/test_dbt.py validates those of its own scenario, in PostgreSQL and DuckDB.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb

from tests.alerting import API_CLIENT, Alerting
from tests.meltano_project import ROOT
from tests.ocsf import OCSF_VERSION, invalid_events

README = ROOT / "transform" / "README.md"


def ocsf_events(alerting: Alerting) -> list[dict[str, Any]]:
    return [json.loads(doc) for (doc,) in alerting.query(
        "select ocsf from snyk_marts.snyk_ocsf_events"
    )]  # fmt: skip


def test_every_audit_event_is_one_ocsf_event(alerting: Alerting) -> None:
    staged = alerting.query("select event_id from snyk_staging.stg_snyk__audit_events")
    uids = [event["metadata"]["uid"] for event in ocsf_events(alerting)]
    assert sorted(uids) == sorted(event_id for (event_id,) in staged)


def test_every_ocsf_event_is_valid_for_its_class(alerting: Alerting) -> None:
    events = ocsf_events(alerting)
    assert {event["class_uid"] for event in events} == {3001, 3004, 3005, 3006, 6003}
    assert invalid_events(events) == {}


def test_ocsf_events_name_the_release_snyk_and_the_event(alerting: Alerting) -> None:
    for event in ocsf_events(alerting):
        assert event["metadata"]["version"] == OCSF_VERSION
        assert event["metadata"]["product"]["name"] == "Snyk"
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["category_uid"] == event["class_uid"] // 1000


def test_ocsf_time_is_the_event_time_in_epoch_milliseconds(alerting: Alerting) -> None:
    rows = alerting.query(
        "select e.created, o.ocsf from snyk_staging.stg_snyk__audit_events as e"
        " join snyk_marts.snyk_ocsf_events as o using (event_id)"
    )
    for created, document in rows:
        assert json.loads(document)["time"] == round(created.timestamp() * 1000)


def test_a_role_given_is_user_access_management_with_the_member_and_the_role(
    alerting: Alerting,
) -> None:
    # Panther's case: org.user.role.edit, afterRoleName ADMIN, userPublicId the actor's.
    member = "05555555-3333-4ddd-8ccc-755555555555"
    [event] = [
        event
        for event in ocsf_events(alerting)
        if event["metadata"]["event_code"] == "org.user.role.edit"
        and event.get("user", {}).get("uid") == member
    ]
    assert event["class_uid"] == 3005
    assert event["activity_id"] == 1  # Assign Privileges
    assert event["privileges"] == ["ADMIN"]
    assert event["actor"]["user"]["uid"] == member
    assert event["unmapped"]["content"]["beforeRoleName"] == "Org Collaborator"


def test_api_access_is_api_activity_with_the_request(alerting: Alerting) -> None:
    events = [
        json.loads(doc)
        for (doc,) in alerting.query(
            "select ocsf from snyk_marts.snyk_ocsf_events where class_uid = 6003"
        )
    ]
    assert {event["http_request"]["user_agent"] for event in events} > {API_CLIENT}
    by_method = {
        event["http_request"]["http_method"]: event
        for event in events
        if event["http_request"]["user_agent"] == API_CLIENT
    }
    assert set(by_method) == {"GET", "DELETE", "PATCH"}
    assert by_method["GET"]["activity_id"] == 2  # Read
    assert by_method["GET"]["src_endpoint"] == {"ip": "203.0.113.7"}
    assert by_method["DELETE"]["status_id"] == 2  # Failure: 403
    assert by_method["DELETE"]["src_endpoint"] == {"ip": "2001:db8::7"}
    assert by_method["PATCH"]["src_endpoint"] == {"name": API_CLIENT}
    assert by_method["GET"]["api"]["operation"].startswith("GET /rest/orgs/")


def readme_parquet_script() -> str:
    """The DuckDB statements of transform/README.md that write a class's Parquet files."""
    [script] = re.findall(r"duckdb \S+ <<'SQL'\n(.*?)\nSQL\n", README.read_text(), re.DOTALL)
    return script


def without_nulls(value: Any) -> Any:
    """A value read back from Parquet, its absent attributes (nulls) left out, as OCSF has them."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def test_the_readme_writes_each_class_to_parquet_that_reads_back_valid(
    alerting: Alerting, tmp_path: Path
) -> None:
    counts = dict(
        alerting.query("select class_uid, count(*) from snyk_marts.snyk_ocsf_events group by 1")
    )
    (tmp_path / "security-lake").mkdir()
    with duckdb.connect(str(alerting.database), read_only=True) as db:
        for class_uid in counts:
            script = readme_parquet_script().replace("3004", str(class_uid))
            script = script.replace("'security-lake/", f"'{tmp_path}/security-lake/")
            db.execute(script)
    read_back: dict[int, list[dict[str, Any]]] = {}
    with duckdb.connect() as db:
        for class_uid in counts:
            files = f"{tmp_path}/security-lake/snyk_{class_uid}/eventDay=*/*.parquet"
            rows = db.execute(
                f"select to_json(t) from read_parquet('{files}', hive_partitioning = false) as t"
            ).fetchall()
            events = [without_nulls(json.loads(row)) for (row,) in rows]
            for event in events:
                event["unmapped"] = json.loads(event["unmapped"])
            read_back[class_uid] = events
    assert {uid: len(events) for uid, events in read_back.items()} == counts
    assert all(e["class_uid"] == uid for uid, events in read_back.items() for e in events)
    assert invalid_events(e for events in read_back.values() for e in events) == {}

"""End to end: real `meltano run tap-snyk target-duckdb`, twice, into a real DuckDB file."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from fake_snyk import FakeSnyk, make_events, make_members, make_projects
from tests.conftest import GROUP, ORG_A, TOKEN
from tests.meltano_project import ROOT, meltano_env, run_meltano, visible

NOW = datetime.now(timezone.utc).replace(microsecond=0)
ODD_CONTENT = {"notSupported": {"": 1, ".json": 3500}, "ünï": ["日本", {"deep": [1.5, None]}]}
STATE_ID = "dev:tap-snyk-to-target-duckdb"


@pytest.fixture
def project_env(tmp_path: Path, snyk_api: FakeSnyk) -> dict[str, str]:
    """The repository's Meltano project, with its state and output in tmp_path."""
    return meltano_env(
        tmp_path,
        # Not snyk.duckdb: DuckDB names the catalog after the file, and `snyk` is the schema.
        TARGET_DUCKDB_PATH=str(tmp_path / "tap_snyk.duckdb"),
        TAP_SNYK_API_URL=snyk_api.url,
        TAP_SNYK_API_TOKEN=TOKEN,
        TAP_SNYK_ORG_IDS=json.dumps([ORG_A]),
        TAP_SNYK_GROUP_IDS=json.dumps([GROUP]),
        TAP_SNYK_PAGE_SIZE="50",
    )


def rows(path: str, table: str) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as db:
        return db.execute(
            f"select event_id, created, event, content from snyk.{table} order by created"
        ).fetchall()


def test_two_meltano_runs_load_every_event_once(
    snyk_api: FakeSnyk, project_env: dict[str, str]
) -> None:
    org_events = make_events(230, start=NOW - timedelta(days=4), org_id=ORG_A, seed=7)
    org_events.append(
        {"created": (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
         "event": "org.settings.edit", "org_id": ORG_A, "content": ODD_CONTENT}
    )  # fmt: skip
    group_events = make_events(60, start=NOW - timedelta(days=4), group_id=GROUP, seed=8)
    snyk_api.add_org_events(ORG_A, org_events)
    snyk_api.add_group_events(GROUP, group_events)
    snyk_api.add_org_members(ORG_A, make_members(ORG_A))
    snyk_api.add_org_projects(ORG_A, make_projects(ORG_A))

    run_meltano(project_env, "run", "tap-snyk", "target-duckdb")
    database = project_env["TARGET_DUCKDB_PATH"]
    first_org_rows = rows(database, "org_audit_logs")
    assert len(first_org_rows) == len(visible(org_events))
    assert len(rows(database, "group_audit_logs")) == len(visible(group_events))
    first_state = json.loads(run_meltano(project_env, "state", "get", STATE_ID).stdout)

    # Between runs: new events, and late ones created inside the lookback window.
    late = make_events(5, start=NOW - timedelta(hours=20), org_id=ORG_A, seed=9)
    new = make_events(12, start=NOW - timedelta(minutes=30), org_id=ORG_A, seed=10)
    snyk_api.add_org_events(ORG_A, late + new)
    run_meltano(project_env, "run", "tap-snyk", "target-duckdb")

    org_rows = rows(database, "org_audit_logs")
    assert len(org_rows) == len(visible(org_events + late + new))
    assert len({row[0] for row in org_rows}) == len(org_rows)  # one row per event_id
    assert {row[0] for row in first_org_rows} <= {row[0] for row in org_rows}
    assert ODD_CONTENT in [json.loads(row[3]) for row in org_rows if row[3] is not None]
    assert len(rows(database, "group_audit_logs")) == len(visible(group_events))

    second_state = json.loads(run_meltano(project_env, "state", "get", STATE_ID).stdout)

    def org_bookmark(state: dict) -> str:
        [partition] = state["singer_state"]["bookmarks"]["org_audit_logs"]["partitions"]
        return partition["replication_key_value"]

    assert org_bookmark(second_state) > org_bookmark(first_state)

    # The example queries of docs/loaders.md run on what was loaded, and find it.
    page = (ROOT / "docs" / "loaders.md").read_text()
    section = page.split("\n## Querying the result\n")[1].split("\n## ")[0]
    queries = [block.split("```")[0] for block in section.split("```sql\n")[1:]]
    statements = [q.strip() for block in queries for q in block.split(";") if q.strip()]
    assert len(statements) >= 3
    with duckdb.connect(database, read_only=True) as db:
        for statement in statements:
            assert db.execute(statement).fetchall(), statement
        latest = db.execute(statements[0]).fetchall()  # with names from the lookup streams
        assert all(org for *_, org, _project in latest)
        assert any(user_name for _created, _event, user_name, *_ in latest)

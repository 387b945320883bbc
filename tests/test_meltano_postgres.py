"""End to end: real `meltano run tap-snyk target-postgres`, three times, into a real PostgreSQL.

One scenario for the module (a full sync, then two incremental runs, each after the fake API
published late and new events); each test checks one thing about what PostgreSQL holds.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from fake_snyk import FakeSnyk, make_events, parse_rfc3339
from tests.conftest import GROUP, ORG_A, TOKEN
from tests.meltano_project import meltano_env, run_meltano, visible
from tests.postgres import PostgresSchema

NOW = datetime.now(timezone.utc).replace(microsecond=0)
ODD_CREATED = NOW - timedelta(hours=2, microseconds=-123_000)
ODD_CONTENT = {
    "notSupported": {"": 1, ".json": 3500},
    "ünï": ["日本", {"deep": [1.5, None, True, -0.25, 10**15]}],
    "": "an empty key at the top",
    "escapes": '🔒 \u2028 \\ "quoted" \t',
}
STATE_ID = "dev:tap-snyk-to-target-postgres"
TABLES = ("org_audit_logs", "group_audit_logs")
COLUMNS = "created, event, org_id, group_id, user_id, project_id, content"
RUNS = 3
# Before runs 2 and 3: how long ago the late org events, the late group events and the new events
# were created. Org bookmarks: about 2 h ago after run 1, then about 1.5 h and 45 min ago.
LATE_AND_NEW = {
    2: (timedelta(hours=20), timedelta(hours=3), timedelta(minutes=90)),
    3: (timedelta(hours=19), timedelta(hours=2), timedelta(minutes=45)),
}

Rows = Counter[tuple[Any, ...]]


@dataclass
class Scenario:
    """What the three runs left behind: PostgreSQL's rows and Meltano's state after each."""

    postgres: PostgresSchema
    events: dict[str, list[dict[str, Any]]]  # every event the fake API held at the end, by table
    expected: list[dict[str, Rows]] = field(default_factory=list)  # after each run, by table
    loaded: list[dict[str, Rows]] = field(default_factory=list)
    event_ids: list[dict[str, list[str]]] = field(default_factory=list)
    bookmarks: list[dict[str, str]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)  # what each `meltano run` printed


def canonical(content: Any) -> str | None:
    """JSON text that is equal exactly when the content is (for counting rows)."""
    return None if content is None else json.dumps(content, sort_keys=True, ensure_ascii=False)


def expected_rows(events: list[dict[str, Any]], **partition: str) -> Rows:
    """The rows the visible events should become: the partition's id filled in, naive UTC."""
    return Counter(
        (
            parse_rfc3339(e["created"]).astimezone(timezone.utc).replace(tzinfo=None),
            e["event"],
            *(partition.get(k, e.get(k)) for k in ("org_id", "group_id", "user_id", "project_id")),
            canonical(e.get("content")),
        )
        for e in visible(events)
    )


def loaded_rows(postgres: PostgresSchema, table: str) -> Rows:
    rows = postgres.query(f'select {COLUMNS} from "{postgres.schema}".{table}')
    return Counter((*row[:-1], canonical(row[-1])) for row in rows)


def bookmarks(env: dict[str, str]) -> dict[str, str]:
    """Meltano's saved bookmark of each stream (one partition each here)."""
    state = json.loads(run_meltano(env, "state", "get", STATE_ID).stdout)
    return {
        table: state["singer_state"]["bookmarks"][table]["partitions"][0]["replication_key_value"]
        for table in TABLES
    }


def publish(api: FakeSnyk, scenario: Scenario, run: int) -> None:
    """What the fake API publishes before each run: a backlog, then late and new events."""
    if run == 1:
        org = make_events(230, start=NOW - timedelta(days=4), org_id=ORG_A, seed=7)
        org.append(
            {"created": ODD_CREATED.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
             "event": "org.settings.edit", "org_id": ORG_A, "content": ODD_CONTENT}
        )  # fmt: skip
        group = make_events(60, start=NOW - timedelta(days=4), group_id=GROUP, seed=8)
    else:
        # Late: created before the last bookmark (the group's: from run 3 on) but inside the
        # 24 h lookback, and published only now.
        late_org, late_group, new = LATE_AND_NEW[run]
        org = make_events(6, start=NOW - late_org, org_id=ORG_A, seed=10 * run)
        org += make_events(12, start=NOW - new, org_id=ORG_A, seed=10 * run + 1)
        group = make_events(4, start=NOW - late_group, group_id=GROUP, seed=10 * run + 2)
        group += make_events(3, start=NOW - new, group_id=GROUP, seed=10 * run + 3)
    api.add_org_events(ORG_A, org)
    api.add_group_events(GROUP, group)
    scenario.events["org_audit_logs"] += org
    scenario.events["group_audit_logs"] += group


@pytest.fixture(scope="module")
def scenario(
    postgres: PostgresSchema, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    meltano_dir = tmp_path_factory.mktemp("meltano")
    with FakeSnyk() as api:
        env = meltano_env(
            meltano_dir,
            # Sessions default to a time zone other than UTC, as on many servers: the loader must
            # store UTC all the same (meltano.yml gives it PGTZ=UTC, which libpq puts first).
            PGOPTIONS="-c timezone=Asia/Kolkata",
            **postgres.target_env(),
            TAP_SNYK_API_URL=api.url,
            TAP_SNYK_API_TOKEN=TOKEN,
            TAP_SNYK_ORG_IDS=json.dumps([ORG_A]),
            TAP_SNYK_GROUP_IDS=json.dumps([GROUP]),
            TAP_SNYK_PAGE_SIZE="50",
        )
        result = Scenario(postgres, {table: [] for table in TABLES})
        for run in range(1, RUNS + 1):
            publish(api, result, run)
            ran = run_meltano(env, "run", "tap-snyk", "target-postgres")
            result.stderr.append(ran.stderr)
            result.expected.append(
                {
                    "org_audit_logs": expected_rows(result.events["org_audit_logs"], org_id=ORG_A),
                    "group_audit_logs": expected_rows(
                        result.events["group_audit_logs"], group_id=GROUP
                    ),
                }
            )
            result.loaded.append({table: loaded_rows(postgres, table) for table in TABLES})
            result.event_ids.append(
                {
                    table: [
                        row[0]
                        for row in postgres.query(
                            f'select event_id from "{postgres.schema}".{table}'
                        )
                    ]
                    for table in TABLES
                }
            )
            result.bookmarks.append(bookmarks(env))
        yield result


def column_types(scenario: Scenario, table: str) -> dict[str, str]:
    rows = scenario.postgres.query(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = %s and table_name = %s",
        [scenario.postgres.schema, table],
    )
    return dict(rows)


def test_each_run_leaves_exactly_the_visible_events(scenario: Scenario) -> None:
    org_events = scenario.events["org_audit_logs"]
    assert len(visible(org_events)) < len(org_events)  # the API hid its api.access events
    for expected, loaded in zip(scenario.expected, scenario.loaded, strict=True):
        for table in TABLES:
            assert loaded[table] == expected[table], table


def test_each_run_leaves_one_row_per_event_id(scenario: Scenario) -> None:
    for ids, expected in zip(scenario.event_ids, scenario.expected, strict=True):
        for table in TABLES:
            assert len(set(ids[table])) == len(ids[table]) == expected[table].total(), table


def test_events_read_again_through_the_lookback_keep_their_row(scenario: Scenario) -> None:
    for before, after in zip(scenario.event_ids, scenario.event_ids[1:], strict=False):
        for table in TABLES:
            assert set(before[table]) < set(after[table]), table


def test_event_id_is_the_primary_key(scenario: Scenario) -> None:
    keys = scenario.postgres.query(
        "select tc.table_name, kcu.column_name"
        " from information_schema.table_constraints tc"
        " join information_schema.key_column_usage kcu using (constraint_schema, constraint_name)"
        " where tc.constraint_type = 'PRIMARY KEY' and tc.table_schema = %s",
        [scenario.postgres.schema],
    )
    assert sorted(key for key in keys if key[0] in TABLES) == [
        ("group_audit_logs", "event_id"),
        ("org_audit_logs", "event_id"),
    ]


def test_content_is_jsonb_and_round_trips(scenario: Scenario) -> None:
    for table in TABLES:
        assert column_types(scenario, table)["content"] == "jsonb"
    [(content,)] = scenario.postgres.query(
        f'select content from "{scenario.postgres.schema}".org_audit_logs'
        " where content ? 'escapes'"
    )
    assert content == ODD_CONTENT


def test_events_without_details_hold_json_null(scenario: Scenario) -> None:
    # The loader writes a missing object as JSON null, not SQL NULL: query such events with
    # `jsonb_typeof(content) = 'null'`, not `content is null`.
    without = sum(1 for e in visible(scenario.events["org_audit_logs"]) if "content" not in e)
    [(json_null, sql_null)] = scenario.postgres.query(
        "select count(*) filter (where jsonb_typeof(content) = 'null'),"
        " count(*) filter (where content is null)"
        f' from "{scenario.postgres.schema}".org_audit_logs'
    )
    assert (json_null, sql_null) == (without, 0)
    assert without > 0


def test_created_is_a_timestamp_in_utc(scenario: Scenario) -> None:
    # MeltanoLabs target-postgres 0.8.1 maps every `format: date-time` to `timestamp` (without
    # time zone), whatever the schema says; meltano.yml's PGTZ=UTC makes the values UTC.
    for table in TABLES:
        assert column_types(scenario, table)["created"] == "timestamp without time zone"
    [(created,)] = scenario.postgres.query(
        f'select created from "{scenario.postgres.schema}".org_audit_logs'
        " where content ? 'escapes'"
    )
    assert created == ODD_CREATED.replace(tzinfo=None)


def test_meltano_state_advances_with_each_run(scenario: Scenario) -> None:
    for before, after in zip(scenario.bookmarks, scenario.bookmarks[1:], strict=False):
        for table in TABLES:
            assert after[table] > before[table], table


def test_the_loader_prints_nothing_at_the_default_log_level(scenario: Scenario) -> None:
    # At INFO, target-postgres prints each INSERT statement and METRIC lines (meltano.yml's
    # singer_sdk_log_config keeps warnings and errors only).
    for stderr in scenario.stderr:
        assert "target-postgres" in stderr  # Meltano names the job
        assert not re.search(r"\] target-postgres\s", stderr)

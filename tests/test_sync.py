"""scripts/sync ends with the answer (scripts/summary): where the data is, what it holds, a query.

And what it prints on the way stays plain: dbt without colour codes when not on a terminal, the
loaders without their chatter (their log level is set in meltano.yml).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.meltano_project import ROOT, DemoSync

SUMMARY = ROOT / "scripts" / "summary"
TABLE_LINE = re.compile(r"^  (\S+)\s+([\d,]+) (events|rows)$")


def counted(stdout: str) -> dict[str, int]:
    """The summary's table lines: schema.table -> rows."""
    return {
        match[1]: int(match[2].replace(",", ""))
        for line in stdout.splitlines()
        if (match := TABLE_LINE.match(line))
    }


def suggested_command(stdout: str) -> str:
    lines = stdout.splitlines()
    return lines[lines.index("A query to try:") + 1].strip()


def summary(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SUMMARY), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_demo_ends_by_saying_where_the_data_is(demo_sync: DemoSync) -> None:
    assert f"The data is in {demo_sync.database} (DuckDB):" in demo_sync.stdout


def test_the_demo_ends_with_the_rows_of_every_loaded_table_and_mart(
    demo_sync: DemoSync,
) -> None:
    with duckdb.connect(str(demo_sync.database), read_only=True) as db:
        tables = db.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema not like '%staging'"
        ).fetchall()
        expected = {
            name: db.execute(f"select count(*) from {name}").fetchall()[0][0] for (name,) in tables
        }
    assert counted(demo_sync.stdout) == expected
    assert expected["snyk.org_audit_logs"] > 0
    assert expected["snyk_marts.snyk_membership_changes"] > 0
    assert re.search(r"^  snyk\.org_audit_logs\s+[\d,]+ events$", demo_sync.stdout, re.M)


def test_the_query_the_demo_suggests_runs_as_printed(demo_sync: DemoSync) -> None:
    command = suggested_command(demo_sync.stdout)
    assert "snyk_marts.snyk_membership_changes" in command
    result = subprocess.run(
        command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert "actor_name" in result.stdout  # the header of the rows it printed


def test_dbt_writes_no_colour_codes_when_not_on_a_terminal(demo_sync: DemoSync) -> None:
    assert "dbt-duckdb" in demo_sync.stderr
    assert "\x1b[" not in demo_sync.stderr


def test_the_loaders_chatter_stays_out_of_the_default_view(demo_sync: DemoSync) -> None:
    # target-duckdb at INFO prints each CREATE TABLE in full and a line per batch loaded.
    assert not re.search(r"\] target-duckdb\s", demo_sync.stderr)
    assert "CREATE TABLE" not in demo_sync.stderr


@pytest.fixture
def loaded_only(tmp_path: Path) -> Path:
    """A DuckDB file as target-duckdb leaves it before dbt: audit logs and a lookup, no marts."""
    path = tmp_path / "loaded.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("create schema snyk")
        db.execute(
            "create table snyk.org_audit_logs as select 'e' || i as event_id,"
            " timestamp '2026-01-01' + i * interval 1 minute as created, 'org.user.add' as event,"
            " 'u1' as user_id, 'o1' as org_id from range(3) as t(i)"
        )
        db.execute("create table snyk.organizations as select 'o1' as id, 'Acme' as name")
        db.execute("create schema snyk_staging")
        db.execute("create table snyk_staging.stg_snyk__organizations as select 1 as x")
    return path


def test_the_summary_counts_events_and_rows_but_not_dbts_staging_tables(loaded_only: Path) -> None:
    result = summary("--database", str(loaded_only))
    assert result.returncode == 0, result.stderr
    assert counted(result.stdout) == {"snyk.org_audit_logs": 3, "snyk.organizations": 1}
    assert re.search(r"snyk\.org_audit_logs\s+3 events", result.stdout)
    assert re.search(r"snyk\.organizations\s+1 rows", result.stdout)


def test_without_the_marts_the_summary_suggests_a_query_on_the_audit_logs(
    loaded_only: Path,
) -> None:
    result = summary("--database", str(loaded_only))
    command = suggested_command(result.stdout)
    assert "from snyk.org_audit_logs" in command
    printed = subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=60, check=True
    )
    assert "org.user.add" in printed.stdout


def test_paths_below_the_starting_folder_are_written_relative_to_it(loaded_only: Path) -> None:
    result = summary("--database", str(loaded_only), "--relative-to", str(loaded_only.parent))
    assert "The data is in loaded.duckdb (DuckDB):" in result.stdout


def test_the_summary_says_when_there_is_no_database(tmp_path: Path) -> None:
    result = summary("--database", str(tmp_path / "none.duckdb"))
    assert result.returncode == 1
    assert "No DuckDB file at" in result.stderr


def test_the_summary_finds_the_file_where_meltano_sends_target_duckdb(loaded_only: Path) -> None:
    env_run = subprocess.run(
        [sys.executable, str(SUMMARY), "--environment=fake"],
        cwd=ROOT,
        env={**os.environ, "TARGET_DUCKDB_PATH": str(loaded_only)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert env_run.returncode == 0, env_run.stderr
    assert f"The data is in {loaded_only} (DuckDB):" in env_run.stdout

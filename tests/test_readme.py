"""The docs say what the code does: the README's front page, its tables and rows, the docs/ pages.

Other tests run the rest of what the pages show: test_meltano_project.py the commands of
docs/meltano-project.md, docs/schedule.md and docs/loaders.md in a new Meltano project;
test_meltano_duckdb.py the queries of docs/loaders.md; test_sync.py what `scripts/sync` prints.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from fake_snyk import FakeSnyk, make_events
from tap_snyk.tap import TapSnyk
from tests.conftest import ORG_A, run_tap, tap_config
from tests.meltano_project import DemoSync, visible

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
SDK_SETTINGS = ("stream_map", "faker", "flattening", "batch")
SAMPLE = re.compile(r"<!-- sample:start -->\n```sql\n(.*?)```\n\n(.*?)\n<!-- sample:end -->", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def about(output_format: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "tap_snyk.tap", "--about", f"--format={output_format}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_front_page_reads_in_five_minutes() -> None:
    assert len(README.read_text().split()) < 1500


def test_the_front_page_keeps_the_two_commands() -> None:
    commands = README.read_text().split("## The two commands")[1].split("```bash\n")[1]
    assert [line.split()[0] for line in commands.split("```")[0].splitlines()] == [
        "scripts/sync",
        "scripts/test",
    ]


def test_every_link_between_the_pages_leads_somewhere() -> None:
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor:
                assert anchor in anchors(linked), f"{page.name}: {target}"


def test_every_page_of_docs_is_linked_from_the_front_page() -> None:
    linked = {(ROOT / target).resolve() for target in LINK.findall(README.read_text())}
    assert set(DOCS.glob("*.md")) <= {path for path in linked if path.suffix == ".md"}


def test_the_generated_tables_are_what_the_code_says_today() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "doc-tables"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_settings_table_is_the_one_tap_snyk_about_prints() -> None:
    page = (DOCS / "configuration.md").read_text()
    documented = page.split("<!-- settings:start -->\n")[1].split("\n<!-- settings:end")[0]
    rows = [line for line in about("markdown").splitlines() if line.startswith("| ")]
    own = [row for row in rows if not row.startswith(tuple(f"| {s}" for s in SDK_SETTINGS))]
    assert documented.splitlines()[0] == own[0]  # the header
    assert documented.splitlines()[2:] == own[1:], "run scripts/doc-tables to update it"


def test_the_front_page_names_every_stream_and_every_column_of_its_schema() -> None:
    readme = README.read_text()
    summary = readme.split("## The streams and their columns")[1].split("<!-- columns:start")[0]
    # Each stream's schema as the tap gives it (the org and group twins share one file).
    tap = TapSnyk(config={}, validate_config=False, parse_env_config=False)
    streams = {name: stream.schema for name, stream in tap.streams.items()}
    assert set(re.findall(r"^\| `(\w+)` \|", summary, re.M)) == set(streams)
    columns = readme.split("<!-- columns:start -->")[1].split("<!-- columns:end -->")[0]
    for name, schema in streams.items():
        assert f"**`{name}`**" in columns
        for column in schema["properties"]:
            assert f"`{column}`" in columns, (name, column)


def test_meltano_yml_defines_every_setting_of_the_tap_and_marks_the_secrets_sensitive() -> None:
    tap_settings = json.loads(about("json"))["settings"]["properties"]
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    [tap] = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-snyk"]
    declared = {setting["name"]: setting for setting in tap["settings"]}
    own = {name for name in tap_settings if not name.startswith(SDK_SETTINGS)}
    assert own <= declared.keys()
    secrets = {name for name in own if tap_settings[name].get("secret")}
    assert secrets == {"api_token", "client_secret", "private_key"}
    for name in secrets:
        assert declared[name]["sensitive"] is True
        assert declared[name]["kind"] == "password"


def shown(value: Any) -> str:
    """A value as the sample tables show it (scripts/doc-tables)."""
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).replace("|", "\\|")


@pytest.mark.parametrize("number", range(len(SAMPLE.findall(README.read_text()))))
def test_each_sample_of_the_front_page_is_what_the_demo_loads(
    number: int, demo_sync: DemoSync
) -> None:
    sql, table = SAMPLE.findall(README.read_text())[number]
    header, _, *rows = table.strip().splitlines()
    with duckdb.connect(str(demo_sync.database), read_only=True) as db:
        result = db.execute(sql)
        columns = [column[0] for column in result.description]
        loaded = result.fetchall()
    assert header == "| " + " | ".join(columns) + " |"
    assert len(rows) == len(loaded) > 0
    # Times move with the day of the demo; every other value is the demo's.
    timeless = [i for i, value in enumerate(loaded[0]) if not isinstance(value, (date, datetime))]
    for row, values in zip(rows, loaded, strict=True):
        cells = row.strip("| ").split(" | ")
        assert [cells[i] for i in timeless] == [shown(values[i]) for i in timeless], row


def test_the_query_for_append_only_targets_keeps_each_event_once(
    tmp_path: Path, snyk_api: FakeSnyk
) -> None:
    now = datetime.now(timezone.utc)
    events = make_events(150, start=now - timedelta(hours=20), org_id=ORG_A, seed=3)
    snyk_api.add_org_events(ORG_A, events)
    # Two runs, the second from the first's state: its lookback re-reads every event.
    first = run_tap(tap_config(snyk_api))
    second = run_tap(tap_config(snyk_api), state=first.final_state)
    output = tmp_path / "output"
    output.mkdir()
    # As target-jsonl appends them: one record a line.
    lines = [json.dumps(r) for run in (first, second) for r in run.records("org_audit_logs")]
    (output / "org_audit_logs.jsonl").write_text("\n".join(lines) + "\n")
    assert len(lines) > len(visible(events))

    page = (DOCS / "loaders.md").read_text()
    section = page.split("**Append-only targets**")[1].split("\n## ")[0]
    query = section.split("```sql\n")[1].split("```")[0].strip().rstrip(";")
    assert "'output/org_audit_logs*.jsonl'" in query
    with duckdb.connect() as db:
        result = db.execute(query.replace("'output/", f"'{output}/"))
        columns = [column[0] for column in result.description]
        rows = [dict(zip(columns, row, strict=True)) for row in result.fetchall()]
    assert len(rows) == len(visible(events))
    assert len({row["event_id"] for row in rows}) == len(rows)

"""The docs say what the code does: the settings table, meltano.yml, the README's queries."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import yaml

from fake_snyk import FakeSnyk, make_events
from tests.conftest import ORG_A, run_tap, tap_config
from tests.meltano_project import visible

ROOT = Path(__file__).resolve().parent.parent
SDK_SETTINGS = ("stream_map", "faker", "flattening", "batch")


def about(output_format: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "tap_snyk.tap", "--about", f"--format={output_format}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_settings_table_is_the_one_tap_snyk_about_prints() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = readme.split("<!-- settings:start -->\n")[1].split("\n<!-- settings:end")[0]
    rows = [line for line in about("markdown").splitlines() if line.startswith("| ")]
    own = [row for row in rows if not row.startswith(tuple(f"| {s}" for s in SDK_SETTINGS))]
    assert documented.splitlines()[0] == own[0]  # the header
    assert documented.splitlines()[2:] == own[1:], "run scripts/readme-settings to update it"


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

    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Append-only targets**")[1].split("\n## ")[0]
    query = section.split("```sql\n")[1].split("```")[0].strip().rstrip(";")
    assert "'output/org_audit_logs*.jsonl'" in query
    with duckdb.connect() as db:
        result = db.execute(query.replace("'output/", f"'{output}/"))
        columns = [column[0] for column in result.description]
        rows = [dict(zip(columns, row, strict=True)) for row in result.fetchall()]
    assert len(rows) == len(visible(events))
    assert len({row["event_id"] for row in rows}) == len(rows)

"""plugin/tap-snyk.yml: the same settings as `--about`, and it adds tap-snyk to a new project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from fake_snyk import FakeSnyk, make_events
from tests.conftest import GROUP, ORG_A, TOKEN
from tests.meltano_project import FOREIGN, ROOT, run_meltano

DEFINITION = ROOT / "plugin" / "tap-snyk.yml"


def about() -> dict:
    printed = subprocess.run(
        [sys.executable, "-m", "tap_snyk", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return json.loads(printed)


def test_the_generated_copies_are_what_the_generator_writes_today() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plugin-definition"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_definition_declares_every_setting_of_about_as_about_does() -> None:
    tap = about()
    properties = tap["settings"]["properties"]
    plugin = yaml.safe_load(DEFINITION.read_text())
    declared = {setting["name"]: setting for setting in plugin["settings"]}
    assert list(declared) == list(properties)
    for name, schema in properties.items():
        assert declared[name].get("value") == schema.get("default"), name
        assert declared[name].get("sensitive", False) == schema.get("secret", False), name
        assert declared[name]["description"] in (schema.get("description"), schema.get("title"))
    assert declared["api_token"]["kind"] == "password"
    assert sorted(plugin["capabilities"]) == sorted(tap["capabilities"])
    assert (plugin["name"], plugin["namespace"], plugin["executable"]) == (
        "tap-snyk",
        "tap_snyk",
        "tap-snyk",
    )
    assert plugin["pip_url"].startswith("git+https://")


def test_meltano_yml_declares_the_tap_as_the_definition_does() -> None:
    plugin = yaml.safe_load(DEFINITION.read_text())
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    [tap] = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-snyk"]
    for field in ("namespace", "executable", "capabilities", "settings_group_validation"):
        assert tap[field] == plugin[field], field
    assert tap["settings"] == plugin["settings"]


def test_the_definition_adds_a_working_tap_snyk_to_a_new_meltano_project(
    tmp_path: Path, snyk_api: FakeSnyk
) -> None:
    now = datetime.now(timezone.utc)
    snyk_api.add_org_events(ORG_A, make_events(20, start=now - timedelta(days=1), org_id=ORG_A))
    snyk_api.add_group_events(GROUP, make_events(5, start=now - timedelta(days=1), group_id=GROUP))
    project = tmp_path / "their-project"
    project.mkdir()
    # A project of someone else's: no plugin yet, no Meltano Hub, no telemetry.
    (project / "meltano.yml").write_text(
        "project_id: 6a7f1f0e-9f3c-4f53-8d7c-1f2e3d4c5b6a\n"
        "send_anonymous_usage_stats: false\n"
        "snowplow:\n  collector_endpoints: []\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith((*FOREIGN, "MELTANO_"))},
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_SNYK_API_URL": snyk_api.url,
        "TAP_SNYK_API_TOKEN": TOKEN,
        "TAP_SNYK_ORG_IDS": json.dumps([ORG_A]),
        "TAP_SNYK_GROUP_IDS": json.dumps([GROUP]),
    }

    # As the README says: add it from the definition, point pip_url at a checkout, install.
    run_meltano(
        env,
        *("add", "--plugin-type", "extractor", "tap-snyk", "--from-ref", str(DEFINITION)),
        "--no-install",
        project=project,
    )
    their_yml = project / "meltano.yml"
    added = yaml.safe_load(their_yml.read_text())
    pip_url = added["plugins"]["extractors"][0]["pip_url"]
    their_yml.write_text(their_yml.read_text().replace(f"pip_url: {pip_url}", f"pip_url: {ROOT}"))
    run_meltano(env, "install", project=project)
    assert (project / ".meltano" / "extractors" / "tap-snyk" / "venv" / "bin" / "tap-snyk").exists()

    result = run_meltano(env, "invoke", "tap-snyk", "--test", project=project)
    output = result.stdout + result.stderr
    assert f"OK   organization {ORG_A}: org_audit_logs readable" in output
    assert f"OK   group {GROUP}: group_audit_logs readable" in output
    assert "Connection check passed" in output
    assert TOKEN not in output

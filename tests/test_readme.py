"""The docs say what the code does: the README settings table and meltano.yml match the tap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

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


def test_meltano_yml_defines_every_setting_of_the_tap_and_marks_the_token_secret() -> None:
    tap_settings = json.loads(about("json"))["settings"]["properties"]
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    [tap] = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-snyk"]
    declared = {setting["name"]: setting for setting in tap["settings"]}
    own = {name for name in tap_settings if not name.startswith(SDK_SETTINGS)}
    assert own <= declared.keys()
    assert declared["api_token"]["sensitive"] is True
    assert declared["api_token"]["kind"] == "password"

"""The README says what the code does: its settings table is the tap's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_settings_table_is_the_one_tap_snyk_about_prints() -> None:
    about = subprocess.run(
        [sys.executable, "-m", "tap_snyk.tap", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    documented = (
        README.read_text().split("<!-- settings:start -->\n")[1].split("\n<!-- settings:end")[0]
    )
    rows = documented.splitlines()
    assert rows[:2] == [
        "| Setting | Required | Default | Description |",
        "|:--------|:--------:|:-------:|:------------|",
    ]
    for row in rows[2:]:
        assert row in about.splitlines(), f"README row differs from --about: {row}"
    # Every setting of the tap itself (the SDK's own come after page_size) is documented.
    about_rows = [
        line for line in about.splitlines() if line.startswith("| ") and "Setting" not in line
    ]
    own = about_rows[
        : about_rows.index(next(r for r in about_rows if r.startswith("| stream_maps ")))
    ]
    assert own == rows[2:]


def test_meltano_yml_defines_every_setting_of_the_tap_and_marks_the_token_secret() -> None:
    import json

    import yaml

    about = subprocess.run(
        [sys.executable, "-m", "tap_snyk.tap", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    tap_settings = set(json.loads(about)["settings"]["properties"])
    project = yaml.safe_load((README.parent / "meltano.yml").read_text())
    [tap] = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-snyk"]
    declared = {setting["name"]: setting for setting in tap["settings"]}
    own = {
        name
        for name in tap_settings
        if not name.startswith(("stream_map", "faker", "flattening", "batch"))
    }
    assert own <= declared.keys()
    assert declared["api_token"]["sensitive"] is True
    assert declared["api_token"]["kind"] == "password"

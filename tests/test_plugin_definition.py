"""plugin/tap-snyk.yml: the same settings as `--about`, in a form Meltano Hub accepts.

That it adds a working tap-snyk to a new Meltano project is tests/test_meltano_project.py's part
(docs/meltano-project.md, run as written).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from urllib.parse import urlparse

import yaml

from tests.meltano_project import ROOT

DEFINITION = ROOT / "plugin" / "tap-snyk.yml"

# What Meltano Hub asks of an extractor's definition, restated as our own assertions (the Hub's
# schema is not copied into this repository). Source: github.com/meltano/hub, commit
# 9d28b36a64bf1ba18d6b0dd6936d8f14d2eaa0ba (2026-08-02): schemas/plugin_definitions/
# extractors.schema.json and what it references (common/common.schema.json,
# common/extractors_specific.schema.json, common/base_setting.schema.json,
# plugin_definitions/hub_metadata.schema.json), applied as the Hub's own
# utility_scripts/plugin_definitions/plugin_schema_validate.py does (JSON Schema draft 7), and the
# Hub's .yamllint.yaml (key-ordering). The Hub repository is licensed under the Apache License 2.0.
HUB_TOP_LEVEL_KEYS = {
    *("name", "pip_url", "variant", "namespace", "label", "description", "executable"),
    *("settings", "docs", "repo", "logo_url", "hidden", "python", "settings_group_validation"),
    *("commands", "capabilities", "metadata", "schema", "select", "maintenance_status"),
    *("quality", "domain_url", "keywords", "requires", "definition", "next_steps"),
    *("settings_preamble", "usage", "prereq", "supported_python_versions", "log_parser"),
}
HUB_REQUIRED_KEYS = {"name", "namespace", "variant", "quality"}
HUB_STRING_KEYS = {
    *("name", "namespace", "variant", "pip_url", "executable", "repo", "python", "label"),
    *("description", "docs", "log_parser", "definition", "next_steps", "settings_preamble"),
    *("usage", "prereq"),
}
HUB_QUALITY = {"gold", "silver", "bronze", "unknown"}
HUB_MAINTENANCE_STATUS = {"active", "beta", "development", "inactive", "unknown"}
HUB_CAPABILITIES = {
    *("properties", "catalog", "discover", "state", "about", "stream-maps"),
    *("schema-flattening", "activate-version", "batch", "test", "log-based"),
    "structured-logging",
}
HUB_SETTING_KEYS = {
    *("name", "aliases", "label", "value", "placeholder", "kind", "description", "tooltip"),
    *("documentation", "env", "value_processor", "value_post_processor", "oauth", "options"),
    *("docs", "hidden", "sensitive"),
}
HUB_SETTING_KINDS = {
    *("oauth", "hidden", "password", "date_iso8601", "file", "email", "integer", "options"),
    *("object", "array", "boolean", "string", "decimal"),
}


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


def test_the_definition_has_only_the_top_level_keys_meltano_hub_accepts_and_those_it_requires() -> (
    None
):
    plugin = yaml.safe_load(DEFINITION.read_text())
    assert set(plugin) <= HUB_TOP_LEVEL_KEYS, set(plugin) - HUB_TOP_LEVEL_KEYS
    assert set(plugin) >= HUB_REQUIRED_KEYS, HUB_REQUIRED_KEYS - set(plugin)


def test_the_definition_values_have_the_forms_meltano_hub_accepts() -> None:
    plugin = yaml.safe_load(DEFINITION.read_text())
    for key in HUB_STRING_KEYS & plugin.keys():
        assert isinstance(plugin[key], str), key
    assert plugin["quality"] in HUB_QUALITY
    assert plugin.get("maintenance_status", "unknown") in HUB_MAINTENANCE_STATUS
    assert set(plugin["capabilities"]) <= HUB_CAPABILITIES
    for key in ("domain_url", "logo_url"):  # a string or null; domain_url a URI
        assert isinstance(plugin.get(key), (str, type(None))), key
    domain = urlparse(plugin["domain_url"])
    assert (domain.scheme, bool(domain.netloc)) == ("https", True)
    for key in ("keywords", "select"):
        assert all(isinstance(item, str) for item in plugin.get(key, [])), key
    groups = plugin["settings_group_validation"]
    assert all(isinstance(name, str) for group in groups for name in group)


def test_each_setting_of_the_definition_has_the_form_meltano_hub_accepts() -> None:
    for setting in yaml.safe_load(DEFINITION.read_text())["settings"]:
        assert isinstance(setting["name"], str)
        assert set(setting) <= HUB_SETTING_KEYS, setting["name"]
        assert setting["kind"] in HUB_SETTING_KINDS, setting["name"]
        for key in ("label", "description"):
            assert isinstance(setting.get(key, ""), str), (setting["name"], key)
        for key in ("sensitive", "hidden"):
            assert isinstance(setting.get(key, False), bool), (setting["name"], key)
        for option in setting.get("options", []):
            assert all(isinstance(option.get(key, ""), str) for key in ("label", "value"))


def test_every_mapping_of_the_definition_has_its_keys_in_order_as_the_hubs_yamllint_asks() -> None:
    def unordered(node: Any, path: str) -> list[str]:
        if isinstance(node, dict):
            found = [path] if list(node) != sorted(node) else []
            return found + [p for k, v in node.items() for p in unordered(v, f"{path}.{k}")]
        if isinstance(node, list):
            return [p for i, item in enumerate(node) for p in unordered(item, f"{path}[{i}]")]
        return []

    assert unordered(yaml.safe_load(DEFINITION.read_text()), "") == []


def test_meltano_yml_declares_the_tap_as_the_definition_does() -> None:
    plugin = yaml.safe_load(DEFINITION.read_text())
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    [tap] = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-snyk"]
    for field in ("namespace", "executable", "capabilities", "settings_group_validation"):
        assert tap[field] == plugin[field], field
    assert tap["settings"] == plugin["settings"]

"""meltano.yml holds what this project sets; the loaders' definitions are locked in plugins/."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import yaml

from tests.meltano_project import ROOT, meltano_env, run_meltano

#: Nothing listens there: any request to the Hub fails at once, as it does with no network.
UNREACHABLE_HUB = "http://127.0.0.1:9"
PROJECT = yaml.safe_load((ROOT / "meltano.yml").read_text())
LOADERS = {loader["name"]: loader for loader in PROJECT["plugins"]["loaders"]}


def test_every_plugin_resolves_with_meltano_hub_unreachable(tmp_path: Path) -> None:
    env = meltano_env(tmp_path, MELTANO_HUB_URL=UNREACHABLE_HUB)
    for plugins in PROJECT["plugins"].values():
        for plugin in plugins:
            printed = run_meltano(env, "config", "print", plugin["name"]).stdout
            assert isinstance(json.loads(printed), dict), plugin["name"]
    # A default only the lock file holds: the loader's definition came from it.
    target_postgres = json.loads(run_meltano(env, "config", "print", "target-postgres").stdout)
    assert target_postgres["port"] == 5432


def test_each_loader_is_locked_and_declares_only_settings_its_lock_lacks() -> None:
    for name, loader in LOADERS.items():
        lock = ROOT / "plugins" / "loaders" / f"{name}--{loader['variant']}.lock"
        locked = json.loads(lock.read_text())
        assert locked["name"] == name
        own = {setting["name"] for setting in loader.get("settings", [])}
        assert not own & {setting["name"] for setting in locked["settings"]}, (
            f"{name}: those settings belong to {lock.name}"
        )
        assert "namespace" not in loader, f"{name}: a namespace makes it custom, ignoring the lock"


def test_the_loaders_log_only_warnings_and_errors(tmp_path: Path) -> None:
    # target-duckdb reads its logging config from the file LOGGING_CONF_FILE names.
    env = meltano_env(tmp_path, MELTANO_HUB_URL=UNREACHABLE_HUB)
    target_duckdb = json.loads(run_meltano(env, "config", "print", "target-duckdb").stdout)
    logging_conf = configparser.ConfigParser()
    assert logging_conf.read(target_duckdb["logging_conf_file"])
    [setting] = [
        s for s in LOADERS["target-duckdb"]["settings"] if s["name"] == "logging_conf_file"
    ]
    assert setting["env"] == "LOGGING_CONF_FILE"
    assert logging_conf["logger_root"]["level"] == "WARNING"
    # target-postgres is built on the Singer SDK, which reads <PLUGIN>_LOGLEVEL.
    assert LOADERS["target-postgres"]["env"]["TARGET_POSTGRES_LOGLEVEL"] == "WARNING"


def test_the_settings_that_keep_the_loaders_exact_are_kept() -> None:
    duckdb = LOADERS["target-duckdb"]
    # 0.8.0 with a newer DuckDB, or without metadata columns, drops a row per batch.
    assert duckdb["pip_url"].split() == ["target-duckdb==0.8.0", "duckdb==1.2.2"]
    assert duckdb["config"]["add_metadata_columns"] is True
    # Without a UTC session, PostgreSQL shifts `created` by its own time zone.
    assert LOADERS["target-postgres"]["env"]["PGTZ"] == "UTC"

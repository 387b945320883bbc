"""meltano.yml holds what this project sets; the loaders' definitions are locked in plugins/."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
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


#: Each loader's logging config: the setting that names it (and the variable it becomes), and how
#: the loader reads it. Meltano writes configs of its own at its level (INFO); these replace them.
LOGGING_CONFIGS = {
    "target-duckdb": (
        "logging_conf_file",
        "LOGGING_CONF_FILE",
        "import logging.config, sys; logging.config.fileConfig(sys.argv[1])",
    ),
    "target-postgres": (
        "singer_sdk_log_config",
        "SINGER_SDK_LOG_CONFIG",
        "import logging.config, sys, yaml;"
        " logging.config.dictConfig(yaml.safe_load(open(sys.argv[1])))",
    ),
}


@pytest.mark.parametrize("loader", sorted(LOGGING_CONFIGS))
def test_each_loader_logs_only_warnings_and_errors(loader: str, tmp_path: Path) -> None:
    setting, variable, configure = LOGGING_CONFIGS[loader]
    [declared] = [s for s in LOADERS[loader]["settings"] if s["name"] == setting]
    assert declared["env"] == variable
    env = meltano_env(tmp_path, MELTANO_HUB_URL=UNREACHABLE_HUB)
    path = json.loads(run_meltano(env, "config", "print", loader).stdout)[setting]
    # The config as the loader's own Python reads it: an INFO line is dropped, a WARNING kept.
    python = ROOT / ".meltano" / "loaders" / loader / "venv" / "bin" / "python"
    logged = subprocess.run(
        [
            str(python),
            "-c",
            # A logger set to INFO in code, as the SDK sets its METRIC logger: still dropped.
            f"{configure}; import logging; x = logging.getLogger('x'); x.setLevel(logging.INFO);"
            " x.info('an INFO line'); x.warning('a WARNING line')",
            path,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stderr
    assert "a WARNING line" in logged
    assert "an INFO line" not in logged

"""Running the repository's Meltano project from the tests, isolated from any other run.

Each test gets its own Meltano system database (state) and its own `.meltano` directory, holding
links to the plugins that scripts/setup installed: Meltano writes each run's config, catalog and
state files into `.meltano/run/<plugin>/`, so runs that share it (a colleague's, another test's)
overwrite each other's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Variables of the environment that would steer a run away from what a test sets up.
FOREIGN = ("TAP_SNYK_", "TARGET_", "DBT_", "PG")


def meltano() -> str:
    """The meltano beside this Python (scripts/setup installs both into .venv)."""
    found = shutil.which("meltano", path=str(Path(sys.executable).parent)) or shutil.which(
        "meltano"
    )
    if not found:
        pytest.fail("meltano is not installed: run scripts/setup (or scripts/test) first")
    return found


def meltano_env(work: Path, **variables: str) -> dict[str, str]:
    """An environment for Meltano runs whose state and run files live under `work`."""
    system_dir = work / "meltano-system"
    system_dir.mkdir(exist_ok=True)
    for kind in ("extractors", "loaders", "utilities"):
        installed, link = ROOT / ".meltano" / kind, system_dir / kind
        if installed.is_dir() and not link.exists():
            link.symlink_to(installed)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)},
        "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
        "MELTANO_SYS_DIR_ROOT": str(system_dir),
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        **variables,
    }


def run_meltano(
    env: dict[str, str], *args: str, check: bool = True, project: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`meltano ARGS` in a project (the repository's), failing the test if it fails."""
    result = subprocess.run(
        [meltano(), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def visible(events: list[dict]) -> list[dict]:
    """The events a search returns when it names no `events`: Snyk hides api.access."""
    return [e for e in events if e["event"] != "api.access"]


@dataclass(frozen=True)
class DemoSync:
    """What `scripts/sync --demo` printed, and the DuckDB file it loaded and built."""

    stdout: str
    stderr: str
    database: Path


def run_demo_sync(work: Path) -> DemoSync:
    """`scripts/sync --demo` as a newcomer runs it, its state, database and dbt files in `work`."""
    database = work / "fake.duckdb"
    env = meltano_env(
        work,
        TARGET_DUCKDB_PATH=str(database),
        DBT_DUCKDB_PATH=str(database),
        DBT_TARGET_PATH=str(work / "dbt-target"),
        DBT_LOG_PATH=str(work / "dbt-logs"),
    )
    result = subprocess.run(
        [str(ROOT / "scripts" / "sync"), "--demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return DemoSync(result.stdout, result.stderr, database)

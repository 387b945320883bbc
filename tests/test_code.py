"""The code stays as STYLE.md asks: ruff-clean, formatted, and mypy-clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


#: The Python the linters check: the tap, the fake Snyk API, the tests, the scripts in Python.
LINTED = [
    *("tap_snyk", "fake_snyk", "tests"),
    *("scripts/plugin-definition", "scripts/summary", "scripts/doc-tables", "scripts/new-alerts"),
    "scripts/pace-after-429",
]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", *LINTED],
        ["ruff", "format", "--check", *LINTED],
        ["mypy", "tap_snyk", "fake_snyk"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_linters_pass(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

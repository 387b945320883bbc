"""The package as others install it: `python -m tap_snyk`, its version, licence and classifiers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tap_snyk", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_python_m_tap_snyk_prints_about_with_the_version_of_pyproject() -> None:
    result = run_module("--about", "--format=json")
    assert result.returncode == 0, result.stderr
    about = json.loads(result.stdout)
    assert about["name"] == "tap-snyk"
    assert about["version"] == PROJECT["version"]


def test_version_option_reads_the_version_of_pyproject() -> None:
    result = run_module("--version")
    assert result.returncode == 0, result.stderr
    assert f"tap-snyk v{PROJECT['version']}," in result.stdout


def test_help_describes_test_as_the_connection_check() -> None:
    result = run_module("--help")
    assert result.returncode == 0, result.stderr
    test_help = " ".join(result.stdout.split("--test", 1)[1].split("--catalog")[0].split())
    assert "sync a single record" not in test_help  # the SDK's words, untrue here
    assert "OK/WARN/FAIL line" in test_help


def test_license_file_is_the_apache_2_license_the_package_declares() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text


def test_classifiers_claim_the_python_the_tests_run_on() -> None:
    running = f"Programming Language :: Python :: {sys.version_info[0]}.{sys.version_info[1]}"
    assert running in PROJECT["classifiers"]


def test_changelog_has_a_section_for_the_version_of_pyproject() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert f"## [{PROJECT['version']}]" in changelog

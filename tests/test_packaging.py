"""The package as others install it: `python -m tap_snyk`, its version, licence and classifiers,
and the fake Snyk API it ships (`fake-snyk`), which must run outside this repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
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


def test_fake_snyk_from_the_wheel_serves_a_command_run_in_an_empty_folder(tmp_path: Path) -> None:
    wheels, venv, empty = tmp_path / "wheels", tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", wheels, ROOT], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    python = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", python, "install", "--no-deps", *wheels.glob("*.whl")],
        check=True,
        timeout=120,
    )
    # PyJWT, the fake's one dependency, comes from the tests' venv (no network needed); a path in
    # a .pth file, unlike a site directory, does not run that venv's own .pth files, which would
    # put this repository on sys.path.
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "tests-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = (
        "import os, urllib.request as u, fake_snyk; "
        "r = u.urlopen(u.Request(os.environ['TAP_SNYK_API_URL'] + '/rest/self?version=2024-10-15', "
        "headers={'Authorization': 'token ' + os.environ['TAP_SNYK_API_TOKEN']})); "
        "print(r.status, fake_snyk.__file__)"
    )
    done = subprocess.run(
        [venv / "bin" / "fake-snyk", "--port", "0", "--", python, "-c", probe],
        cwd=empty,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", str(site / "fake_snyk" / "__init__.py")]
    assert "TAP_SNYK_API_URL=http://127.0.0.1:" in done.stderr

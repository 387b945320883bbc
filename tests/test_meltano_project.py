"""docs/meltano-project.md works as written, with Meltano Hub unreachable.

Its commands run in order in a new folder, as a newcomer would type them: the ```bash blocks in
bash, the ```yaml blocks merged into the project's meltano.yml (as one pastes them), with
`/path/to/tap-snyk` standing for this checkout and `<org UUID>` for an org of the fake Snyk API.
The one change: TAP_SNYK_API_URL points the tap at the fake API. Then docs/loaders.md's queries
and docs/schedule.md's commands run in the project it made.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from fake_snyk import FakeSnyk, make_events, make_members, make_projects, uuid_for
from tests.conftest import ORG_A, TOKEN
from tests.meltano_project import FOREIGN, ROOT, meltano, visible

DOCS = ROOT / "docs"
#: Nothing listens there: any request to the Hub fails at once, as it does with no network.
UNREACHABLE_HUB = "http://127.0.0.1:9"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


def section(page: Path, heading: str) -> str:
    """The text under `## heading` of a page, up to the next `## `."""
    return page.read_text().split(f"\n## {heading}\n")[1].split("\n## ")[0]


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of a text, in order: (language, content)."""
    return [(match[1], match[2]) for match in FENCE.finditer(text)]


def merge(project_file: Path, snippet: str) -> None:
    """Paste a YAML snippet of plugins into meltano.yml: a plugin of the same name is updated."""
    project = yaml.safe_load(project_file.read_text())
    for kind, plugins in yaml.safe_load(snippet)["plugins"].items():
        declared = project.setdefault("plugins", {}).setdefault(kind, [])
        for plugin in plugins:
            same = [p for p in declared if p["name"] == plugin["name"]]
            if same:
                same[0].update(plugin)
            else:
                declared.append(plugin)
    project_file.write_text(yaml.safe_dump(project, sort_keys=False))


@dataclass
class Walkthrough:
    """A folder where a page's commands ran, and what each bash block printed."""

    folder: Path
    env: dict[str, str]
    printed: list[str]

    @property
    def cwd(self) -> Path:
        """Where the last block left off (after its `cd`)."""
        return Path((self.folder / ".cwd").read_text().strip())

    def follow(self, text: str, replacements: dict[str, str]) -> None:
        """Run a page's blocks: bash in bash, YAML merged into meltano.yml."""
        for language, content in blocks(text):
            for placeholder, value in replacements.items():
                content = content.replace(placeholder, value)
            if language == "yaml":
                merge(self.cwd / "meltano.yml", content)
            elif language == "bash":
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", f'{content}\npwd > "{self.folder}/.cwd"'],
                    cwd=self.cwd,
                    env=self.env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
                assert result.returncode == 0, (
                    content + result.stdout[-3000:] + result.stderr[-5000:]
                )
                self.printed.append(result.stdout + result.stderr)


def walkthrough_env(api: FakeSnyk) -> dict[str, str]:
    """A newcomer's shell: meltano on the PATH, the token in SNYK_TOKEN, no Meltano Hub."""
    bin_dir = str(Path(meltano()).parent)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith((*FOREIGN, "MELTANO_"))},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "MELTANO_HUB_URL": UNREACHABLE_HUB,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "SNYK_TOKEN": TOKEN,
        "TAP_SNYK_API_URL": api.url,
    }


@pytest.fixture(scope="module")
def snyk_with_data() -> Any:
    with FakeSnyk() as api:
        events = make_events(120, start=NOW - timedelta(days=2), org_id=ORG_A, seed=5)
        api.add_org_events(ORG_A, events)
        api.add_org_members(ORG_A, make_members(ORG_A))
        api.add_org_projects(ORG_A, make_projects(ORG_A))
        yield api, events


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, snyk_with_data: tuple[FakeSnyk, list[dict]]
) -> Walkthrough:
    """docs/meltano-project.md's walkthrough, done."""
    api, _ = snyk_with_data
    folder = tmp_path_factory.mktemp("newcomer")
    (folder / ".cwd").write_text(str(folder))
    walkthrough = Walkthrough(folder, walkthrough_env(api), [])
    walkthrough.follow(
        section(DOCS / "meltano-project.md", "Use tap-snyk in your Meltano project"),
        {"/path/to/tap-snyk": str(ROOT), "<org UUID>": ORG_A},
    )
    return walkthrough


def test_the_walkthrough_adds_tap_snyk_from_its_definition_and_this_checkout(
    project: Walkthrough,
) -> None:
    declared = yaml.safe_load((project.cwd / "meltano.yml").read_text())["plugins"]
    [tap] = declared["extractors"]
    assert (tap["name"], tap["pip_url"], tap["namespace"]) == ("tap-snyk", str(ROOT), "tap_snyk")
    installed = project.cwd / ".meltano" / "extractors" / "tap-snyk" / "venv" / "bin" / "tap-snyk"
    assert installed.exists()


def test_the_token_goes_to_dot_env_not_meltano_yml(project: Walkthrough) -> None:
    assert TOKEN not in (project.cwd / "meltano.yml").read_text()
    assert f"TAP_SNYK_API_TOKEN='{TOKEN}'" in (project.cwd / ".env").read_text()


def test_meltano_select_lists_every_stream(project: Walkthrough) -> None:
    printed = "\n".join(project.printed)
    for stream in ("org_audit_logs", "group_audit_logs", "organizations", "projects"):
        assert f"{stream}.created" in printed or f"{stream}.id" in printed, stream


def test_the_connection_check_passes(project: Walkthrough) -> None:
    printed = "\n".join(project.printed)
    assert f"OK   organization {ORG_A}: org_audit_logs readable" in printed
    assert "Connection check passed" in printed
    assert TOKEN not in printed


def test_the_run_loads_every_event_into_schema_snyk(
    project: Walkthrough, snyk_with_data: tuple[FakeSnyk, list[dict]]
) -> None:
    _, events = snyk_with_data
    with duckdb.connect(str(project.cwd / "output" / "tap_snyk.duckdb"), read_only=True) as db:
        [(loaded,)] = db.execute("select count(*) from snyk.org_audit_logs").fetchall()
    assert loaded == len(visible(events))


def test_the_look_command_prints_the_events_by_type(project: Walkthrough) -> None:
    assert "org.user.add" in project.printed[-1]


def test_the_fake_api_starts_from_the_projects_tap_and_serves_the_check(
    project: Walkthrough,
) -> None:
    project.follow(section(DOCS / "meltano-project.md", "Try it without a Snyk account"), {})
    # The demo's org, not the walkthrough's: fake-snyk's settings reached the tap.
    assert f"OK   organization {uuid_for('demo-org-0')}" in project.printed[-1]
    assert "Connection check passed" in project.printed[-1]


def test_the_queries_of_the_loaders_page_run_on_what_the_walkthrough_loaded(
    project: Walkthrough,
) -> None:
    queries = [c for lang, c in blocks(section(DOCS / "loaders.md", "Querying the result"))]
    statements = [q.strip() for block in queries for q in block.split(";") if q.strip()]
    assert len(statements) >= 3
    with duckdb.connect(str(project.cwd / "output" / "tap_snyk.duckdb"), read_only=True) as db:
        for statement in statements:
            assert db.execute(statement).fetchall(), statement


def test_the_schedule_pages_commands_run_in_the_project(project: Walkthrough) -> None:
    schedule = DOCS / "schedule.md"
    project.follow(schedule.read_text().split("\n## ")[0], {})
    assert "snyk-audit-every-15-minutes" in (project.cwd / "meltano.yml").read_text()


def test_the_loaders_page_adds_both_loaders_with_the_hub_unreachable(project: Walkthrough) -> None:
    loaders = DOCS / "loaders.md"
    project.follow(
        loaders.read_text().split("\n**The schema.**")[0], {"/path/to/tap-snyk": str(ROOT)}
    )
    for loader in ("target-duckdb", "target-postgres"):
        printed = subprocess.run(
            [meltano(), "config", "print", loader],
            cwd=project.cwd,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        config = json.loads(printed)
        assert config["default_target_schema"] == "snyk", loader
    # A default only the lock file holds: the definition came from it, not from the Hub.
    assert config["port"] == 5432


def test_the_loaders_page_and_the_walkthrough_declare_target_duckdb_alike() -> None:
    def target_duckdb(page: Path) -> dict[str, Any]:
        [snippet] = [c for lang, c in blocks(page.read_text()) if lang == "yaml" and "loaders" in c]
        [loader] = [
            p for p in yaml.safe_load(snippet)["plugins"]["loaders"] if p["name"] == "target-duckdb"
        ]
        return loader

    assert target_duckdb(DOCS / "loaders.md") == target_duckdb(DOCS / "meltano-project.md")


@pytest.mark.skipif(not shutil.which("jq"), reason="the page's commands use jq")
def test_running_the_tap_directly_works_as_written(
    tmp_path: Path, snyk_with_data: tuple[FakeSnyk, list[dict]]
) -> None:
    api, events = snyk_with_data
    text = section(DOCS / "meltano-project.md", "Run the tap directly")
    [(_, config_text), (_, commands)] = [
        (lang, c) for lang, c in blocks(text) if lang in ("json", "bash")
    ]
    config = json.loads(config_text.replace('"…"', json.dumps(TOKEN)).replace("5b0c6a2e-…", ORG_A))
    config["group_ids"] = []  # the fake API has no group here
    config["api_url"] = api.url
    (tmp_path / "config.json").write_text(json.dumps(config))
    walkthrough = Walkthrough(tmp_path, walkthrough_env(api), [])
    (tmp_path / ".cwd").write_text(str(tmp_path))
    walkthrough.follow(f"```bash\n{commands}```\n", {})
    records = [
        json.loads(line)
        for line in (tmp_path / "messages.jsonl").read_text().splitlines()
        if '"type": "RECORD"' in line or '"type":"RECORD"' in line
    ]
    assert len([r for r in records if r["stream"] == "org_audit_logs"]) == len(visible(events))
    assert json.loads((tmp_path / "state.json").read_text())["bookmarks"]
    assert (tmp_path / "more.jsonl").read_text()


def test_meltano_add_with_a_variant_asks_the_hub_even_with_the_lock_file_there(
    tmp_path: Path, snyk_with_data: tuple[FakeSnyk, list[dict]]
) -> None:
    # Why the pages copy the lock and declare the loader in YAML rather than `meltano add`.
    api, _ = snyk_with_data
    (tmp_path / "meltano.yml").write_text("project_id: 6a7f1f0e-9f3c-4f53-8d7c-1f2e3d4c5b6a\n")
    (tmp_path / "plugins" / "loaders").mkdir(parents=True)
    shutil.copy(
        ROOT / "plugins" / "loaders" / "target-duckdb--jwills.lock",
        tmp_path / "plugins" / "loaders",
    )
    result = subprocess.run(
        [meltano(), "add", "--plugin-type", "loader", "target-duckdb", "--variant", "jwills"],
        cwd=tmp_path,
        env=walkthrough_env(api),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert f"Could not connect to Meltano Hub at {UNREACHABLE_HUB}" in result.stderr

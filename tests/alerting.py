"""The pipeline that the alert and OCSF tests share, built once per session: the fake Snyk API,
`meltano run tap-snyk target-duckdb dbt-duckdb:build` as scripts/sync runs it, and the DuckDB file.

What the fake API holds: the demo's data (`seed_demo_data`), api.access events, and the events of
the unit tests of Panther's rules (transform/models/alerts/_snyk__alert_rules.yml, tests named
panther_*), each replayed as the REST API would send it, in Panther's own orgs and group.

What runs: a first load of api.access events alone (the tap reads them only when asked), then
three builds: the first as scripts/sync runs it, with everything; a second with nothing new and
a third after two more events, each a load and a build of the alert and OCSF models alone.
After each build, scripts/new-alerts says what is new.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from fake_snyk import DEFAULT_TOKEN, FakeSnyk, format_created, seed_demo_data, uuid_for
from tests.meltano_project import ROOT, meltano_env, run_meltano

NOW = datetime.now(timezone.utc).replace(microsecond=0)
RULE_TESTS = ROOT / "transform" / "models" / "alerts" / "_snyk__alert_rules.yml"
RULES = ROOT / "transform" / "seeds" / "snyk_alert_rules.csv"
STAGED_EVENTS = "ref('stg_snyk__audit_events')"
# The two events the third build finds: one HIGH alert (Snyk.System.SSO), one MEDIUM
# (Snyk.Org.Settings), by someone whom no scenario removes.
NEWCOMER = uuid_for("alerting/newcomer")
# The builds after the first: the alert and OCSF models and what they read, without the tests.
ALERTS_ONLY = (
    *("--select", "+snyk_alert_history", "+snyk_ocsf_events"),
    *("--exclude-resource-type", "unit_test", "test"),
)
API_CLIENT = "alerting-test/1.0"  # the user agent of the api.access events added to the demo's


@dataclass(frozen=True)
class ReplayedEvent:
    """An event of a unit test of Panther's rules, as the fake API serves it."""

    test: str
    case: str  # the event_id the unit test gives it
    item: dict[str, Any]
    expected: frozenset[tuple[str, str]]  # (rule_id, severity) of Panther's rules


@dataclass
class Alerting:
    """What the shared pipeline left: the DuckDB file and what was seen along the way."""

    database: Path
    replayed: list[ReplayedEvent]
    demo_orgs: list[str]
    demo_groups: list[str]
    reports: list[str] = field(default_factory=list)  # scripts/new-alerts after each build
    alert_ids: list[dict[tuple[str, str], str]] = field(default_factory=list)  # after each build

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows of a statement, on a read-only connection of its own."""
        with duckdb.connect(str(self.database), read_only=True) as db:
            return db.execute(sql, params or []).fetchall()


def panther_cases() -> list[ReplayedEvent]:
    """The events of the unit tests of Panther's rules, with the alerts of Panther's rules expected.

    Each gets a time of its own, a second apart, within the past day: the tap reads the past 90
    days, and a distinct time tells the events apart in the loaded tables.
    """
    tests = yaml.safe_load(RULE_TESTS.read_text())["unit_tests"]
    cases = []
    moment = NOW - timedelta(hours=20)
    for test in tests:
        if not test["name"].startswith("panther_"):
            continue
        [staged] = [given for given in test["given"] if given["input"] == STAGED_EVENTS]
        expected: dict[str, set[tuple[str, str]]] = {}
        for row in test["expect"]["rows"]:
            if row["rule_id"].startswith("Snyk."):
                expected.setdefault(row["event_id"], set()).add((row["rule_id"], row["severity"]))
        for row in staged["rows"]:
            moment += timedelta(seconds=1)
            item: dict[str, Any] = {"created": format_created(moment), "event": row["event"]}
            for key in ("user_id", "org_id", "group_id", "project_id"):
                if row.get(key) is not None:
                    item[key] = str(row[key])
            if row.get("content") is not None:
                item["content"] = json.loads(row["content"])
            cases.append(
                ReplayedEvent(
                    test["name"],
                    row["event_id"],
                    dict(sorted(item.items())),
                    frozenset(expected.get(row["event_id"], ())),
                )
            )
    return cases


def new_alerts_report(database: Path) -> str:
    """What scripts/new-alerts says about the DuckDB file."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "new-alerts"), str(database)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def api_access_events(orgs: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Requests to the API by a member, by org: a read, a refused deletion, an update."""
    requests = [
        (orgs[0], "GET", 200, "203.0.113.7"),
        (orgs[0], "DELETE", 403, "2001:db8::7"),
        (orgs[-1], "PATCH", 200, None),  # no address logged
    ]
    events: dict[str, list[dict[str, Any]]] = {}
    for k, (org, method, status, ip) in enumerate(requests):
        content = {"method": method, "url": f"/rest/orgs/{org}/projects?version=2024-10-15"}
        content |= {"userAgent": API_CLIENT, "status": status, "ip": ip}
        created = format_created(NOW - timedelta(hours=2, minutes=k))
        events.setdefault(org, []).append(
            {"content": content, "created": created, "event": "api.access", "org_id": org,
             "user_id": uuid_for("user-1")}
        )  # fmt: skip
    return events


def newcomer_event(event: str, scope: str, scope_id: str, minutes_ago: int) -> dict[str, Any]:
    """An event by someone no scenario removes, a few minutes ago."""
    return {
        "content": {},
        "created": format_created(NOW - timedelta(minutes=minutes_ago)),
        "event": event,
        f"{scope}_id": scope_id,
        "user_id": NEWCOMER,
    }


@pytest.fixture(scope="session")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Alerting:
    work = tmp_path_factory.mktemp("alerting")
    database = work / "tap_snyk.duckdb"
    env = meltano_env(
        work,
        TARGET_DUCKDB_PATH=str(database),
        DBT_DUCKDB_PATH=str(database),
        DBT_TARGET_PATH=str(work / "target"),
        DBT_LOG_PATH=str(work / "logs"),
    )
    replayed = panther_cases()
    with FakeSnyk() as api:
        demo_orgs, demo_groups = seed_demo_data(api, orgs=2, groups=1, events=60, now=NOW)
        for case in replayed:
            if "org_id" in case.item:
                api.add_org_events(case.item["org_id"], [case.item])
            else:
                api.add_group_events(case.item["group_id"], [case.item])
        for org, events in api_access_events(demo_orgs).items():
            api.add_org_events(org, events)
        orgs = {*demo_orgs, *(c.item["org_id"] for c in replayed if "org_id" in c.item)}
        groups = {*demo_groups, *(c.item["group_id"] for c in replayed if "org_id" not in c.item)}
        env |= {
            "TAP_SNYK_API_URL": api.url,
            "TAP_SNYK_API_TOKEN": DEFAULT_TOKEN,
            "TAP_SNYK_ORG_IDS": json.dumps(sorted(orgs)),
            "TAP_SNYK_GROUP_IDS": json.dumps(sorted(groups)),
        }
        # The tap reads api.access events only when `events` names them.
        run_meltano(env | {"TAP_SNYK_EVENTS": '["api.access"]'}, "run", "tap-snyk", "target-duckdb")
        alerting = Alerting(database, replayed, demo_orgs, demo_groups)

        def build(*options: str) -> None:
            if options:
                run_meltano(env, "run", *options, "tap-snyk", "target-duckdb", "dbt-duckdb:build")
            else:  # quicker: the same load, then only the alert and OCSF models built again
                run_meltano(env, "run", "tap-snyk", "target-duckdb")
                run_meltano(env, "invoke", "dbt-duckdb", "build", *ALERTS_ONLY)
            alerting.reports.append(new_alerts_report(database))
            alerts = alerting.query(
                "select rule_id, event_id, alert_id from snyk_marts.snyk_alerts"
            )
            alerting.alert_ids.append({(rule, event): alert for rule, event, alert in alerts})

        # That load left bookmarks past most events: the first build, scripts/sync's job, reads
        # everything again.
        build("--full-refresh")
        build()
        api.add_org_events(
            demo_orgs[0], [newcomer_event("org.webhook.add", "org", demo_orgs[0], 5)]
        )
        api.add_group_events(
            demo_groups[0], [newcomer_event("group.sso.edit", "group", demo_groups[0], 4)]
        )
        build()
    return alerting

"""The detection rules end to end: events the fake Snyk API serves, the tap, target-duckdb and
`dbt build` (the `alerting` pipeline, built once), and the alerts in the DuckDB file.

The rules' logic is unit-tested in dbt (transform/models/alerts/_snyk__alert_rules.yml); here the
events of Panther's test cases go the whole way, as the REST API sends them, and the alerts and
scripts/new-alerts are checked across builds.
"""

from __future__ import annotations

import csv
import hashlib
import re
import runpy

import pytest
import yaml

from tests.alerting import RULE_TESTS, RULES, STAGED_EVENTS, Alerting, panther_cases
from tests.meltano_project import ROOT

PANTHER_TESTS = sorted({case.test for case in panther_cases()})


def rules(origin: str | None = None) -> dict[str, dict[str, str]]:
    """The rules of the seed, by id (those of one origin)."""
    with RULES.open(newline="") as seed:
        return {r["rule_id"]: r for r in csv.DictReader(seed) if origin in (None, r["origin"])}


def panther_alerts_by_replayed_event(alerting: Alerting) -> dict[str, set[tuple[str, str]]]:
    """The alerts of Panther's rules on each replayed event (by its time), from the last build."""
    times = [case.item["created"] for case in alerting.replayed]
    rows = alerting.query(
        "select strftime(e.created at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ'), a.rule_id,"
        " a.severity from snyk_staging.stg_snyk__audit_events as e"
        " left join snyk_marts.snyk_alerts as a"
        "  on a.event_id = e.event_id and a.rule_id like 'Snyk.%'"
        " where strftime(e.created at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ') in"
        f" ({', '.join('?' for _ in times)})",
        times,
    )
    alerts: dict[str, set[tuple[str, str]]] = {}
    for created, rule_id, severity in rows:
        alerts.setdefault(created, set())
        if rule_id is not None:
            alerts[created].add((rule_id, severity))
    return alerts


@pytest.mark.parametrize("test", PANTHER_TESTS)
def test_panther_rules_fire_on_the_events_their_tests_say_with_their_severity(
    alerting: Alerting, test: str
) -> None:
    alerts = panther_alerts_by_replayed_event(alerting)
    cases = [case for case in alerting.replayed if case.test == test]
    assert cases
    for case in cases:
        assert case.item["created"] in alerts, f"{case.case} was not loaded"
        assert alerts[case.item["created"]] == set(case.expected), case.case


def test_every_panther_rule_has_events_that_fire_it_and_events_that_must_not(
    alerting: Alerting,
) -> None:
    fired = {rule for case in alerting.replayed for rule, _ in case.expected}
    assert fired == set(rules("panther-analysis"))
    for rule in fired:
        assert any(rule not in {r for r, _ in case.expected} for case in alerting.replayed)


def test_alert_ids_are_the_same_in_every_build(alerting: Alerting) -> None:
    first, second, third = alerting.alert_ids
    assert first
    assert second == first
    assert {key: third[key] for key in first} == first
    for (rule_id, event_id), alert_id in first.items():
        assert alert_id == hashlib.md5(f"{rule_id}:{event_id}".encode()).hexdigest()


def test_the_first_build_reports_every_alert_as_new(alerting: Alerting) -> None:
    total = len(alerting.alert_ids[0])
    first_line = alerting.reports[0].splitlines()[0]
    assert first_line.startswith(f"Alerts: {total} (")
    assert first_line.endswith("all new: the first build that keeps a history.")


def test_a_build_with_no_new_events_reports_no_new_alert(alerting: Alerting) -> None:
    total = len(alerting.alert_ids[1])
    assert alerting.reports[1].splitlines()[0] == (
        f"Alerts: none new since the previous run ({total} in all)."
    )


def test_a_build_reports_the_new_alerts_by_severity_and_how_to_list_them(
    alerting: Alerting,
) -> None:
    total = len(alerting.alert_ids[2])
    assert total == len(alerting.alert_ids[1]) + 2
    report = alerting.reports[2].splitlines()
    assert report[0] == f"Alerts: 2 new since the previous run (1 HIGH, 1 MEDIUM); {total} in all."
    query = "\n".join(line.strip() for line in report[2:])
    listed = alerting.query(query.replace("select a.created,", "select a.event,"))
    assert sorted(row[0] for row in listed) == ["group.sso.edit", "org.webhook.add"]


def test_alerts_carry_the_rule_and_the_names_of_who_and_where(alerting: Alerting) -> None:
    [(alerts, titled, runbooks, named_actors, named_orgs, named_groups)] = alerting.query(
        "select count(*), count(title), count(runbook), count(actor_name), count(org_name),"
        " count(group_name) from snyk_marts.snyk_alerts"
        f" where org_id in ({', '.join(repr(o) for o in alerting.demo_orgs)})"
    )
    assert alerts > 0
    assert titled == runbooks == alerts
    assert named_actors > 0
    assert named_orgs == named_groups == alerts


def test_the_readme_lists_every_rule_with_the_events_it_reads() -> None:
    table = {}
    for line in (ROOT / "transform" / "README.md").read_text().splitlines():
        match = re.match(r"\| `((?:Snyk|TapSnyk)\.[\w.]+)` \|[^|]*\| (.*) \|$", line)
        if match:
            table[match[1]] = re.findall(r"`([^`]+)`", match[2])
    assert table == {rule_id: rule["events"].split() for rule_id, rule in rules().items()}


def test_the_readme_shows_the_query_that_lists_the_new_alerts() -> None:
    query = runpy.run_path(str(ROOT / "scripts" / "new-alerts"))["new_alerts_query"]("snyk_marts")
    assert query in (ROOT / "transform" / "README.md").read_text()


@pytest.mark.parametrize(
    ("model", "schema"),
    [("snyk_alerts", "_snyk__alerts.yml"), ("snyk_alert_history", "_snyk__alerts.yml")],
)
def test_every_column_of_the_alert_models_is_documented(
    alerting: Alerting, model: str, schema: str
) -> None:
    documented = yaml.safe_load((ROOT / "transform/models/alerts" / schema).read_text())
    [entry] = [m for m in documented["models"] if m["name"] == model]
    described = {c["name"]: c.get("description") for c in entry["columns"]}
    built = alerting.query(
        "select column_name from information_schema.columns"
        f" where table_schema = 'snyk_marts' and table_name = '{model}' order by ordinal_position"
    )
    assert sorted(described) == sorted(name for (name,) in built)
    assert all(described.values())


def test_the_demo_raises_alerts_of_every_rule(alerting: Alerting) -> None:
    fired = alerting.query(
        "select distinct rule_id from snyk_marts.snyk_alerts"
        f" where group_id in ({', '.join(repr(g) for g in alerting.demo_groups)})"
    )
    assert {rule_id for (rule_id,) in fired} == set(rules())


def test_every_rule_has_unit_tests_with_events_that_fire_it_and_near_misses() -> None:
    unit_tests = yaml.safe_load(RULE_TESTS.read_text())["unit_tests"]
    covered = set()
    for test in unit_tests:
        [staged] = [g for g in test["given"] if g["input"] == STAGED_EVENTS]
        events = {row["event_id"] for row in staged["rows"]}
        for rule_id in {row["rule_id"] for row in test["expect"]["rows"]}:
            fired = {row["event_id"] for row in test["expect"]["rows"] if row["rule_id"] == rule_id}
            if events - fired:  # some event of the test must not fire the rule
                covered.add(rule_id)
    assert covered == set(rules())

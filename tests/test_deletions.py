"""Deletions in the lookups: ACTIVATE_VERSION after a complete read, held back after a partial one.

The lookups are read in full each run; their records carry the run's version, and an
ACTIVATE_VERSION of that version after the stream's last record lets a loader mark the rows that
Snyk no longer lists. The message is per stream, so a run that skipped a partition sends none.
These tests also pin the SDK behaviour the tap relies on (singer-sdk 0.54): it asks for the
message through `Stream._write_activate_version_message` as a full-table sync starts, and it
calls `finalize_state_progress_markers` once the stream is read.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any

import pytest

from fake_snyk import FakeSnyk, Fault, uuid_for
from tap_snyk.tap import TapSnyk
from tests.conftest import GROUP, ORG_A, ORG_B, TapRun, run_tap, tap_config
from tests.test_lookups import LOOKUPS, seed


def activations(run: TapRun, stream: str) -> list[int]:
    """The versions of the stream's ACTIVATE_VERSION messages, in order."""
    return [
        m["version"]
        for m in run.messages
        if m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream
    ]


def positions(run: TapRun, stream: str, kind: str) -> list[int]:
    return [
        i for i, m in enumerate(run.messages) if m["type"] == kind and m.get("stream") == stream
    ]


def read_in_full(snyk_api: FakeSnyk, **settings: Any) -> TapRun:
    seed(snyk_api)
    return run_tap(tap_config(snyk_api, org_ids=[ORG_A, ORG_B], group_ids=[GROUP], **settings))


@pytest.mark.parametrize("stream", LOOKUPS)
def test_a_lookup_read_in_full_ends_with_one_activate_version(
    snyk_api: FakeSnyk, stream: str
) -> None:
    run = read_in_full(snyk_api)
    assert run.exit_code == 0
    records = positions(run, stream, "RECORD")
    [activation] = positions(run, stream, "ACTIVATE_VERSION")
    assert records
    assert max(records) < activation  # after every record: none is marked removed meanwhile


@pytest.mark.parametrize("stream", LOOKUPS)
def test_the_records_carry_the_version_that_is_activated(snyk_api: FakeSnyk, stream: str) -> None:
    run = read_in_full(snyk_api)
    [version] = activations(run, stream)
    versions = {
        m["version"] for m in run.messages if m["type"] == "RECORD" and m["stream"] == stream
    }
    assert versions == {version}


def test_each_run_activates_a_newer_version(snyk_api: FakeSnyk) -> None:
    first = read_in_full(snyk_api)
    time.sleep(1.1)  # versions are the run's start in whole seconds
    second = run_tap(tap_config(snyk_api, org_ids=[ORG_A, ORG_B], group_ids=[GROUP]))
    assert activations(second, "projects")[0] > activations(first, "projects")[0]


def test_the_audit_logs_send_no_activate_version(snyk_api: FakeSnyk) -> None:
    run = read_in_full(snyk_api)
    for stream in ("org_audit_logs", "group_audit_logs"):
        assert activations(run, stream) == []
        assert all(m.get("version") is None for m in run.messages if m.get("stream") == stream)


def test_a_skipped_partition_holds_back_the_streams_deletions_with_a_warning(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    snyk_api.faults.append(Fault(status=403, path=f"/orgs/{ORG_B}/projects"))
    with caplog.at_level(logging.WARNING):
        run = read_in_full(snyk_api)
    assert run.exit_code == 0
    assert {p["org_id"] for p in run.records("projects")} - {ORG_B}  # the other orgs were read
    assert activations(run, "projects") == []
    held_back = [r.getMessage() for r in caplog.records if "deletions held back" in r.getMessage()]
    assert held_back == [
        f"projects: deletions held back this run, because organization {ORG_B} was skipped: "
        "rows that Snyk no longer lists stay current until a run reads every org and group of "
        "the stream."
    ]
    # The other lookups were read in full: their deletions go ahead.
    for stream in ("organizations", "org_memberships", "group_memberships"):
        assert len(activations(run, stream)) == 1, stream


def test_a_lookup_that_fails_ends_the_run_without_activating_anything_after_it(
    snyk_api: FakeSnyk,
) -> None:
    snyk_api.faults.append(Fault(status=400, path=f"/orgs/{ORG_B}/memberships"))
    run = read_in_full(snyk_api)
    assert run.exit_code == 1
    assert activations(run, "org_memberships") == []
    assert activations(run, "projects") == []


def test_a_deselected_lookup_sends_no_activate_version(snyk_api: FakeSnyk) -> None:
    seed(snyk_api)
    config = tap_config(snyk_api, group_ids=[GROUP])
    catalog = copy.deepcopy(TapSnyk(config=config, parse_env_config=False).catalog_dict)
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "projects":
            for metadata in entry["metadata"]:
                if metadata["breadcrumb"] == []:
                    metadata["metadata"]["selected"] = False
    run = run_tap(config, catalog=catalog)
    assert activations(run, "projects") == []
    assert len(activations(run, "org_memberships")) == 1


def test_a_refused_org_listing_holds_back_the_organizations_deletions(
    snyk_api: FakeSnyk, caplog: pytest.LogCaptureFixture
) -> None:
    snyk_api.faults.append(Fault(status=403, path=f"/groups/{GROUP}/orgs"))
    with caplog.at_level(logging.WARNING):
        run = read_in_full(snyk_api)
    assert run.exit_code == 0
    assert activations(run, "organizations") == []
    assert (
        "organizations: deletions held back this run, because the org listing of group "
        f"{GROUP} was skipped" in caplog.text
    )
    # Without discover_orgs the listing does not decide which orgs the other lookups read.
    for stream in ("org_memberships", "projects", "group_memberships"):
        assert len(activations(run, stream)) == 1, stream


def test_with_discover_orgs_a_refused_org_listing_holds_back_every_lookup_read_per_org(
    snyk_api: FakeSnyk,
) -> None:
    snyk_api.faults.append(Fault(status=403, path=f"/groups/{GROUP}/orgs"))
    run = read_in_full(snyk_api, discover_orgs=True)
    for stream in ("organizations", "org_memberships", "projects"):
        assert activations(run, stream) == [], stream
    assert len(activations(run, "group_memberships")) == 1


def test_an_item_not_loaded_holds_back_the_streams_deletions(snyk_api: FakeSnyk) -> None:
    # Its row, loaded by an earlier run, is not in this read: it must not be taken for removed.
    project = {"id": uuid_for("project-x"), "type": "project", "attributes": {"name": "x"}}
    page = {"data": ["junk", project], "jsonapi": {"version": "1.0"}}
    snyk_api.faults.append(Fault(body=json.dumps(page).encode(), path=f"/orgs/{ORG_B}/projects"))
    run = read_in_full(snyk_api)
    assert project["id"] in {p["id"] for p in run.records("projects")}
    assert activations(run, "projects") == []
    assert len(activations(run, "org_memberships")) == 1

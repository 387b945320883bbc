"""Each setting: its default, what it accepts, and the error it gives before any request."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tap_snyk.settings import SettingsError, SnykSettings
from tests.conftest import GROUP, ORG_A

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def settings(**config: object) -> SnykSettings:
    return SnykSettings.from_config({"api_token": "t", "org_ids": [ORG_A], **config}, now=NOW)


def errors(**config: object) -> str:
    with pytest.raises(SettingsError) as raised:
        SnykSettings.from_config({"api_token": "t", **config}, now=NOW)
    return "\n".join(raised.value.errors)


def test_defaults_follow_snyk_retention_and_recommended_version() -> None:
    s = settings()
    assert s.api_origin == "https://api.snyk.io"
    assert s.api_version == "2024-10-15"
    assert s.start_date == NOW - timedelta(days=90)
    assert s.end_date is None
    assert s.lookback == timedelta(hours=24)
    assert s.page_size == 100
    assert s.discover_orgs is False


@pytest.mark.parametrize(
    ("api_url", "origin"),
    [
        ("https://api.eu.snyk.io", "https://api.eu.snyk.io"),
        ("https://api.au.snyk.io/", "https://api.au.snyk.io"),
        ("https://api.us.snyk.io/rest", "https://api.us.snyk.io"),
        ("https://api.snyk.io/rest/", "https://api.snyk.io"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_api_url_is_reduced_to_its_origin(api_url: str, origin: str) -> None:
    assert settings(api_url=api_url).api_origin == origin


@pytest.mark.parametrize("api_url", ["api.snyk.io", "ftp://api.snyk.io", "https://api.snyk.io/v1"])
def test_api_url_that_is_not_an_api_origin_is_refused(api_url: str) -> None:
    assert "`api_url` must be the origin of a Snyk API" in errors(org_ids=[ORG_A], api_url=api_url)


def test_plain_http_is_refused_for_remote_hosts() -> None:
    assert "plain http" in errors(org_ids=[ORG_A], api_url="http://api.snyk.io")


def test_api_version_older_than_the_current_audit_contract_is_refused() -> None:
    message = errors(org_ids=[ORG_A], api_version="2023-09-11")
    assert "`api_version` 2023-09-11 is older than 2024-04-29" in message


def test_api_version_on_or_after_2024_04_29_is_accepted() -> None:
    assert settings(api_version="2024-04-29").api_version == "2024-04-29"
    assert settings(api_version="2025-11-05~beta").api_version == "2025-11-05~beta"


def test_api_version_that_is_not_a_date_is_refused() -> None:
    assert "`api_version` must be a date" in errors(org_ids=[ORG_A], api_version="latest")


def test_ids_must_be_uuids_and_the_error_names_the_setting() -> None:
    message = errors(org_ids=["my-org-slug"], group_ids=[GROUP, "Acme"])
    assert "`org_ids` holds values that are not organization UUIDs: 'my-org-slug'" in message
    assert "`group_ids` holds values that are not group UUIDs: 'Acme'" in message


def test_repeated_ids_are_read_once() -> None:
    assert settings(org_ids=[ORG_A, ORG_A.upper()]).org_ids == (ORG_A,)


def test_no_org_and_no_group_is_a_configuration_error() -> None:
    assert "No organization or group to read" in errors()


def test_discover_orgs_needs_groups() -> None:
    assert "`discover_orgs` is on but `group_ids` is empty" in errors(
        org_ids=[ORG_A], discover_orgs=True
    )


def test_events_and_exclude_events_together_are_a_configuration_error() -> None:
    message = errors(org_ids=[ORG_A], events=["org.user.add"], exclude_events=["api.access"])
    assert "`events` and `exclude_events` cannot be used together" in message


@pytest.mark.parametrize("page_size", [0, 101, "50"])
def test_page_size_outside_1_to_100_is_refused(page_size: object) -> None:
    assert "`page_size` must be a whole number from 1 to 100" in errors(
        org_ids=[ORG_A], page_size=page_size
    )


def test_start_and_end_dates_are_read_as_utc() -> None:
    s = settings(start_date="2026-10-01T02:00:00+02:00", end_date="2026-10-02")
    assert s.start_date == datetime(2026, 10, 1, 0, 0, tzinfo=timezone.utc)
    assert s.end_date == datetime(2026, 10, 2, 0, 0, tzinfo=timezone.utc)


def test_unparseable_start_date_is_refused() -> None:
    assert "`start_date` must be an RFC3339 timestamp" in errors(
        org_ids=[ORG_A], start_date="last tuesday"
    )


def test_end_date_before_start_date_is_refused() -> None:
    message = errors(org_ids=[ORG_A], start_date="2026-10-02T00:00:00Z", end_date="2026-10-01")
    assert "`end_date` (2026-10-01T00:00:00.000000Z) must be later than `start_date`" in message


def test_lookback_zero_turns_the_lookback_off() -> None:
    assert settings(lookback_hours=0).lookback == timedelta(0)


@pytest.mark.parametrize("lookback_hours", [-1, 2161, 100_000_000, True, 1.5])
def test_lookback_outside_0_to_90_days_is_refused(lookback_hours: object) -> None:
    assert "`lookback_hours` must be a whole number from 0 to 2160 (hours; Snyk keeps 90 days)" in (
        errors(org_ids=[ORG_A], lookback_hours=lookback_hours)
    )


def test_ninety_days_of_lookback_is_accepted() -> None:
    assert settings(lookback_hours=2160).lookback == timedelta(days=90)


@pytest.mark.parametrize(
    ("setting", "high"),
    [
        ("page_size", 100),
        ("max_requests_per_minute", 1620),
        ("request_timeout", 3600),
        ("max_retry_seconds", 86400),
    ],
)
def test_every_whole_number_setting_has_an_upper_bound(setting: str, high: int) -> None:
    assert getattr(settings(**{setting: high}), setting) == high
    for value in (high + 1, 10**30):
        assert f"`{setting}` must be a whole number from 1 to {high}" in errors(
            org_ids=[ORG_A], **{setting: value}
        )


@pytest.mark.parametrize(
    "written",
    [
        "{%s}",
        "urn:uuid:%s",
        "%s",
    ],
)
def test_ids_in_other_uuid_spellings_are_normalised(written: str) -> None:
    for spelled in (written % ORG_A.upper(), written % ORG_A.replace("-", "")):
        s = settings(org_ids=[spelled], group_ids=[written % GROUP.upper()])
        assert s.org_ids == (ORG_A,)
        assert s.group_ids == (GROUP,)


def test_api_url_with_credentials_is_refused_without_quoting_them() -> None:
    message = errors(org_ids=[ORG_A], api_url="https://alice:s3cret-pw@api.snyk.io/rest")
    assert "`api_url` holds a user name or password" in message
    assert "s3cret-pw" not in message
    assert "alice" not in message


def test_every_mistake_is_reported_at_once_by_the_cli_without_a_request(tmp_path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        '{"api_token": "sekret-token-value", "org_ids": ["x"], "page_size": 500,'
        ' "api_url": "https://127.0.0.1:9"}'
    )
    result = subprocess.run(
        [sys.executable, "-m", "tap_snyk.tap", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "`org_ids` holds values that are not organization UUIDs" in result.stderr
    assert "`page_size` must be a whole number from 1 to 100" in result.stderr
    assert "sekret-token-value" not in result.stderr + result.stdout
    assert result.stdout == ""


def test_about_describes_every_setting_and_hides_the_token_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tap_snyk.tap", "--about", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    import json

    settings_schema = json.loads(result.stdout)["settings"]["properties"]
    names = {
        "api_token", "auth_scheme", "api_url", "api_version", "org_ids", "group_ids",
        "discover_orgs", "start_date", "end_date", "lookback_hours", "events",
        "exclude_events", "page_size",
    }  # fmt: skip
    assert names <= settings_schema.keys()
    assert all(settings_schema[name].get("description") for name in names)
    assert settings_schema["api_token"].get("secret") is True


def test_a_missing_token_names_the_setting_and_its_variable_not_this_repositorys_files() -> None:
    message = errors(api_token="", org_ids=[ORG_A])
    assert "`api_token`" in message
    assert "TAP_SNYK_API_TOKEN" in message
    assert ".secrets" not in message  # only scripts/sync reads .secrets/, and says so itself


def test_every_whole_number_setting_refuses_a_value_without_bound() -> None:
    """Each integer setting the tap declares, present or added later, has an upper bound."""
    from singer_sdk.helpers import capabilities

    from tap_snyk.tap import TapSnyk

    # The SDK adds its own settings (e.g. flattening_max_depth) to the schema for `--about`.
    builtin = {
        name
        for value in vars(capabilities).values()
        if isinstance(value, dict) and isinstance(value.get("properties"), dict)
        for name in value["properties"]
    }
    declared = TapSnyk.config_jsonschema["properties"]
    integers = [
        name
        for name, spec in declared.items()
        if "integer" in str(spec.get("type")) and name not in builtin
    ]
    assert "lookback_hours" in integers
    for name in integers:
        assert f"`{name}` must be" in errors(org_ids=[ORG_A], **{name: 10**30}), name

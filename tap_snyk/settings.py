"""Checking the tap's settings before any request, and the values derived from them.

The settings are declared (names, types, descriptions) in `tap.py`; this module turns a config
mapping into `SnykSettings`, or into a list of errors that each name the setting and say what to do.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pendulum

from tap_snyk.auth import SNYK_FOR_GOVERNMENT, AuthMethod, auth_method

#: Audit logs have two GA contracts; any version on or after this date is served the newer one.
OLDEST_API_VERSION = date(2024, 4, 29)
#: Snyk keeps audit logs for the past 90 days.
RETENTION = timedelta(days=90)
RETENTION_HOURS = 90 * 24
#: Upper bounds of the time settings: beyond them a job only looks hung.
MAX_REQUEST_TIMEOUT = 3600
MAX_RETRY_SECONDS = 24 * 3600
#: Snyk's rate limit per API token.
SNYK_REQUESTS_PER_MINUTE = 1620
#: Snyk's rate limit per principal and second (the first figure of `X-Ratelimit-Limit`).
SNYK_REQUESTS_PER_SECOND = 160
#: Requests in flight at once: 8 keeps 1620 a minute busy at 150 ms an answer, with room to spare.
DEFAULT_CONCURRENT_REQUESTS = 8
MAX_CONCURRENT_REQUESTS = 32
REGIONAL_ORIGINS = (
    "https://api.snyk.io (SNYK-US-01)",
    "https://api.us.snyk.io (SNYK-US-02)",
    "https://api.eu.snyk.io (SNYK-EU-01)",
    "https://api.au.snyk.io (SNYK-AU-01)",
    f"{SNYK_FOR_GOVERNMENT} (SNYK-GOV-01, OAuth only)",
)
_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})(~(beta|experimental))?$")


class SettingsError(ValueError):
    """One or more settings are wrong; `errors` holds one actionable sentence for each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class SnykSettings:
    """The settings in the form the streams use them."""

    api_origin: str
    auth: AuthMethod
    api_version: str
    org_ids: tuple[str, ...]
    group_ids: tuple[str, ...]
    discover_orgs: bool
    start_date: datetime
    end_date: datetime | None
    lookback: timedelta
    lookback_interval: timedelta
    page_size: int
    events: tuple[str, ...]
    exclude_events: tuple[str, ...]
    max_requests_per_minute: int
    concurrent_requests: int
    request_timeout: int
    max_retry_seconds: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, now: datetime) -> SnykSettings:
        """Check every setting at once; raise `SettingsError` listing all that are wrong."""
        errors: list[str] = []
        api_origin = _api_origin(config.get("api_url") or "https://api.snyk.io", errors)
        auth = auth_method(config, api_origin, errors)
        api_version = _api_version(str(config.get("api_version") or "2024-10-15"), errors)
        org_ids = _uuids(config, "org_ids", "organization", errors)
        group_ids = _uuids(config, "group_ids", "group", errors)
        discover_orgs = bool(config.get("discover_orgs", False))
        if not config.get("org_ids") and not config.get("group_ids"):
            errors.append(
                "No organization or group to read: set `org_ids` (organization UUIDs, "
                "Settings > General in each Snyk org) and/or `group_ids` (group UUIDs)."
            )
        if discover_orgs and not group_ids:
            errors.append("`discover_orgs` is on but `group_ids` is empty: name the groups.")

        start_date = _timestamp(config, "start_date", errors) or now - RETENTION
        end_date = _timestamp(config, "end_date", errors)
        if end_date is not None and end_date <= start_date:
            errors.append(
                f"`end_date` ({rfc3339(end_date)}) must be later than `start_date` "
                f"({rfc3339(start_date)})."
            )

        # Snyk keeps 90 days: a longer lookback only re-reads what is not there.
        lookback_hours = _whole_number(
            config, "lookback_hours", 24, 0, RETENTION_HOURS, "hours; Snyk keeps 90 days", errors
        )
        lookback_interval_minutes = _lookback_interval(config, lookback_hours, errors)

        page_size = _whole_number(config, "page_size", 100, 1, 100, "events per page", errors)

        events = tuple(config.get("events") or ())
        exclude_events = tuple(config.get("exclude_events") or ())
        if events and exclude_events:
            errors.append(
                "`events` and `exclude_events` cannot be used together (Snyk rejects the "
                "request): keep one of them."
            )

        max_requests_per_minute = _whole_number(
            config,
            "max_requests_per_minute",
            1200,
            1,
            SNYK_REQUESTS_PER_MINUTE,
            f"requests per minute (Snyk allows {SNYK_REQUESTS_PER_MINUTE} per token)",
            errors,
        )
        concurrent_requests = _whole_number(
            config,
            "concurrent_requests",
            DEFAULT_CONCURRENT_REQUESTS,
            1,
            MAX_CONCURRENT_REQUESTS,
            "requests in flight; 1 reads one page after another",
            errors,
        )
        request_timeout = _whole_number(
            config, "request_timeout", 60, 1, MAX_REQUEST_TIMEOUT, "seconds", errors
        )
        max_retry_seconds = _whole_number(
            config, "max_retry_seconds", 600, 1, MAX_RETRY_SECONDS, "seconds", errors
        )

        if errors or auth is None:
            raise SettingsError(errors)
        return cls(
            api_origin=api_origin,
            auth=auth,
            api_version=api_version,
            org_ids=org_ids,
            group_ids=group_ids,
            discover_orgs=discover_orgs,
            start_date=start_date,
            end_date=end_date,
            lookback=timedelta(hours=lookback_hours),
            lookback_interval=timedelta(minutes=lookback_interval_minutes),
            page_size=page_size,
            events=events,
            exclude_events=exclude_events,
            max_requests_per_minute=max_requests_per_minute,
            concurrent_requests=concurrent_requests,
            request_timeout=request_timeout,
            max_retry_seconds=max_retry_seconds,
        )


def _lookback_interval(config: Mapping[str, Any], lookback_hours: int, errors: list[str]) -> int:
    """Minutes between re-reads of the lookback window, shorter than the window; 0: every run."""
    value = _whole_number(
        config, "lookback_interval_minutes", 0, 0, RETENTION_HOURS * 60, "minutes", errors
    )
    if value and not lookback_hours:
        errors.append(
            "`lookback_interval_minutes` is set but `lookback_hours` is 0: there is no lookback "
            "window to re-read; set `lookback_interval_minutes` to 0."
        )
    elif value >= lookback_hours * 60 > 0:
        errors.append(
            f"`lookback_interval_minutes` ({value}) must be less than `lookback_hours` x 60 "
            f"({lookback_hours * 60}): a late event is caught only if Snyk publishes it within "
            "`lookback_hours` minus the interval; lower the interval or raise `lookback_hours`."
        )
    return value


def _whole_number(
    config: Mapping[str, Any],
    setting: str,
    default: int,
    low: int,
    high: int,
    unit: str,
    errors: list[str],
) -> int:
    """A whole-number setting within its bounds, else `default` and an error naming it."""
    value = config.get(setting, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(
            f"`{setting}` must be a whole number from {low} to {high} ({unit}), not {value!r}."
        )
        return default
    return value


def _api_origin(api_url: str, errors: list[str]) -> str:
    """The scheme and host of `api_url`; a trailing `/` or `/rest` is tolerated."""
    parts = urlsplit(str(api_url).strip())
    if "@" in parts.netloc:
        # Never quoted: what precedes the `@` is a password or a token.
        errors.append(
            "`api_url` holds a user name or password (`…@` before the host): remove it; the "
            "token goes in `api_token` and is sent only in the Authorization header."
        )
        return ""
    path = parts.path.rstrip("/")
    if parts.scheme not in ("http", "https") or not parts.hostname or path not in ("", "/rest"):
        errors.append(
            f"`api_url` must be the origin of a Snyk API, such as {', '.join(REGIONAL_ORIGINS)}; "
            f"got {api_url!r}."
        )
        return ""
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        errors.append(
            f"`api_url` {api_url!r} uses plain http, which Snyk does not serve and which would "
            "send the token unencrypted: use https (http is allowed only for a local test API)."
        )
    return f"{parts.scheme}://{parts.netloc}"


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _api_version(value: str, errors: list[str]) -> str:
    match = _VERSION.match(value)
    try:
        version_date = date.fromisoformat(match.group(1)) if match else None
    except ValueError:
        version_date = None
    if version_date is None:
        errors.append(f"`api_version` must be a date such as 2024-10-15, not {value!r}.")
    elif version_date < OLDEST_API_VERSION:
        errors.append(
            f"`api_version` {value} is older than {OLDEST_API_VERSION}, the first version of "
            "the current audit-log contract (older versions treat `from`/`to` differently): "
            "use 2024-10-15 or later."
        )
    return value


def _uuids(
    config: Mapping[str, Any], setting: str, kind: str, errors: list[str]
) -> tuple[str, ...]:
    values = config.get(setting) or []
    if isinstance(values, str) or not isinstance(values, list):
        errors.append(f"`{setting}` must be a list of {kind} UUIDs, not {values!r}.")
        return ()
    canonical = {v: _canonical_uuid(v) for v in values if isinstance(v, str)}
    bad = [v for v in values if canonical.get(v) is None]
    if bad:
        errors.append(
            f"`{setting}` holds values that are not {kind} UUIDs: {', '.join(map(repr, bad))}. "
            f"Use the {kind} ID (a UUID from the {kind}'s settings page), not its name or slug."
        )
    # Keep the order given, once each: a repeated id must not read the same logs twice.
    return tuple(dict.fromkeys(c for v in values if (c := canonical.get(v)) is not None))


def _canonical_uuid(value: str) -> str | None:
    """The UUID in Snyk's form (lower case, dashed), from any form Python reads.

    `{…}`, `urn:uuid:…`, upper case and 32 hex digits without dashes all name the same id;
    Snyk answers 404 to all but the canonical form.
    """
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return None


def _timestamp(config: Mapping[str, Any], setting: str, errors: list[str]) -> datetime | None:
    value = config.get(setting)
    if value in (None, ""):
        return None
    try:
        parsed = pendulum.parse(str(value), tz="UTC")
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        parsed = None
    if isinstance(parsed, datetime):
        return datetime.fromisoformat(parsed.in_tz("UTC").isoformat())
    if isinstance(parsed, date):  # a bare date means its midnight, UTC
        return datetime(parsed.year, parsed.month, parsed.day, tzinfo=timezone.utc)
    errors.append(
        f"`{setting}` must be an RFC3339 timestamp such as 2024-05-01T00:00:00Z, not {value!r}."
    )
    return None


def rfc3339(moment: datetime) -> str:
    """The one format of timestamps the tap writes: UTC, microseconds, `Z`.

    One fixed width matters: the SDK compares bookmarks as strings.
    """
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

"""The tap's settings: each declared once (type, default, bounds, description), and checked.

`SETTINGS` is the JSON schema of the config: `--about` prints it, Meltano's plugin definition and
the docs' settings table are written from it, and a setting's default, bounds and allowed values
live nowhere else. `SnykSettings.from_config` reads a config in their light and turns it into the
form the streams use, or into a list of errors that each name the setting and say what to do, so
that every mistake is reported at once, before any request.
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
from singer_sdk import typing as th

from tap_snyk.auth import SNYK_FOR_GOVERNMENT, AuthMethod, auth_method

#: Audit logs have two GA contracts; any version on or after this date is served the newer one.
OLDEST_API_VERSION = date(2024, 4, 29)
#: Snyk keeps audit logs for the past 90 days.
RETENTION = timedelta(days=90)
RETENTION_HOURS = 90 * 24
#: Snyk's rate limit per API token.
SNYK_REQUESTS_PER_MINUTE = 1620
#: Snyk's rate limit per principal and second (the first figure of `X-Ratelimit-Limit`).
SNYK_REQUESTS_PER_SECOND = 160
REGIONAL_ORIGINS = (
    "https://api.snyk.io (SNYK-US-01)",
    "https://api.us.snyk.io (SNYK-US-02)",
    "https://api.eu.snyk.io (SNYK-EU-01)",
    "https://api.au.snyk.io (SNYK-AU-01)",
    f"{SNYK_FOR_GOVERNMENT} (SNYK-GOV-01, OAuth only)",
)
_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})(~(beta|experimental))?$")


def _whole_number(
    name: str, *, default: int, minimum: int, maximum: int, description: str
) -> th.Property:
    """An integer setting; its bounds go into the schema and, in words, into its description."""
    return th.Property(
        name,
        th.IntegerType(minimum=minimum, maximum=maximum),
        default=default,
        description=f"{description} {minimum} to {maximum}.",
    )


SETTINGS = th.PropertiesList(
    th.Property(
        "api_token",
        th.StringType,
        secret=True,
        description=(
            "Snyk API token: a personal or service-account token (`auth_scheme` token) or an "
            "OAuth access token (`auth_scheme` bearer). Audit logs need the Enterprise plan. "
            "Or leave it unset and use an OAuth service account (`client_id`)."
        ),
    ),
    th.Property(
        "auth_scheme",
        th.StringType,
        default="token",
        allowed_values=["token", "bearer"],
        description=(
            "How `api_token` is sent: `token` for API tokens (the default), `bearer` for "
            "OAuth access tokens."
        ),
    ),
    th.Property(
        "client_id",
        th.StringType,
        description=(
            "Client id of an OAuth 2.0 service account (instead of `api_token`), with "
            "`client_secret`, or with `private_key` and `private_key_id`. Access tokens are "
            "asked from `api_url`'s /oauth2/token and renewed before they expire."
        ),
    ),
    th.Property(
        "client_secret",
        th.StringType,
        secret=True,
        description="Client secret of the OAuth 2.0 service account `client_id`.",
    ),
    th.Property(
        "private_key",
        th.StringType,
        secret=True,
        description=(
            "For a private-key-JWT service account `client_id`: its RSA private key, the PEM "
            "text (newlines may be written as \\n)."
        ),
    ),
    th.Property(
        "private_key_id",
        th.StringType,
        description=(
            "The id (`kid`) of the public key of `private_key` on the service account's JWKS."
        ),
    ),
    th.Property(
        "api_url",
        th.StringType,
        default="https://api.snyk.io",
        description=(
            "Origin of the Snyk API of your region: " + ", ".join(REGIONAL_ORIGINS) + ". "
            "A token only works in its own region. A trailing `/rest` is tolerated."
        ),
    ),
    th.Property(
        "api_version",
        th.StringType,
        default="2024-10-15",
        description="Snyk REST API version date; 2024-04-29 or later.",
    ),
    th.Property(
        "org_ids",
        th.ArrayType(th.StringType),
        description="Organization UUIDs whose audit logs to extract (stream org_audit_logs).",
    ),
    th.Property(
        "group_ids",
        th.ArrayType(th.StringType),
        description="Group UUIDs whose group audit logs to extract (stream group_audit_logs).",
    ),
    th.Property(
        "discover_orgs",
        th.BooleanType,
        default=False,
        description=(
            "When true, org_audit_logs also reads every organization of each group in "
            "`group_ids`, listed at the start of each run, so new orgs need no config change."
        ),
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        description=(
            "Earliest event time to extract (RFC3339). Default: 90 days before now, "
            "Snyk's retention."
        ),
    ),
    th.Property(
        "end_date",
        th.DateTimeType,
        description="Optional exclusive upper bound on event time, for bounded backfills.",
    ),
    _whole_number(
        "lookback_hours",
        default=24,
        minimum=0,
        maximum=RETENTION_HOURS,  # Snyk keeps 90 days: a longer lookback re-reads nothing
        description=(
            "Each run re-reads this many hours before its bookmark, to catch events that "
            "Snyk publishes late (up to 24 hours); `event_id` keeps them once. 0 turns it off."
        ),
    ),
    _whole_number(
        "lookback_interval_minutes",
        default=0,
        minimum=0,
        maximum=RETENTION_HOURS * 60,
        description=(
            "Re-read each org's or group's `lookback_hours` at most once per this many "
            "minutes; runs in between read only from the bookmark, at a request or two when "
            "nothing happened. A late event is then caught if Snyk publishes it within "
            "`lookback_hours` minus this interval. 0 (the default): every run re-reads."
        ),
    ),
    th.Property(
        "events",
        th.ArrayType(th.StringType),
        description=(
            "Only these event types. `api.access` events come only when listed here. "
            "Cannot be combined with `exclude_events`."
        ),
    ),
    th.Property(
        "exclude_events",
        th.ArrayType(th.StringType),
        description="Every event type but these. Cannot be combined with `events`.",
    ),
    _whole_number(
        "page_size", default=100, minimum=1, maximum=100, description="Events per request,"
    ),
    _whole_number(
        "max_requests_per_minute",
        default=1200,
        minimum=1,
        maximum=SNYK_REQUESTS_PER_MINUTE,
        description=(
            "The tap sends at most this many requests in any minute, spaced evenly, below "
            f"Snyk's {SNYK_REQUESTS_PER_MINUTE} per token, so it rarely meets a 429; lower it "
            "when other tools share the token."
        ),
    ),
    _whole_number(
        "concurrent_requests",
        default=8,  # keeps 1620 a minute busy at 150 ms an answer, with room to spare
        minimum=1,
        maximum=32,
        description=(
            "Requests in flight at once: orgs, groups and time windows of a busy one are read "
            "side by side (each event still once, written in order), up to "
            "`max_requests_per_minute`. 1 reads one page after another."
        ),
    ),
    _whole_number(
        "request_timeout",
        default=60,
        minimum=1,
        maximum=3600,  # beyond it a job only looks hung
        description="Seconds one request may take before it is abandoned and tried again.",
    ),
    _whole_number(
        "max_retry_seconds",
        default=600,
        minimum=1,
        maximum=24 * 3600,
        description=(
            "How long to keep retrying a request that meets passing faults (429, 5xx, "
            "timeouts, cut-off answers) before the run fails; the next run resumes."
        ),
    ),
).to_dict()

#: What each whole number counts, for the error that names its bounds.
_UNITS = {
    "lookback_hours": "hours; Snyk keeps 90 days",
    "lookback_interval_minutes": "minutes",
    "page_size": "events per page",
    "max_requests_per_minute": (
        f"requests per minute (Snyk allows {SNYK_REQUESTS_PER_MINUTE} per token)"
    ),
    "concurrent_requests": "requests in flight; 1 reads one page after another",
    "request_timeout": "seconds",
    "max_retry_seconds": "seconds",
}


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
        numbers = {name: _number(config, name, errors) for name in _UNITS}
        api_origin = _api_origin(str(config.get("api_url") or _default("api_url")), errors)
        auth = auth_method(config, api_origin, errors)
        api_version = _api_version(
            str(config.get("api_version") or _default("api_version")), errors
        )
        org_ids = _uuids(config, "org_ids", "organization", errors)
        group_ids = _uuids(config, "group_ids", "group", errors)
        discover_orgs = bool(config.get("discover_orgs", _default("discover_orgs")))
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
        _check_lookback_interval(
            numbers["lookback_interval_minutes"], numbers["lookback_hours"], errors
        )

        events = tuple(config.get("events") or ())
        exclude_events = tuple(config.get("exclude_events") or ())
        if events and exclude_events:
            errors.append(
                "`events` and `exclude_events` cannot be used together (Snyk rejects the "
                "request): keep one of them."
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
            lookback=timedelta(hours=numbers["lookback_hours"]),
            lookback_interval=timedelta(minutes=numbers["lookback_interval_minutes"]),
            page_size=numbers["page_size"],
            events=events,
            exclude_events=exclude_events,
            max_requests_per_minute=numbers["max_requests_per_minute"],
            concurrent_requests=numbers["concurrent_requests"],
            request_timeout=numbers["request_timeout"],
            max_retry_seconds=numbers["max_retry_seconds"],
        )


def _default(setting: str) -> Any:
    return SETTINGS["properties"][setting].get("default")


def _number(config: Mapping[str, Any], setting: str, errors: list[str]) -> int:
    """A whole-number setting within its declared bounds, else its default and an error."""
    declared = SETTINGS["properties"][setting]
    low, high, default = declared["minimum"], declared["maximum"], declared["default"]
    value = config.get(setting, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(
            f"`{setting}` must be a whole number from {low} to {high} ({_UNITS[setting]}), "
            f"not {value!r}."
        )
        return int(default)
    return value


def _check_lookback_interval(interval: int, lookback_hours: int, errors: list[str]) -> None:
    """Minutes between re-reads of the lookback window must be shorter than the window."""
    if interval and not lookback_hours:
        errors.append(
            "`lookback_interval_minutes` is set but `lookback_hours` is 0: there is no lookback "
            "window to re-read; set `lookback_interval_minutes` to 0."
        )
    elif interval >= lookback_hours * 60 > 0:
        errors.append(
            f"`lookback_interval_minutes` ({interval}) must be less than `lookback_hours` x 60 "
            f"({lookback_hours * 60}): a late event is caught only if Snyk publishes it within "
            "`lookback_hours` minus the interval; lower the interval or raise `lookback_hours`."
        )


def _api_origin(api_url: str, errors: list[str]) -> str:
    """The scheme and host of `api_url`; a trailing `/` or `/rest` is tolerated."""
    parts = urlsplit(api_url.strip())
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

"""The JSON:API contract the fake serves, as Snyk's REST API keeps it.

Answers (`Response`, `json_response`), error documents (`ApiError`, `error_document`), the query
parameters every endpoint checks (a required `version`, integers in bounds, `limit` in tens,
RFC3339 times, comma-separated lists), opaque cursors, the snyk-version-* headers, and the styles
of `links.next` the fake can serve. Times are written as the live service writes them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any

JSONAPI = {"version": "1.0"}
JSONAPI_CONTENT_TYPE = "application/vnd.api+json"
NEXT_LINK_STYLES = ("relative", "object", "absolute", "no_rest")

_VERSION = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:~(?:wip|work-in-progress|experimental|beta))?$"
)
_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$",
    re.IGNORECASE,
)


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC3339 date-time with a mandatory offset; raise ValueError otherwise."""
    match = _RFC3339.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not an RFC3339 date-time such as 2024-01-02T16:30:00Z")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, offset = match.group(7) or "", match.group(8)
    tz = timezone.utc
    if offset.upper() != "Z":
        sign = -1 if offset[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    micro = int((fraction + "000000")[:6])
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def format_created(moment: datetime) -> str:
    """Format a time like the live service: UTC, millisecond precision, Z."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def error_document(status: int, detail: str, parameter: str | None = None) -> dict[str, Any]:
    """Build a JSON:API error document as Snyk sends it."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    error: dict[str, Any] = {
        "status": str(status),
        "title": title,
        "detail": detail,
        "id": str(uuid.uuid4()),
    }
    if parameter is not None:
        error["source"] = {"parameter": parameter}
    return {"jsonapi": JSONAPI, "errors": [error]}


@dataclass
class Response:
    """An answer: status, body and headers (Content-Length is added when it is sent)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_response(
    status: int, document: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON:API answer."""
    # A lone surrogate (which a test may store) goes out as its JSON escape, as a JSON encoder
    # that escapes it would send it; inside a JSON string, backslashreplace writes just that.
    body = json.dumps(document, ensure_ascii=False).encode("utf-8", "backslashreplace")
    return Response(status, body, {"Content-Type": JSONAPI_CONTENT_TYPE, **(headers or {})})


class ApiError(Exception):
    """An error answer, raised anywhere in request handling."""

    def __init__(self, status: int, detail: str, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.parameter = status, detail, parameter

    def response(self) -> Response:
        """The error as a JSON:API error document."""
        document = error_document(self.status, self.detail, self.parameter)
        return json_response(self.status, document)


@dataclass(frozen=True)
class Call:
    """A request to /rest as the endpoints read it."""

    path: str
    target: str
    params: dict[str, str]  # each parameter once: repeated ones were rejected already


def require_version(params: Mapping[str, str], minimum: date | None = None) -> str:
    """The `version` a request asks for, checked (and not before `minimum`)."""
    raw = params.get("version")
    if raw is None:
        raise ApiError(
            400, "the version query parameter is required, e.g. version=2024-10-15", "version"
        )
    match = _VERSION.match(raw)
    try:
        requested = date(*(int(part) for part in match.groups()[:3])) if match else None
    except ValueError:
        requested = None
    if requested is None:
        raise ApiError(
            400,
            f"version {raw!r} is not a version date YYYY-MM-DD "
            "(optionally with ~beta or ~experimental)",
            "version",
        )
    if minimum is not None and requested < minimum:
        # The live API would answer with the 2023-09-11 contract (singular `event`, date-only
        # from/to, inclusive `to`); failing loudly here catches the tap sending an old version.
        raise ApiError(
            400,
            f"version {raw} is older than {minimum.isoformat()}: the live API "
            "would serve the 2023-09-11 audit-log contract; send a version on "
            "or after 2024-04-29, e.g. 2024-10-15",
            "version",
        )
    return raw


def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer parameter from `low` to `high`; `default` when it is not given."""
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}, got {raw!r}", name)
    return int(raw)


def limit_param(params: Mapping[str, str]) -> int:
    """The `limit` of Snyk's cursor-paged listings: 10 to 100 in steps of 10, default 10."""
    limit = int_param(params, "limit", 10, 10, 100)
    if limit % 10:
        raise ApiError(400, f"limit must be a multiple of 10, got {limit}", "limit")
    return limit


def time_param(params: Mapping[str, str], name: str) -> datetime | None:
    """An RFC3339 date-time parameter, or None when it is not given."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}", name) from exc


def list_param(params: Mapping[str, str], name: str) -> frozenset[str] | None:
    """A comma-separated list of event types, or None when it is not given."""
    raw = params.get(name)
    if raw is None:
        return None
    names = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise ApiError(400, f"{name} must name at least one event type", name)
    return names


def encode_cursor(offset: int) -> str:
    """Encode an offset into the filtered, sorted results as an opaque cursor."""
    raw = json.dumps({"offset": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(params: Mapping[str, str], name: str) -> int:
    """The offset a cursor parameter (`cursor`, `starting_after`) stands for; 0 without one."""
    raw = params.get(name)
    if raw is None:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        offset = decoded["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, f"{name} {raw!r} is not a cursor this API issued", name) from exc
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ApiError(400, f"{name} {raw!r} is not a cursor this API issued", name)
    return offset


def version_headers(requested: str, served: str) -> dict[str, str]:
    """The snyk-* headers of an answer: its request id and the versions asked for and served."""
    return {
        "snyk-request-id": str(uuid.uuid4()),
        "snyk-version-requested": requested,
        "snyk-version-served": served,
        "snyk-version-lifecycle-stage": "ga",
    }


def styled_link(rest_target: str, style: str, origin: str) -> str | dict[str, Any]:
    """A link to a target under /rest, written in one of `NEXT_LINK_STYLES`."""
    if style == "relative":
        return rest_target
    if style == "object":
        return {"href": rest_target, "meta": {}}
    if style == "absolute":
        return origin + rest_target
    if style == "no_rest":
        return rest_target.removeprefix("/rest")
    raise ValueError(f"next_link_style must be one of {NEXT_LINK_STYLES}, got {style!r}")

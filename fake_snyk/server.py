"""A fake Snyk REST API for the tests of tap-snyk: real HTTP on 127.0.0.1.

Standard library only, but for PyJWT (a dependency of the tap) to verify OAuth client assertions.

What lives here:
- `FakeSnyk`: the server. It answers the org and group audit-log searches (contract 2024-04-29),
  the orgs of a group, one org, the memberships of an org or a group, the projects of an org and
  `/self`, holds the data tests give it, records every request it receives, and serves injected
  faults (`Fault`) before normal handling. Its OAuth token endpoint, `POST /oauth2/token`, issues
  short-lived access tokens to registered service accounts (`OAuthClient`: a client secret, or a
  public key whose private key signs client assertions).
- `make_events` and `uuid_for`: deterministic, deliberately awkward audit-log events and ids;
  `make_members` and `make_projects`: the users and projects those events name.
- `main`: `python -m tests.fake_snyk` seeds demo data and serves it, or runs a command against it.

The fake reproduces what clients observed on the live service, not only what the contract
promises: `sort_order` defaults to DESC, a missing `from` means "since the start of yesterday",
`api.access` events are hidden unless asked for, a repeated query parameter is a 400, next links
are relative paths under /rest that repeat every parameter, and the last page has no `links`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import itertools
import json
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt

DEFAULT_TOKEN = "test-token"
DEMO_CLIENT_ID, DEMO_CLIENT_SECRET = "demo-service-account", "demo-client-secret"
TOKEN_PATH = "/oauth2/token"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The longest `exp` ahead of now that the fake accepts in a client assertion ("a few minutes").
MAX_ASSERTION_LIFETIME = 600
AUDIT_LOG_CONTRACT = date(2024, 4, 29)  # older version dates are served the 2023-09-11 contract
API_ACCESS = "api.access"
JSONAPI = {"version": "1.0"}
JSONAPI_CONTENT_TYPE = "application/vnd.api+json"
NEXT_LINK_STYLES = ("relative", "object", "absolute", "no_rest")

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "fake-snyk.tap-snyk.test")
_VERSION = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:~(?:wip|work-in-progress|experimental|beta))?$"
)
_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$",
    re.IGNORECASE,
)
_AUDIT_SEARCH = re.compile(r"^/rest/(?P<kind>orgs|groups)/(?P<id>[^/]+)/audit_logs/search$")
_GROUP_ORGS = re.compile(r"^/rest/groups/(?P<id>[^/]+)/orgs$")
_ORG = re.compile(r"^/rest/orgs/(?P<id>[^/]+)$")
_MEMBERSHIPS = re.compile(r"^/rest/(?P<kind>orgs|groups)/(?P<id>[^/]+)/memberships$")
_ORG_PROJECTS = re.compile(r"^/rest/orgs/(?P<id>[^/]+)/projects$")
# The version each endpoint serves, for the snyk-version-served header the contract declares.
_SERVED_AUDIT, _SERVED_ORGS, _SERVED_SELF = "2024-04-29", "2024-02-28", "2024-04-22"
_SERVED_MEMBERSHIPS, _SERVED_PROJECTS = "2024-08-25", "2024-05-31"
#: Audit-log search results kept for paging (a concurrent reader pages many side by side).
_SEARCHES_KEPT = 64
#: Snyk's rate limits per token, as `rate_limits` takes them: at most 160 a second, 1620 a minute.
SNYK_RATE_LIMITS = {1: 160, 60: 1620}


def uuid_for(name: str) -> str:
    """Return a deterministic UUID string (uuid5) for a readable name such as "org-a"."""
    return str(uuid.uuid5(_NAMESPACE, name))


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


def start_of_yesterday(now: datetime) -> datetime:
    """Return where a search without `from` starts: midnight UTC at the start of yesterday."""
    yesterday = now.astimezone(timezone.utc).date() - timedelta(days=1)
    return datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=timezone.utc)


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
class Fault:
    """One injected failure, consumed by the next request whose target contains `path`.

    Actions (at most one): `status` (an error status with a JSON:API body), `truncated_body`
    (the normal answer cut in half, Content-Length matching the cut body), `not_json` (200 with
    an HTML page), `reset` (close the connection without answering) or `body` (200 with these
    bytes, as `application/vnd.api+json` with no charset, like the live API). `delay` seconds
    are slept first; a delay alone then answers normally (read-timeout tests). `drip` sends the
    answer's body one byte every `drip` seconds, after its headers. `headers` are added to the
    answer (e.g. Retry-After). `times` serves the same fault to that many matching requests.
    `revoke_tokens` revokes every live OAuth access token first, like a delay, then answers as
    above (or normally, so the request's own access token is refused).
    """

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    truncated_body: bool = False
    not_json: bool = False
    reset: bool = False
    body: bytes | None = None
    delay: float = 0.0
    drip: float = 0.0
    path: str | None = None
    times: int = 1
    revoke_tokens: bool = False

    def __post_init__(self) -> None:
        actions = [
            self.status is not None,
            self.truncated_body,
            self.not_json,
            self.reset,
            self.body is not None,
        ]
        if sum(actions) > 1:
            raise ValueError(
                "a Fault has at most one of status, truncated_body, not_json, reset, body"
            )
        if sum(actions) == 0 and self.delay <= 0 and self.drip <= 0 and not self.revoke_tokens:
            raise ValueError(
                "a Fault needs an action (status, truncated_body, not_json, reset, body), "
                "a delay or a drip"
            )
        if self.times < 1:
            raise ValueError("Fault.times must be at least 1")

    def matches(self, target: str) -> bool:
        """Tell whether this fault applies to a request target (path and raw query)."""
        return self.path is None or self.path in target


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, for tests to assert what the tap sent."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    target: str  # path and raw query exactly as received
    body: bytes = b""
    received_at: float = 0.0  # time.monotonic() when it arrived

    def header(self, name: str) -> str | None:
        """Return a header by case-insensitive name, or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class _StoredEvent:
    created: datetime
    seq: int  # insertion order: breaks ties between equal timestamps
    item: Any  # an audit-log item; any JSON value for malformed-item tests


_MEMBER_KEYS = frozenset(
    {"user_id", "name", "username", "email", "login_method", "role", "created_at"}
)
_DEFAULT_ROLES = {"org": "Org Collaborator", "group": "Group Member"}


@dataclass(frozen=True)
class _Member:
    """One user's membership of an org or a group."""

    user_id: str
    name: str
    username: str
    email: str
    role: str
    login_method: str | None  # None: left out, as for a service account
    created_at: str

    @classmethod
    def parse(cls, spec: Mapping[str, Any], level: str) -> _Member:
        _check_keys(spec, "user_id", _MEMBER_KEYS, "a member")
        user_id = str(spec["user_id"])
        short = user_id[:8]
        return cls(
            user_id=user_id,
            name=spec.get("name", f"User {short}"),
            username=spec.get("username", f"user-{short}"),
            email=spec.get("email", f"user-{short}@example.com"),
            role=spec.get("role", _DEFAULT_ROLES[level]),
            login_method=spec.get("login_method", "saml"),
            created_at=spec.get("created_at", "2023-02-01T09:00:00Z"),
        )

    def resource(self, level: str, scope_id: str, scope_name: str) -> dict[str, Any]:
        """The membership as listed under /orgs/{id}/memberships or /groups/{id}/memberships."""
        user: dict[str, Any] = {"name": self.name, "username": self.username, "email": self.email}
        if self.login_method is not None:
            user["login_method"] = self.login_method
        return {
            "id": uuid_for(f"{level}-membership/{scope_id}/{self.user_id}"),
            "type": f"{level}_membership",
            "attributes": {"created_at": self.created_at},
            "relationships": {
                level: {
                    "data": {"id": scope_id, "type": level, "attributes": {"name": scope_name}}
                },
                "role": {
                    "data": {
                        "id": uuid_for(f"{level}-role/{self.role}"),
                        "type": f"{level}_role",
                        "attributes": {"name": self.role},
                    }
                },
                "user": {"data": {"id": self.user_id, "type": "user", "attributes": user}},
            },
        }


_PROJECT_ATTRIBUTES = (
    "name",
    "type",
    "origin",
    "status",
    "target_reference",
    "target_file",
    "target_runtime",
    "created",
    "business_criticality",
    "environment",
    "lifecycle",
    "tags",
    "read_only",
    "settings",
    "build_args",
)
_PROJECT_KEYS = frozenset({"id", "target_id", "importer_id", *_PROJECT_ATTRIBUTES})


def _project_resource(org_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A project as /orgs/{id}/projects lists it; attributes given as None are left out."""
    _check_keys(spec, "id", _PROJECT_KEYS, "a project")
    given = json.loads(json.dumps(spec))  # a copy: later changes by the test do not leak in
    project_id = str(given["id"])
    short = project_id[:8]
    attributes: dict[str, Any] = {
        "name": f"example/repo-{short}:package.json",
        "type": "npm",
        "origin": "cli",
        "status": "active",
        "target_reference": "main",
        "target_file": "package.json",
        "created": "2023-06-01T10:00:00.000Z",
        "business_criticality": [],
        "environment": [],
        "lifecycle": [],
        "tags": [],
        "read_only": False,
        "settings": {"recurring_tests": {"frequency": "daily"}, "pull_requests": {}},
    }
    attributes.update((k, v) for k, v in given.items() if k in _PROJECT_ATTRIBUTES)
    target_id = given.get("target_id") or uuid_for(f"{org_id}/target/{project_id}")
    relationships: dict[str, Any] = {
        "organization": _relationship("org", org_id, f"/orgs/{org_id}"),
        "target": _relationship("target", target_id, f"/orgs/{org_id}/targets/{target_id}"),
    }
    importer_id = given.get("importer_id")
    if importer_id is not None:
        relationships["importer"] = _relationship(
            "user", importer_id, f"/orgs/{org_id}/users/{importer_id}"
        )
    return {
        "id": project_id,
        "type": "project",
        "attributes": {k: v for k, v in attributes.items() if v is not None},
        "relationships": relationships,
    }


def _relationship(kind: str, resource_id: str, related: str) -> dict[str, Any]:
    # The contract's Relationship requires both data and links.
    return {"data": {"id": resource_id, "type": kind}, "links": {"related": related}}


def _check_keys(spec: Mapping[str, Any], required: str, allowed: frozenset[str], what: str) -> None:
    # A misspelt key would otherwise be ignored silently and leave a default in its place.
    if required not in spec:
        raise ValueError(f"{what} needs {required!r}: {spec!r}")
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; allowed: {sorted(allowed)}")


@dataclass
class _Org:
    id: str
    name: str
    slug: str
    group_id: str | None = None
    access_requests_enabled: bool = False
    created_at: str = "2023-01-10T09:00:00Z"
    updated_at: str = "2024-03-01T12:00:00Z"
    events: list[_StoredEvent] = field(default_factory=list)
    members: dict[str, _Member] = field(default_factory=dict)  # by user id
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # resources by id

    def resource(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {"name": self.name, "slug": self.slug}
        if self.group_id is not None:
            # The contract's group_id is a string, never null: a personal org has none.
            attributes["group_id"] = self.group_id
        attributes.update(
            is_personal=self.group_id is None,
            access_requests_enabled=self.access_requests_enabled,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
        return {"id": self.id, "type": "org", "attributes": attributes}


@dataclass
class _Group:
    id: str
    name: str
    org_ids: list[str] = field(default_factory=list)
    events: list[_StoredEvent] = field(default_factory=list)
    members: dict[str, _Member] = field(default_factory=dict)  # by user id


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(
    status: int, document: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> _Response:
    # A lone surrogate (which a test may store) goes out as its JSON escape, as a JSON encoder
    # that escapes it would send it; inside a JSON string, backslashreplace writes just that.
    body = json.dumps(document, ensure_ascii=False).encode("utf-8", "backslashreplace")
    return _Response(status, body, {"Content-Type": JSONAPI_CONTENT_TYPE, **(headers or {})})


@dataclass(frozen=True)
class OAuthClient:
    """A service account with OAuth 2.0 client credentials: a client secret, or a public key.

    `public_key` is a PEM; `key_id` its id (`kid`) on the account's JWKS.
    """

    client_id: str
    secret: str | None = None
    public_key: str | None = None
    key_id: str | None = None


def _lifetime(token_lifetime: object) -> float:
    """How long an access token lives, whatever `expires_in` says (a test may send odd ones)."""
    try:
        return float(token_lifetime)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 3599.0


class _OAuthError(Exception):
    """An OAuth error answer of the token endpoint: `{"error", "error_description"}`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def response(self) -> _Response:
        body = json.dumps({"error": self.error, "error_description": self.description}).encode()
        return _Response(self.status, body, {"Content-Type": "application/json"})


class _ApiError(Exception):
    """An error answer, raised anywhere in request handling."""

    def __init__(self, status: int, detail: str, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.parameter = status, detail, parameter

    def response(self) -> _Response:
        document = error_document(self.status, self.detail, self.parameter)
        return _json_response(self.status, document)


@dataclass(frozen=True)
class _Call:
    path: str
    target: str
    params: dict[str, str]  # each parameter once: repeated ones were rejected already


def _require_version(params: Mapping[str, str], minimum: date | None = None) -> str:
    raw = params.get("version")
    if raw is None:
        raise _ApiError(
            400, "the version query parameter is required, e.g. version=2024-10-15", "version"
        )
    match = _VERSION.match(raw)
    try:
        requested = date(*(int(part) for part in match.groups()[:3])) if match else None
    except ValueError:
        requested = None
    if requested is None:
        raise _ApiError(
            400,
            f"version {raw!r} is not a version date YYYY-MM-DD "
            "(optionally with ~beta or ~experimental)",
            "version",
        )
    if minimum is not None and requested < minimum:
        # The live API would answer with the 2023-09-11 contract (singular `event`, date-only
        # from/to, inclusive `to`); failing loudly here catches the tap sending an old version.
        raise _ApiError(
            400,
            f"version {raw} is older than {minimum.isoformat()}: the live API "
            "would serve the 2023-09-11 audit-log contract; send a version on "
            "or after 2024-04-29, e.g. 2024-10-15",
            "version",
        )
    return raw


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise _ApiError(400, f"{name} must be an integer from {low} to {high}, got {raw!r}", name)
    return int(raw)


def _limit_param(params: Mapping[str, str]) -> int:
    """The `limit` of Snyk's cursor-paged listings: 10 to 100 in steps of 10, default 10."""
    limit = _int_param(params, "limit", 10, 10, 100)
    if limit % 10:
        raise _ApiError(400, f"limit must be a multiple of 10, got {limit}", "limit")
    return limit


def _time_param(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError as exc:
        raise _ApiError(400, f"{name}: {exc}", name) from exc


def _list_param(params: Mapping[str, str], name: str) -> frozenset[str] | None:
    raw = params.get(name)
    if raw is None:
        return None
    names = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise _ApiError(400, f"{name} must name at least one event type", name)
    return names


def encode_cursor(offset: int) -> str:
    """Encode an offset into the filtered, sorted results as an opaque cursor."""
    raw = json.dumps({"offset": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(params: Mapping[str, str], name: str) -> int:
    raw = params.get(name)
    if raw is None:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        offset = decoded["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise _ApiError(400, f"{name} {raw!r} is not a cursor this API issued", name) from exc
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _ApiError(400, f"{name} {raw!r} is not a cursor this API issued", name)
    return offset


@dataclass(frozen=True)
class _AuditQuery:
    """The filters and paging of one audit-log search, validated."""

    start: datetime
    end: datetime | None
    size: int
    descending: bool
    events: frozenset[str] | None
    excluded: frozenset[str]
    user_id: str | None
    project_id: str | None

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime) -> _AuditQuery:
        start = _time_param(params, "from") or start_of_yesterday(now)
        end = _time_param(params, "to")
        if end is not None and end < start:
            raise _ApiError(400, "to must not be before from", "to")
        sort_order = params.get("sort_order", "DESC")  # DESC is the live default, not ASC
        if sort_order not in ("ASC", "DESC"):
            raise _ApiError(
                400, f"sort_order must be ASC or DESC, got {sort_order!r}", "sort_order"
            )
        events, excluded = _list_param(params, "events"), _list_param(params, "exclude_events")
        if events is not None and excluded is not None:
            raise _ApiError(400, "events and exclude_events cannot be used together", "events")
        return cls(
            start=start,
            end=end,
            size=_int_param(params, "size", 100, 1, 100),
            descending=sort_order == "DESC",
            events=events,
            excluded=excluded or frozenset(),
            user_id=params.get("user_id"),
            project_id=params.get("project_id"),
        )

    def accepts(self, event: _StoredEvent) -> bool:
        item = event.item if isinstance(event.item, dict) else {}
        if event.created < self.start or (self.end is not None and event.created >= self.end):
            return False
        name = item.get("event")
        if self.events is not None:
            if name not in self.events:
                return False
        elif name == API_ACCESS or name in self.excluded:
            return False
        if self.user_id is not None and item.get("user_id") != self.user_id:
            return False
        return self.project_id is None or item.get("project_id") == self.project_id


class FakeSnyk:
    """A fake Snyk REST API on 127.0.0.1: `with FakeSnyk() as api: ... api.url ...`.

    Plain attributes tests may change at any time while it serves:
    tokens (accepted tokens), forbidden (org or group ids answered with 403), faults (FIFO of
    `Fault`), requests (`RecordedRequest`s received), next_link_style (one of NEXT_LINK_STYLES),
    foreign_next_link (served once as the next link of the next paged answer), repeat_next_link
    (every paged answer links to itself), empty_last_page (a full last page links to an empty one),
    clock (returns the current time; decides where "yesterday" starts), latency (seconds every
    answer takes, like a live search; answers to concurrent requests are delayed side by side),
    oauth_clients (client id to `OAuthClient`), token_lifetime (seconds an access token lives),
    rate_limits (requests allowed per window of seconds, e.g. `SNYK_RATE_LIMITS`; a request above
    one is answered 429 with `Retry-After`, and counted in `throttled`), repeat_at_page_start
    (every later page of an audit-log search starts with that many items of the page before).
    For tests: issued_tokens (every access token issued), unauthorized (401 answers of /rest),
    peak_in_flight (the most requests it was answering at once).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        latency: float = 0.0,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be 0 or more seconds, not {latency!r}")
        self.latency = latency
        self.tokens: set[str] = set(tokens)
        self.forbidden: set[str] = set()
        self._searches: dict[tuple[Any, ...], list[_StoredEvent]] = {}
        self.rate_limits: dict[int, int] = {}
        self.throttled = 0
        self.repeat_at_page_start = 0
        self.peak_in_flight = 0  # the most requests being answered at once
        self._in_flight = 0
        self._accepted: deque[float] = deque()
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.next_link_style: str = "relative"
        self.foreign_next_link: str | None = None
        self.repeat_next_link: bool = False
        self.empty_last_page: bool = False
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
        self.oauth_clients: dict[str, OAuthClient] = {}
        self.token_lifetime: Any = 3599  # sent as `expires_in` as it is
        self.issued_tokens: list[str] = []
        self.unauthorized = 0
        self._access_tokens: dict[str, float] = {}  # access token -> when it expires (monotonic)
        self._assertion_ids: set[str] = set()
        self._port = port
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._orgs: dict[str, _Org] = {}
        self._groups: dict[str, _Group] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeSnyk:
        """Start serving on 127.0.0.1 in a background thread; return self."""
        if self._server is not None:
            raise RuntimeError("FakeSnyk is already serving")
        self._server = _Server(("127.0.0.1", self._port), self)
        # A short poll interval keeps stop() fast: it waits one interval for the loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-snyk", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeSnyk:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port being served."""
        if self._server is None:
            raise RuntimeError("FakeSnyk is not serving: call start() or use it in a with block")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The origin to configure the tap with, e.g. http://127.0.0.1:54321 (no /rest)."""
        return f"http://127.0.0.1:{self.port}"

    # -- data --------------------------------------------------------------------------------

    def add_org_events(self, org_id: str, events: Iterable[Mapping[str, Any]]) -> None:
        """Add events to an org's audit log (creating the org); may be called while serving."""
        with self._lock:
            self._org(org_id).events.extend(self._stored(events))

    def add_malformed_org_item(self, org_id: str, item: Any, *, at: datetime) -> None:
        """Serve `item` as it is among an org's events, as if created `at` (any JSON value)."""
        with self._lock:
            stored = _StoredEvent(at, next(self._seq), json.loads(json.dumps(item)))
            self._org(org_id).events.append(stored)

    def add_group_events(self, group_id: str, events: Iterable[Mapping[str, Any]]) -> None:
        """Add events to a group's own audit log (creating the group)."""
        with self._lock:
            self._group(group_id).events.extend(self._stored(events))

    def add_group_orgs(self, group_id: str, orgs: Iterable[Mapping[str, Any] | str]) -> None:
        """Put orgs into a group, creating both as needed.

        Each org is an id or a dict with "id" and optionally name, slug, created_at, updated_at.
        """
        with self._lock:
            group = self._group(group_id)
            for given in orgs:
                spec: Mapping[str, Any] = {"id": given} if isinstance(given, str) else given
                org = self._org(str(spec["id"]))
                self._describe(org, spec)
                org.group_id = group_id
                if org.id not in group.org_ids:
                    group.org_ids.append(org.id)

    def add_org(
        self,
        org_id: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        access_requests_enabled: bool | None = None,
        created_at: str | None = None,
        updated_at: str | None = None,
    ) -> None:
        """Create an org or change what /orgs/{org_id} says of it; None keeps the current value.

        Without a name an org is "Org <first 8 characters of its id>"; a name without a slug
        gets a slug made from the name.
        """
        given = {
            "name": name,
            "slug": slug,
            "access_requests_enabled": access_requests_enabled,
            "created_at": created_at,
            "updated_at": updated_at,
        }
        with self._lock:
            self._describe(self._org(org_id), {k: v for k, v in given.items() if v is not None})

    def add_group(self, group_id: str, *, name: str | None = None) -> None:
        """Create a group or rename it (memberships name their group; default "Group <id[:8]>")."""
        with self._lock:
            group = self._group(group_id)
            if name is not None:
                group.name = name

    def add_group_members(self, group_id: str, members: Iterable[Mapping[str, Any]]) -> None:
        """Add members to a group (creating it); a user added again is replaced.

        Each member is a dict with "user_id" and optionally name, username, email, login_method
        (None leaves it out), role (default "Group Member") and created_at.
        """
        parsed = [_Member.parse(spec, "group") for spec in members]
        with self._lock:
            self._group(group_id).members.update((m.user_id, m) for m in parsed)

    def add_org_members(self, org_id: str, members: Iterable[Mapping[str, Any]]) -> None:
        """Add members to an org (creating it); as `add_group_members`, role "Org Collaborator"."""
        parsed = [_Member.parse(spec, "org") for spec in members]
        with self._lock:
            self._org(org_id).members.update((m.user_id, m) for m in parsed)

    def add_org_projects(self, org_id: str, projects: Iterable[Mapping[str, Any]]) -> None:
        """Add projects to an org (creating it); a project added again is replaced.

        Each project is a dict with "id" and optionally any ProjectAttributes of the contract
        (name, type, origin, status, target_reference, target_file, target_runtime, created,
        business_criticality, environment, lifecycle, tags, read_only, settings, build_args;
        None leaves one out), "target_id" and "importer_id" (a user id; without it, no importer).
        """
        resources = [_project_resource(org_id, spec) for spec in projects]
        with self._lock:
            self._org(org_id).projects.update((r["id"], r) for r in resources)

    def add_oauth_client(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        key_id: str | None = None,
    ) -> None:
        """Register a service account: a client secret, or a public key (PEM) and its key id."""
        if (secret is None) == (public_key is None) or (public_key is None) != (key_id is None):
            raise ValueError("an OAuth client has a secret, or a public key and a key id")
        self.oauth_clients[client_id] = OAuthClient(client_id, secret, public_key, key_id)

    def revoke_access_tokens(self) -> int:
        """Revoke every access token issued so far; return how many were live."""
        with self._lock:
            now = time.monotonic()
            live = sum(expires > now for expires in self._access_tokens.values())
            self._access_tokens.clear()
            return live

    @property
    def tokens_issued(self) -> int:
        """How many access tokens the token endpoint issued."""
        return len(self.issued_tokens)

    @property
    def token_requests(self) -> list[RecordedRequest]:
        """The requests received by the token endpoint."""
        with self._lock:
            return [request for request in self.requests if request.path == TOKEN_PATH]

    @property
    def rest_requests(self) -> list[RecordedRequest]:
        """The requests received by the REST API (under /rest)."""
        with self._lock:
            return [request for request in self.requests if request.path.startswith("/rest/")]

    def remove_member(self, user_id: str) -> None:
        """Take a user out of every org and group (someone who left the company)."""
        with self._lock:
            for scope in (*self._orgs.values(), *self._groups.values()):
                scope.members.pop(user_id, None)

    def remove_org_projects(self, org_id: str, project_ids: Iterable[str]) -> None:
        """Delete projects of an org."""
        with self._lock:
            for project_id in project_ids:
                self._org(org_id).projects.pop(project_id, None)

    def reset_requests(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self.requests.clear()

    def _org(self, org_id: str) -> _Org:
        if org_id not in self._orgs:
            short = org_id[:8]
            self._orgs[org_id] = _Org(org_id, name=f"Org {short}", slug=f"org-{short}")
        return self._orgs[org_id]

    def _group(self, group_id: str) -> _Group:
        if group_id not in self._groups:
            self._groups[group_id] = _Group(group_id, name=f"Group {group_id[:8]}")
        return self._groups[group_id]

    @staticmethod
    def _describe(org: _Org, spec: Mapping[str, Any]) -> None:
        for name in ("name", "slug", "access_requests_enabled", "created_at", "updated_at"):
            if name in spec:
                setattr(org, name, spec[name])
        if "name" in spec and "slug" not in spec:
            org.slug = re.sub(r"[^a-z0-9]+", "-", org.name.lower()).strip("-")

    def _stored(self, events: Iterable[Mapping[str, Any]]) -> list[_StoredEvent]:
        stored = []
        for event in events:
            # A JSON round trip: later changes by the test do not leak in, and a value JSON
            # cannot carry fails here rather than in the middle of a response.
            item = json.loads(json.dumps(event))
            try:
                created = parse_rfc3339(item["created"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"an audit-log event needs an RFC3339 'created': {event!r}"
                ) from exc
            stored.append(_StoredEvent(created, next(self._seq), item))
        return stored

    # -- serving (called from handler threads) -----------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _throttle(self) -> _Response | None:
        """A 429 when a request exceeds `rate_limits`, as Snyk answers it; None to serve it."""
        if not self.rate_limits:
            return None
        with self._lock:
            now = time.monotonic()
            longest = max(self.rate_limits)
            while self._accepted and self._accepted[0] <= now - longest:
                self._accepted.popleft()
            for window, limit in sorted(self.rate_limits.items()):
                recent = [moment for moment in self._accepted if moment > now - window]
                if len(recent) >= limit:
                    self.throttled += 1
                    wait = max(1, int(recent[0] + window - now + 0.999))
                    detail = f"more than {limit} requests in {window} s"
                    response = _ApiError(429, detail).response()
                    response.headers.update(
                        {
                            "Retry-After": str(wait),
                            "X-Ratelimit-Limit": ", ".join(
                                f"{n};w={w}" for w, n in sorted(self.rate_limits.items())
                            ),
                        }
                    )
                    return response
            self._accepted.append(now)
        return None

    def _take_fault(self, target: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self.faults):
                if fault.matches(target):
                    if fault.times > 1:
                        # Count down on a copy: the test's own Fault object stays as written.
                        self.faults[index] = replace(fault, times=fault.times - 1)
                    else:
                        del self.faults[index]
                    return fault
        return None

    def _answer(self, method: str, target: str, headers: Message, body: bytes = b"") -> _Response:
        split = urlsplit(target)
        query = parse_qs(split.query, keep_blank_values=True)
        if split.path == TOKEN_PATH:
            try:
                return self._issue_token(method, headers, body)
            except _OAuthError as error:
                return error.response()
            except Exception as exc:  # a bug in the fake must reach the test, as a 500
                return _ApiError(500, f"fake_snyk failed: {exc!r}").response()
        try:
            if not split.path.startswith("/rest/"):
                raise _ApiError(
                    404, f"{split.path} is not a Snyk REST API path (they start with /rest/)"
                )
            self._authenticate(headers.get("Authorization"))
            repeated = sorted(name for name, values in query.items() if len(values) > 1)
            if repeated:
                raise _ApiError(
                    400,
                    f"query parameter {repeated[0]} was given more than once; "
                    "send each parameter once",
                    repeated[0],
                )
            call = _Call(split.path, target, {name: values[0] for name, values in query.items()})
            if (match := _AUDIT_SEARCH.match(split.path)) and method == "GET":
                return self._audit_log_search(match["kind"], match["id"], call)
            if (match := _GROUP_ORGS.match(split.path)) and method == "GET":
                return self._orgs_in_group(match["id"], call)
            if (match := _MEMBERSHIPS.match(split.path)) and method == "GET":
                return self._memberships(match["kind"], match["id"], call)
            if (match := _ORG_PROJECTS.match(split.path)) and method == "GET":
                return self._projects(match["id"], call)
            if (match := _ORG.match(split.path)) and method == "GET":
                return self._organization(match["id"], call)
            if split.path == "/rest/self" and method == "GET":
                return self._self(call)
            raise _ApiError(404, f"{method} {split.path} is not an endpoint of this API")
        except _ApiError as error:
            return error.response()
        except Exception as exc:  # a bug in the fake must reach the test, as a 500
            return _ApiError(500, f"fake_snyk failed: {exc!r}").response()

    def _authenticate(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token in self._access_tokens:
            if self._access_tokens[token] > time.monotonic():
                return
            with self._lock:
                self.unauthorized += 1
            raise _ApiError(401, "the access token has expired: ask /oauth2/token for a new one")
        if scheme.lower() not in ("token", "bearer") or token not in self.tokens:
            with self._lock:
                self.unauthorized += 1
            raise _ApiError(
                401,
                "the Authorization header must be 'token <API token>' or "
                "'bearer <OAuth access token>' with a valid token of this region",
            )

    def _issue_token(self, method: str, headers: Message, body: bytes) -> _Response:
        """`POST /oauth2/token`, grant client_credentials, as Snyk's OAuth 2.0 service accounts."""
        if method != "POST":
            raise _OAuthError(400, "invalid_request", "the token endpoint takes POST only")
        if (headers.get("Content-Type") or "").split(";")[0].strip() != (
            "application/x-www-form-urlencoded"
        ):
            raise _OAuthError(400, "invalid_request", "send the form x-www-form-urlencoded")
        values = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if any(len(value) > 1 for value in values.values()):
            raise _OAuthError(400, "invalid_request", "a parameter was given more than once")
        form = {name: value[0] for name, value in values.items()}
        if form.get("grant_type") != "client_credentials":
            raise _OAuthError(400, "unsupported_grant_type", "only client_credentials is served")
        if "client_assertion" in form or "client_assertion_type" in form:
            client = self._client_of_assertion(form)
        else:
            client = self.oauth_clients.get(form.get("client_id", ""))
            given = form.get("client_secret", "")
            if (
                client is None
                or client.secret is None
                or not hmac.compare_digest(client.secret.encode(), given.encode())
            ):
                raise _OAuthError(401, "invalid_client", "client authentication failed")
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._access_tokens[access_token] = time.monotonic() + _lifetime(self.token_lifetime)
            self.issued_tokens.append(access_token)
        document = {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
            "scope": "",
            "bot_id": uuid_for(f"bot-{client.client_id}"),
        }
        return _Response(200, json.dumps(document).encode(), {"Content-Type": "application/json"})

    def _client_of_assertion(self, form: Mapping[str, str]) -> OAuthClient:
        """The client a private_key_jwt assertion proves, verified as an authorization server."""
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise _OAuthError(
                400, "invalid_request", f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
            )
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claimed = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise _OAuthError(
                401, "invalid_client", f"client_assertion is not a JWT: {error}"
            ) from None
        client = self.oauth_clients.get(str(claimed.get("iss")))
        if client is None or client.public_key is None:
            raise _OAuthError(401, "invalid_client", "unknown client (iss)")
        if header.get("kid") != client.key_id:
            raise _OAuthError(401, "invalid_client", "no key with this kid on the client's JWKS")
        if form.get("client_id", client.client_id) != client.client_id:
            raise _OAuthError(401, "invalid_client", "client_id differs from the assertion's iss")
        try:
            claims = jwt.decode(
                assertion,
                client.public_key,
                algorithms=["RS256"],
                audience=f"{self.url}{TOKEN_PATH}",
                issuer=client.client_id,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            )
        except jwt.PyJWTError as error:
            raise _OAuthError(401, "invalid_client", f"client_assertion refused: {error}") from None
        if claims["sub"] != client.client_id:
            raise _OAuthError(401, "invalid_client", "sub must be the client id")
        if claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME:
            raise _OAuthError(401, "invalid_client", "exp is too far ahead: keep it short")
        with self._lock:
            if claims["jti"] in self._assertion_ids:
                raise _OAuthError(401, "invalid_client", "this assertion (jti) was used before")
            self._assertion_ids.add(claims["jti"])
        return client

    def _check_access(self, kind: str, resource_id: str, exists: bool, permission: str) -> None:
        if resource_id in self.forbidden:
            raise _ApiError(
                403, f"permission denied for {kind} {resource_id}: the token needs {permission}"
            )
        if not exists:
            raise _ApiError(404, f"{kind} {resource_id} was not found")

    def _audit_log_search(self, kind: str, scope_id: str, call: _Call) -> _Response:
        version = _require_version(call.params, AUDIT_LOG_CONTRACT)
        with self._lock:
            scopes: Mapping[str, _Org | _Group] = self._orgs if kind == "orgs" else self._groups
            scope = scopes.get(scope_id)
            permission = "org.audit_log.read" if kind == "orgs" else "group.audit.read"
            self._check_access(kind[:-1], scope_id, scope is not None, permission)
            stored = list(scope.events) if scope is not None else []
        query = _AuditQuery.parse(call.params, self.clock())
        offset = _decode_cursor(call.params, "cursor")
        # Paging re-runs one search page after page; keeping its result makes the fake fast
        # enough for the benchmark (events are only ever added, so a count tells staleness).
        search = (kind, scope_id, replace(query, size=0), len(stored))
        with self._lock:
            matching = self._searches.get(search)
        if matching is None:
            matching = sorted(
                (e for e in stored if query.accepts(e)),
                key=lambda e: (e.created, e.seq),
                reverse=query.descending,
            )
            with self._lock:
                # Several searches page side by side (a tap reading concurrently): keep the
                # latest few, not only the last one.
                self._searches[search] = matching
                while len(self._searches) > _SEARCHES_KEPT:
                    del self._searches[next(iter(self._searches))]
        # A misbehaving server serves the end of the page before again at the start of a page.
        first = max(0, offset - self.repeat_at_page_start) if offset else 0
        page = matching[first : offset + query.size]
        document: dict[str, Any] = {
            "data": {"items": [event.item for event in page], "type": "audit_log_search"},
            "jsonapi": JSONAPI,
        }
        full_last_page = self.empty_last_page and len(page) == query.size
        more = offset + query.size < len(matching) or full_last_page
        links = self._paging_links(call, "cursor", offset + query.size if more else None)
        if links:
            document["links"] = links  # absent, not empty, on the last page
        return _json_response(200, document, _version_headers(version, _SERVED_AUDIT))

    def _orgs_in_group(self, group_id: str, call: _Call) -> _Response:
        version = _require_version(call.params)
        limit = _limit_param(call.params)
        with self._lock:
            group = self._groups.get(group_id)
            self._check_access(
                "group", group_id, group is not None, "group.read and group.org.list"
            )
            orgs = [self._orgs[org_id] for org_id in group.org_ids] if group else []
            resources = [
                org.resource() for org in sorted(orgs, key=lambda o: (o.name.lower(), o.id))
            ]
        return self._listing(call, resources, limit, _version_headers(version, _SERVED_ORGS))

    def _organization(self, org_id: str, call: _Call) -> _Response:
        version = _require_version(call.params)
        with self._lock:
            org = self._orgs.get(org_id)
            self._check_access("org", org_id, org is not None, "org.read")
            resource = org.resource() if org is not None else {}
        document = {"data": resource, "jsonapi": JSONAPI, "links": {"self": call.target}}
        return _json_response(200, document, _version_headers(version, _SERVED_ORGS))

    def _memberships(self, kind: str, scope_id: str, call: _Call) -> _Response:
        version = _require_version(call.params)
        limit = _limit_param(call.params)
        level = kind[:-1]  # "org" or "group"
        with self._lock:
            scopes: Mapping[str, _Org | _Group] = self._orgs if kind == "orgs" else self._groups
            scope = scopes.get(scope_id)
            self._check_access(level, scope_id, scope is not None, f"{level}.membership.read")
            members = list(scope.members.values()) if scope is not None else []
            name = scope.name if scope is not None else ""
        resources = [member.resource(level, scope_id, name) for member in members]
        return self._listing(call, resources, limit, _version_headers(version, _SERVED_MEMBERSHIPS))

    def _projects(self, org_id: str, call: _Call) -> _Response:
        version = _require_version(call.params)
        limit = _limit_param(call.params)
        with self._lock:
            org = self._orgs.get(org_id)
            self._check_access("org", org_id, org is not None, "org.project.read")
            resources = list(org.projects.values()) if org is not None else []
        return self._listing(call, resources, limit, _version_headers(version, _SERVED_PROJECTS))

    def _listing(
        self,
        call: _Call,
        resources: Sequence[dict[str, Any]],
        limit: int,
        headers: Mapping[str, str],
    ) -> _Response:
        """One page of a cursor-paged listing (`limit`, `starting_after`); links.self always."""
        offset = _decode_cursor(call.params, "starting_after")
        page = list(resources[offset : offset + limit])
        full_last_page = self.empty_last_page and len(page) == limit
        more = offset + limit < len(resources) or full_last_page
        links = {"self": self._styled(call.target)}
        links.update(self._paging_links(call, "starting_after", offset + limit if more else None))
        document = {"data": page, "jsonapi": JSONAPI, "links": links}
        return _json_response(200, document, headers)

    def _self(self, call: _Call) -> _Response:
        version = _require_version(call.params)
        document = {
            "data": {
                "id": uuid_for("fake-user"),
                "type": "user",
                "attributes": {
                    "name": "Fake User",
                    "username": "fake",
                    "email": "fake@example.com",
                    "avatar_url": "https://example.com/avatar.png",
                },
            },
            "jsonapi": JSONAPI,
            "links": {"self": call.target},
        }
        return _json_response(200, document, _version_headers(version, _SERVED_SELF))

    def _paging_links(
        self,
        call: _Call,
        cursor_name: str,
        next_offset: int | None,
    ) -> dict[str, Any]:
        with self._lock:
            foreign, self.foreign_next_link = self.foreign_next_link, None
        if foreign is not None:
            return {"next": foreign}
        if self.repeat_next_link:
            return {"next": self._styled(call.target)}
        if next_offset is None:
            return {}
        # Every parameter of the request once, the cursor replaced: following the link as
        # given must never repeat a parameter.
        params = {**call.params, cursor_name: encode_cursor(next_offset)}
        return {"next": self._styled(f"{call.path}?{urlencode(sorted(params.items()), safe=':,')}")}

    def _styled(self, rest_target: str) -> str | dict[str, Any]:
        style = self.next_link_style
        if style == "relative":
            return rest_target
        if style == "object":
            return {"href": rest_target, "meta": {}}
        if style == "absolute":
            return self.url + rest_target
        if style == "no_rest":
            return rest_target.removeprefix("/rest")
        raise ValueError(f"next_link_style must be one of {NEXT_LINK_STYLES}, got {style!r}")


def _version_headers(requested: str, served: str) -> dict[str, str]:
    return {
        "snyk-request-id": str(uuid.uuid4()),
        "snyk-version-requested": requested,
        "snyk-version-served": served,
        "snyk-version-lifecycle-stage": "ga",
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for clients' idle keep-alive connections or for delayed answers.
    block_on_close = False

    def __init__(self, address: tuple[str, int], fake: FakeSnyk) -> None:
        super().__init__(address, _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (read timeout after a delay fault) is expected, not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as a requests.Session expects
    timeout = 30  # an idle keep-alive connection frees its thread eventually
    # Headers and body go out in separate writes: without TCP_NODELAY, delayed ACKs stall every
    # keep-alive answer by about 40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    # Other methods get a JSON:API 404 rather than http.server's HTML 501.
    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read requests from FakeSnyk.requests."""

    def _serve(self) -> None:
        fake = self.server.fake
        with fake._lock:
            fake._in_flight += 1
            fake.peak_in_flight = max(fake.peak_in_flight, fake._in_flight)
        try:
            self._serve_counted()
        finally:
            with fake._lock:
                fake._in_flight -= 1

    def _serve_counted(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""  # read it all: keep-alive needs it
        split = urlsplit(self.path)
        fake._record(
            RecordedRequest(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers=dict(self.headers.items()),
                target=self.path,
                body=body,
                received_at=time.monotonic(),
            )
        )
        throttled = fake._throttle()
        if throttled is not None:
            self._send(throttled)
            return
        if fake.latency > 0:
            # Each connection has its own thread and no lock is held here, so concurrent
            # requests wait side by side, as they would on the live service.
            time.sleep(fake.latency)
        fault = fake._take_fault(self.path)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        if fault is not None and fault.revoke_tokens:
            fake.revoke_access_tokens()
        if fault is not None and fault.reset:
            self.close_connection = True
            return
        if fault is not None and fault.status is not None:
            response = _ApiError(fault.status, "injected fault").response()
        elif fault is not None and fault.not_json:
            page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            response = _Response(200, page, {"Content-Type": "text/html; charset=utf-8"})
        elif fault is not None and fault.body is not None:
            response = _Response(200, fault.body, {"Content-Type": JSONAPI_CONTENT_TYPE})
        else:
            response = fake._answer(self.command, self.path, self.headers, body)
            if fault is not None and fault.truncated_body:
                response.body = response.body[: len(response.body) // 2]
        if fault is not None:
            response.headers.update(fault.headers)
        self._send(response, fault)

    def _send(self, response: _Response, fault: Fault | None = None) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if fault is not None and fault.drip > 0:
            for index in range(len(response.body)):
                self.wfile.write(response.body[index : index + 1])
                self.wfile.flush()
                time.sleep(fault.drip)
            return
        self.wfile.write(response.body)


# -- realistic data -------------------------------------------------------------------------

ContentMaker = Callable[[random.Random, str], "dict[str, Any] | None"]


@dataclass(frozen=True)
class _EventKind:
    name: str
    group_level: bool  # group-level events carry no org_id
    by_user: bool  # system events carry no user_id
    on_project: bool
    content: ContentMaker  # None: the item has no content key at all
    weight: int = 10


_UNICODE_NAMES = ["Zoë Ångström", "José Müller", "李小龙", "Ørjan Ødegård 🚀", 'Zoë "Q" O\'Neil']


def _files_content(rng: random.Random, _: str) -> dict[str, Any]:
    return {
        "files": [
            {"path": f"services/{k}/package.json", "sizeBytes": rng.randint(200, 90000)}
            for k in range(rng.randint(0, 3))
        ],
        "notSupported": {"": rng.randint(1, 3), ".json": rng.randint(100, 5000)},
    }


def _issue_content(rng: random.Random, _: str) -> dict[str, Any]:
    return {
        "issueId": rng.choice(["SNYK-JS-LODASH-567746", "SNYK-PYTHON-REQUESTS-6928867"]),
        "severity": rng.choice(["low", "medium", "high", "critical"]),
        "cvssScore": rng.choice([5.3, 7.5, 9.8]),
        "isFixable": rng.random() < 0.5,
        "ignoreReason": None,
        "packages": ["lodash@4.17.15", "requests@2.31.0"][: rng.randint(1, 2)],
    }


def _test_content(rng: random.Random, _: str) -> dict[str, Any]:
    return {
        "source": rng.choice(["cli", "github", "api"]),
        "targetFile": "package.json",
        "durationMs": rng.randint(80, 60000),
        "passed": rng.random() < 0.7,
    }


def _settings_content(rng: random.Random, _: str) -> dict[str, Any]:
    limit = rng.choice([None, 5, 10])
    return {
        "before": {"pullRequestTestEnabled": False, "autoDepUpgradeLimit": None},
        "after": {"pullRequestTestEnabled": True, "autoDepUpgradeLimit": limit},
    }


def _user_content(rng: random.Random, scope: str) -> dict[str, Any]:
    name = rng.choice(_UNICODE_NAMES)
    return {
        "userPublicId": uuid_for(f"{scope}/member-{rng.randint(0, 9)}"),
        "role": rng.choice(["collaborator", "admin", "Group Admin"]),
        "displayName": name,
        "email": "zoë.ångström@exämple.test",
    }


def _integration_content(rng: random.Random, scope: str) -> dict[str, Any]:
    return {
        "integrationId": uuid_for(f"{scope}/integration"),
        "settings": {
            "autoDepUpgradeIgnoredDependencies": [],
            "pullRequestFailOnAnyVulns": rng.random() < 0.5,
            "dailyReportsEnabled": True,
            "upgradeLimit": rng.randint(1, 10),
        },
    }


def _jira_content(rng: random.Random, _: str) -> dict[str, Any]:
    key = f"SEC-{rng.randint(1, 999)}"
    return {
        "jiraIssue": {"key": key, "url": f"https://jira.example.test/browse/{key}"},
        "issueIds": ["SNYK-JS-LODASH-567746"],
        "labels": ["security", "tëst"],
    }


def _api_access_content(rng: random.Random, scope: str) -> dict[str, Any]:
    return {
        "url": f"/rest/orgs/{scope}/projects?version=2024-10-15&limit=100",
        "method": "GET",
        "userAgent": "snyk-cli/1.1293.0",
        "status": 200,
    }


def _sso_sync_content(rng: random.Random, _: str) -> dict[str, Any]:
    added = rng.randint(0, 40)
    return {
        "provider": "okta",
        "added": added,
        "removed": 0,
        "ratio": round(added / 40, 3),
        "groups": [{"name": "Sécurité", "members": added}],
    }


_EVENT_KINDS = [
    _EventKind("org.project.files.create", False, False, True, _files_content, 14),
    _EventKind("org.project.issue.create", False, False, True, _issue_content, 14),
    _EventKind("org.project.test", False, True, True, _test_content, 12),
    _EventKind("org.project.settings.edit", False, True, True, _settings_content, 6),
    _EventKind("org.user.add", False, True, False, _user_content, 5),
    _EventKind("org.integration.settings.edit", False, True, False, _integration_content, 4),
    _EventKind("org.edit", False, True, False, lambda rng, scope: {}, 3),
    _EventKind("org.project.stop_monitor", False, True, True, lambda rng, scope: None, 2),
    # Names outside every documented list: a tap must not validate `event` against an enum.
    _EventKind("org.project.jira_issue.create", False, True, True, _jira_content, 3),
    _EventKind(
        "org.sbom.export",
        False,
        True,
        True,
        lambda rng, scope: {"format": "cyclonedx1.4+json", "bytes": rng.randint(1, 10**7)},
        3,
    ),
    _EventKind(API_ACCESS, False, True, False, _api_access_content, 2),
    _EventKind("group.user.add", True, True, False, _user_content, 5),
    _EventKind("group.sso.membership.sync", True, False, False, _sso_sync_content, 4),
    _EventKind(
        "group.service_account.secret.rotate",
        True,
        True,
        False,
        lambda rng, scope: {
            "serviceAccountId": uuid_for(f"{scope}/sa"),
            "expiresAt": "2025-01-01T00:00:00Z",
        },
        2,
    ),
]


def make_events(
    count: int,
    *,
    start: datetime,
    org_id: str | None = None,
    group_id: str | None = None,
    seed: int = 0,
    step_ms: int = 60_000,
) -> list[dict[str, Any]]:
    """Return `count` audit-log items in ascending `created` order, deterministic for a seed.

    Shaped like the live service on purpose: runs of several events sharing one millisecond (one
    run of at least four is guaranteed when count >= 4), system events without user_id, events
    without project_id, event names outside the documented lists, an occasional api.access event,
    content with nested objects, lists, unicode, an empty-string key, floats, ints, booleans,
    null, an empty object, and one kind with no content at all. With org_id the items are an
    org's log; with group_id (and no org_id) a group's log, where group-level events carry no
    org_id and org-level ones name one of three orgs. `step_ms` is the mean gap between distinct
    timestamps (0: all share `start`); with count >= 20 every kind of event appears at least once.
    """
    rng = random.Random(seed)
    scope = org_id or group_id or "fake"
    group_log = group_id is not None and org_id is None
    kinds = [k for k in _EVENT_KINDS if group_log or not k.group_level]
    sequence = kinds[:]  # each kind once, then weighted picks; shuffled together
    sequence += rng.choices(kinds, weights=[k.weight for k in kinds], k=max(0, count - len(kinds)))
    rng.shuffle(sequence)
    sequence = sequence[:count]
    users = [uuid_for(f"user-{k}") for k in range(4)]
    projects = [uuid_for(f"{scope}/project-{k}") for k in range(5)]
    group_orgs = [uuid_for(f"{scope}/org-{k}") for k in range(3)]
    moment = start if start.tzinfo is not None else start.replace(tzinfo=timezone.utc)
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    stamps: list[str] = []
    forced_run = count < 4
    while len(stamps) < count:
        run = rng.choice([1, 1, 1, 1, 2, 3, 5])  # mean 2 events per timestamp
        if not forced_run and len(stamps) >= count // 3:
            run, forced_run = max(run, 4), True
        stamps += [format_created(moment)] * min(run, count - len(stamps))
        moment += timedelta(milliseconds=rng.randint(1, 2 * step_ms - 1) if step_ms > 0 else 0)
    items = []
    for kind, created in zip(sequence, stamps, strict=True):
        item: dict[str, Any] = {"created": created, "event": kind.name}
        content = kind.content(rng, scope)
        if content is not None:
            item["content"] = content
        if group_id is not None:
            item["group_id"] = group_id
        owner = org_id or (rng.choice(group_orgs) if group_log else None)
        if owner is not None and not kind.group_level:
            item["org_id"] = owner
        if kind.on_project and rng.random() < 0.9:
            item["project_id"] = rng.choice(projects)
        if kind.by_user:
            item["user_id"] = rng.choice(users)
        items.append(dict(sorted(item.items())))  # the live service sends keys sorted
    return items


# The users of make_events: (name, username, email, login_method); the same user everywhere.
_USERS = (
    ("Ada Lovelace", "ada.lovelace", "ada.lovelace@example.com", "saml"),
    ("Grace Hopper", "ghopper", "grace.hopper@example.com", "github"),
    ("José Müller", "jose.muller", "jose.muller@example.com", "google"),
    # Service-account-like: a bot, no login method.
    ("CI Service Account", "snyk-ci-bot", "snyk-ci-bot@service.example.com", None),
)
_ROLES = {  # level: (admin, member, the service account's)
    "org": ("Org Admin", "Org Collaborator", "Org Collaborator"),
    "group": ("Group Admin", "Group Member", "Group Viewer"),
}


def make_members(scope_id: str, *, seed: int = 0, level: str = "org") -> list[dict[str, Any]]:
    """Return the four users of `make_events` (user-0..user-3) as members of an org or a group.

    For `add_org_members` (level "org": roles Org Admin / Org Collaborator) or
    `add_group_members` (level "group": Group Admin / Group Member / Group Viewer). A user has
    the same name, username and email in every scope; roles and join dates vary with the scope
    and the seed, with at least one admin and one non-admin. user-3 is a service account
    without a login method.
    """
    if level not in _ROLES:
        raise ValueError(f"level must be 'org' or 'group', got {level!r}")
    admin, member, service = _ROLES[level]
    rng = random.Random(f"{scope_id}/{seed}")
    first_admin = rng.randrange(3)
    joined = datetime(2023, 1, 2, 9, tzinfo=timezone.utc)
    members = []
    for k, (name, username, email, login_method) in enumerate(_USERS):
        role = service if login_method is None else member
        if k == first_admin or (k != 3 and k != (first_admin + 1) % 3 and rng.random() < 0.5):
            role = admin
        joined += timedelta(days=rng.randint(1, 120), seconds=rng.randint(0, 86399))
        members.append(
            {
                "user_id": uuid_for(f"user-{k}"),
                "name": name,
                "username": username,
                "email": email,
                "login_method": login_method,
                "role": role,
                "created_at": joined.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return members


# The projects of make_events, project-0..project-4: (repository, type, target file, origin).
_PROJECTS = (
    ("web-shop", "npm", "package.json", "github"),
    ("payments-api", "maven", "pom.xml", "github"),
    ("ml-pipeline", "pip", "requirements.txt", "cli"),
    ("web-shop", "sast", "", "github"),  # code analysis scans the whole repository
    ("payments-api", "dockerfile", "Dockerfile", "github"),
)


def make_projects(org_id: str, *, seed: int = 0) -> list[dict[str, Any]]:
    """Return the five projects `make_events` names in an org's log, for `add_org_projects`.

    Realistic names ("acme/web-shop:package.json"), types npm, maven, pip, sast, dockerfile,
    origins github and cli, creation times, tags (one with a non-ASCII value), business
    attributes, settings, the target and the importing user (the CLI project: the service
    account). The repository owner, dates, tags and settings vary with the seed.
    """
    rng = random.Random(f"{org_id}/{seed}")
    owner = rng.choice(["acme", "globex", "initech"])
    created = datetime(2023, 3, 1, 8, tzinfo=timezone.utc)
    projects = []
    for k, (repo, kind, target_file, origin) in enumerate(_PROJECTS):
        created += timedelta(days=rng.randint(1, 60), milliseconds=rng.randint(0, 86_399_999))
        from_github = origin == "github"
        name = f"{owner}/{repo}" if from_github else repo
        if target_file:
            name += f":{target_file}"
        pull_requests: dict[str, Any] = {}  # CLI projects get no pull requests: inherited
        if from_github:
            pull_requests = {
                "is_enabled": True,
                "fail_only_for_issues_with_fix": rng.random() < 0.5,
                "policy": rng.choice(["all", "only_new"]),
                "severity_threshold": rng.choice(["medium", "high", "critical"]),
            }
        settings: dict[str, Any] = {
            "recurring_tests": {
                "frequency": rng.choice(["daily", "weekly"]) if from_github else "never"
            },
            "pull_requests": pull_requests,
        }
        if kind == "npm":
            settings["auto_dependency_upgrade"] = {
                "is_enabled": True,
                "ignored_dependencies": ["typescript"],
                "limit": rng.randint(1, 10),
            }
        tags = [{"key": "team", "value": "payments" if "payments" in repo else "storefront"}]
        if rng.random() < 0.5:
            tags.append({"key": "owner", "value": "sécurité"})
        projects.append(
            {
                "id": uuid_for(f"{org_id}/project-{k}"),
                "name": name,
                "type": kind,
                "origin": origin,
                "status": "inactive" if k == 4 else "active",
                "target_reference": "main" if from_github else "release/2024.05",
                "target_file": target_file,
                "created": format_created(created),
                "business_criticality": [rng.choice(["critical", "high", "medium", "low"])],
                "environment": ["backend", "external"] if "api" in repo else ["frontend"],
                "lifecycle": ["production"] if k != 2 else ["development"],
                "tags": tags,
                "read_only": False,
                "settings": settings,
                "target_id": uuid_for(f"{org_id}/target/{owner}/{repo}"),
                "importer_id": uuid_for("user-3" if origin == "cli" else f"user-{k % 3}"),
            }
        )
    return projects


# -- demo -------------------------------------------------------------------------------------

_DEMO_GROUP_NAMES = ("Acme Corp", "Globex", "Initech")
_DEMO_ORG_NAMES = ("Payments", "Storefront", "Data Platform", "Mobile", "Security Tools")


def _demo_name(names: Sequence[str], index: int) -> str:
    name = names[index % len(names)]
    return name if index < len(names) else f"{name} {index // len(names) + 1}"


def seed_demo_data(
    api: FakeSnyk,
    *,
    orgs: int,
    groups: int,
    events: int,
    now: datetime,
) -> tuple[list[str], list[str]]:
    """Fill `api` with demo data; return (org_ids, group_ids).

    Orgs, with readable names, are spread over the groups; every org and every group gets
    `events` events spanning the past three days, well inside a default 90-day start date, and
    the members those events name; every org gets the projects its events name.
    """
    group_ids = [uuid_for(f"demo-group-{g}") for g in range(groups)]
    org_ids = [uuid_for(f"demo-org-{o}") for o in range(orgs)]
    start = now - timedelta(days=3)
    step_ms = max(1, int(timedelta(days=2.5) / timedelta(milliseconds=1) / max(1, events / 2)))
    for g, group_id in enumerate(group_ids):
        api.add_group(group_id, name=_demo_name(_DEMO_GROUP_NAMES, g))
        api.add_group_orgs(
            group_id, [org_id for o, org_id in enumerate(org_ids) if o % groups == g]
        )
        api.add_group_members(group_id, make_members(group_id, seed=g, level="group"))
        api.add_group_events(
            group_id,
            make_events(events, start=start, group_id=group_id, seed=1000 + g, step_ms=step_ms),
        )
    for o, org_id in enumerate(org_ids):
        api.add_org(org_id, name=_demo_name(_DEMO_ORG_NAMES, o))
        api.add_org_members(org_id, make_members(org_id, seed=o))
        api.add_org_projects(org_id, make_projects(org_id, seed=o))
        parent = group_ids[o % groups] if groups else None
        api.add_org_events(
            org_id,
            make_events(
                events, start=start, org_id=org_id, group_id=parent, seed=o, step_ms=step_ms
            ),
        )
    return org_ids, group_ids


def main(argv: Sequence[str] | None = None) -> int:
    """Serve demo data until Ctrl-C, or run the command after `--` against it."""
    args = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args:
        args, command = args[: args.index("--")], args[args.index("--") + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_snyk",
        description="Serve a fake Snyk audit-log API with demo data. "
        "With `-- COMMAND ...`, run COMMAND with TAP_SNYK_* set, then stop.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--orgs", type=int, default=2, help="number of orgs")
    parser.add_argument("--groups", type=int, default=1, help="number of groups")
    parser.add_argument("--events", type=int, default=500, help="events per org and per group")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds every answer takes, e.g. 0.15 for a live-like audit search (default 0)",
    )
    parser.add_argument(
        "--oauth",
        action="store_true",
        help="hand the command an OAuth service account (TAP_SNYK_CLIENT_ID and "
        "TAP_SNYK_CLIENT_SECRET) rather than an API token",
    )
    parser.add_argument(
        "--token-lifetime",
        type=int,
        default=3599,
        metavar="SECONDS",
        help="seconds an OAuth access token lives (default 3599, as Snyk's)",
    )
    options = parser.parse_args(args)
    if options.latency < 0:
        parser.error("--latency must be 0 or more seconds")
    if options.token_lifetime < 1:
        parser.error("--token-lifetime must be 1 or more seconds")
    api = FakeSnyk(port=options.port, latency=options.latency)
    api.token_lifetime = options.token_lifetime
    try:
        api.start()
    except OSError as error:
        print(
            f"cannot serve on 127.0.0.1:{options.port} ({error}): pick another --port",
            file=sys.stderr,
        )
        return 2
    with api:
        # Anchored to the start of the day (UTC), so that runs on one day see the same events.
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        org_ids, group_ids = seed_demo_data(
            api,
            orgs=options.orgs,
            groups=options.groups,
            events=options.events,
            now=today,
        )
        env = {
            "TAP_SNYK_API_URL": api.url,
            "TAP_SNYK_API_TOKEN": DEFAULT_TOKEN,
            "TAP_SNYK_ORG_IDS": json.dumps(org_ids),
            "TAP_SNYK_GROUP_IDS": json.dumps(group_ids),
        }
        if options.oauth:
            api.add_oauth_client(DEMO_CLIENT_ID, secret=DEMO_CLIENT_SECRET)
            env.update(
                TAP_SNYK_API_TOKEN="",  # one way to authenticate only
                TAP_SNYK_CLIENT_ID=DEMO_CLIENT_ID,
                TAP_SNYK_CLIENT_SECRET=DEMO_CLIENT_SECRET,
            )
        for name, value in env.items():
            print(f"{name}={value}", file=sys.stderr)
        try:
            if command:
                return subprocess.run(command, env={**os.environ, **env}, check=False).returncode
            print("fake Snyk API serving; Ctrl-C stops it", file=sys.stderr)
            while True:
                time.sleep(3600)
        except FileNotFoundError as exc:
            print(f"cannot run {command[0]!r}: {exc}", file=sys.stderr)
            return 127
        except KeyboardInterrupt:
            return 130 if command else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The fake Snyk REST API's server: `FakeSnyk`, real HTTP on 127.0.0.1 in a background thread.

It routes each request to its endpoint (the org and group audit-log searches, the orgs of a group,
one org, the memberships of an org or a group, the projects of an org, `/self`, and the OAuth
token endpoint), records every request it receives, and applies, before normal handling, the rate
limits, the latency and the injected faults a test asked for. The data it serves is its `Store`.
"""

from __future__ import annotations

import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fake_snyk.audit_logs import AUDIT_LOG_CONTRACT, AuditQuery, RecentSearches
from fake_snyk.data import uuid_for
from fake_snyk.faults import Fault, take_fault
from fake_snyk.jsonapi import (
    JSONAPI,
    ApiError,
    Call,
    Response,
    decode_cursor,
    encode_cursor,
    json_response,
    limit_param,
    require_version,
    styled_link,
    version_headers,
)
from fake_snyk.limits import SlidingWindows
from fake_snyk.oauth import TOKEN_PATH, OAuthClient, TokenServer
from fake_snyk.store import Group, Org, Store

DEFAULT_TOKEN = "test-token"  # noqa: S105 (the fake's own, accepted nowhere else)
_AUDIT_SEARCH = re.compile(r"^/rest/(?P<kind>orgs|groups)/(?P<id>[^/]+)/audit_logs/search$")
_GROUP_ORGS = re.compile(r"^/rest/groups/(?P<id>[^/]+)/orgs$")
_ORG = re.compile(r"^/rest/orgs/(?P<id>[^/]+)$")
_MEMBERSHIPS = re.compile(r"^/rest/(?P<kind>orgs|groups)/(?P<id>[^/]+)/memberships$")
_ORG_PROJECTS = re.compile(r"^/rest/orgs/(?P<id>[^/]+)/projects$")
_SCOPE = re.compile(r"^/rest/(?:orgs|groups)/(?P<id>[^/?]+)")
# The version each endpoint serves, for the snyk-version-served header the contract declares.
_SERVED_AUDIT, _SERVED_ORGS, _SERVED_SELF = "2024-04-29", "2024-02-28", "2024-04-22"
_SERVED_MEMBERSHIPS, _SERVED_PROJECTS = "2024-08-25", "2024-05-31"


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


class FakeSnyk(Store):
    """A fake Snyk REST API on 127.0.0.1: `with FakeSnyk() as api: ... api.url ...`.

    Plain attributes tests may change at any time while it serves:
    tokens (accepted tokens), forbidden (org or group ids answered with 403), faults (FIFO of
    `Fault`), requests (`RecordedRequest`s received), next_link_style (one of NEXT_LINK_STYLES),
    foreign_next_link (served once as the next link of the next paged answer), repeat_next_link
    (every paged answer links to itself), empty_last_page (a full last page links to an empty one),
    clock (returns the current time; decides where "yesterday" starts), latency (seconds every
    answer takes, like a live search; answers to concurrent requests are delayed side by side),
    scope_latency (org or group id to the (fewest, most) seconds each answer about it takes, drawn
    evenly, in place of `latency`: one slow org among fast ones),
    oauth_clients (client id to `OAuthClient`), token_lifetime (seconds an access token lives),
    rate_limits (requests allowed per window of seconds, e.g. `SNYK_RATE_LIMITS`; a request above
    one is answered 429 with `Retry-After`, and counted in `throttled`), repeat_at_page_start
    (every later page of an audit-log search starts with that many items of the page before).
    For tests: issued_tokens (every access token issued), unauthorized (401 answers of /rest),
    peak_in_flight (the most requests it was answering at once).
    The data it serves is added with the methods of `Store` (`add_org_events`, ...).
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
        super().__init__()
        self.latency = latency
        self.scope_latency: dict[str, tuple[float, float]] = {}
        self.tokens: set[str] = set(tokens)
        self.forbidden: set[str] = set()
        self._searches = RecentSearches()
        self.rate_limits: dict[int, int] = {}
        self.throttled = 0
        self.repeat_at_page_start = 0
        self.peak_in_flight = 0  # the most requests being answered at once
        self._in_flight = 0
        self._admitted = SlidingWindows()
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.next_link_style: str = "relative"
        self.foreign_next_link: str | None = None
        self.repeat_next_link: bool = False
        self.empty_last_page: bool = False
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
        self._oauth = TokenServer()
        self.unauthorized = 0
        self._port = port
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

    # -- OAuth service accounts (the token endpoint's) -----------------------------------------

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

    @property
    def oauth_clients(self) -> dict[str, OAuthClient]:
        """The service accounts registered, by client id."""
        return self._oauth.clients

    @property
    def token_lifetime(self) -> Any:
        """Seconds an access token lives, sent as `expires_in` as it is (tests send odd ones)."""
        return self._oauth.lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: Any) -> None:
        self._oauth.lifetime = seconds

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token the token endpoint issued."""
        return self._oauth.issued

    def revoke_access_tokens(self) -> int:
        """Revoke every access token issued so far; return how many were live."""
        return self._oauth.revoke()

    @property
    def tokens_issued(self) -> int:
        """How many access tokens the token endpoint issued."""
        return len(self.issued_tokens)

    # -- requests received -------------------------------------------------------------------

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

    def reset_requests(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self.requests.clear()

    # -- serving (called from handler threads) -----------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _throttle(self) -> Response | None:
        """A 429 when a request exceeds `rate_limits`, as Snyk answers it; None to serve it."""
        if not self.rate_limits:
            return None
        with self._lock:
            refusal = self._admitted.refuse(self.rate_limits, time.monotonic())
            if refusal is not None:
                self.throttled += 1
            return refusal

    def _latency(self, path: str) -> float:
        """Seconds the answer to a request takes: its org's or group's own, else `latency`."""
        scope = _SCOPE.match(path)
        fewest_most = self.scope_latency.get(scope["id"]) if scope else None
        if fewest_most is None:
            return self.latency
        return random.uniform(*fewest_most)  # noqa: S311 (a delay, not a secret)

    def _take_fault(self, target: str) -> Fault | None:
        with self._lock:
            return take_fault(self.faults, target)

    def _answer(self, method: str, target: str, headers: Message, body: bytes = b"") -> Response:
        split = urlsplit(target)
        query = parse_qs(split.query, keep_blank_values=True)
        if split.path == TOKEN_PATH:
            try:
                return self._oauth.answer(method, headers, body, audience=self.url + TOKEN_PATH)
            except Exception as exc:  # a bug in the fake must reach the test, as a 500
                return ApiError(500, f"fake_snyk failed: {exc!r}").response()
        try:
            if not split.path.startswith("/rest/"):
                raise ApiError(
                    404, f"{split.path} is not a Snyk REST API path (they start with /rest/)"
                )
            self._authenticate(headers.get("Authorization"))
            repeated = sorted(name for name, values in query.items() if len(values) > 1)
            if repeated:
                raise ApiError(
                    400,
                    f"query parameter {repeated[0]} was given more than once; "
                    "send each parameter once",
                    repeated[0],
                )
            call = Call(split.path, target, {name: values[0] for name, values in query.items()})
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
            raise ApiError(404, f"{method} {split.path} is not an endpoint of this API")
        except ApiError as error:
            return error.response()
        except Exception as exc:  # a bug in the fake must reach the test, as a 500
            return ApiError(500, f"fake_snyk failed: {exc!r}").response()

    def _authenticate(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        expires = self._oauth.expires_at(token) if scheme.lower() == "bearer" else None
        if expires is not None:
            if expires > time.monotonic():
                return
            with self._lock:
                self.unauthorized += 1
            raise ApiError(401, "the access token has expired: ask /oauth2/token for a new one")
        if scheme.lower() not in ("token", "bearer") or token not in self.tokens:
            with self._lock:
                self.unauthorized += 1
            raise ApiError(
                401,
                "the Authorization header must be 'token <API token>' or "
                "'bearer <OAuth access token>' with a valid token of this region",
            )

    def _check_access(self, kind: str, resource_id: str, exists: bool, permission: str) -> None:
        if resource_id in self.forbidden:
            raise ApiError(
                403, f"permission denied for {kind} {resource_id}: the token needs {permission}"
            )
        if not exists:
            raise ApiError(404, f"{kind} {resource_id} was not found")

    def _audit_log_search(self, kind: str, scope_id: str, call: Call) -> Response:
        version = require_version(call.params, AUDIT_LOG_CONTRACT)
        with self._lock:
            scopes: Mapping[str, Org | Group] = self._orgs if kind == "orgs" else self._groups
            scope = scopes.get(scope_id)
            permission = "org.audit_log.read" if kind == "orgs" else "group.audit.read"
            self._check_access(kind[:-1], scope_id, scope is not None, permission)
            stored = list(scope.events) if scope is not None else []
        query = AuditQuery.parse(call.params, self.clock())
        offset = decode_cursor(call.params, "cursor")
        matching = self._searches.matching((kind, scope_id), query, stored)
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
        return json_response(200, document, version_headers(version, _SERVED_AUDIT))

    def _orgs_in_group(self, group_id: str, call: Call) -> Response:
        version = require_version(call.params)
        limit = limit_param(call.params)
        with self._lock:
            group = self._groups.get(group_id)
            self._check_access(
                "group", group_id, group is not None, "group.read and group.org.list"
            )
            orgs = [self._orgs[org_id] for org_id in group.org_ids] if group else []
            resources = [
                org.resource() for org in sorted(orgs, key=lambda o: (o.name.lower(), o.id))
            ]
        return self._listing(call, resources, limit, version_headers(version, _SERVED_ORGS))

    def _organization(self, org_id: str, call: Call) -> Response:
        version = require_version(call.params)
        with self._lock:
            org = self._orgs.get(org_id)
            self._check_access("org", org_id, org is not None, "org.read")
            resource = org.resource() if org is not None else {}
        document = {"data": resource, "jsonapi": JSONAPI, "links": {"self": call.target}}
        return json_response(200, document, version_headers(version, _SERVED_ORGS))

    def _memberships(self, kind: str, scope_id: str, call: Call) -> Response:
        version = require_version(call.params)
        limit = limit_param(call.params)
        level = kind[:-1]  # "org" or "group"
        with self._lock:
            scopes: Mapping[str, Org | Group] = self._orgs if kind == "orgs" else self._groups
            scope = scopes.get(scope_id)
            self._check_access(level, scope_id, scope is not None, f"{level}.membership.read")
            members = list(scope.members.values()) if scope is not None else []
            name = scope.name if scope is not None else ""
        resources = [member.resource(level, scope_id, name) for member in members]
        return self._listing(call, resources, limit, version_headers(version, _SERVED_MEMBERSHIPS))

    def _projects(self, org_id: str, call: Call) -> Response:
        version = require_version(call.params)
        limit = limit_param(call.params)
        with self._lock:
            org = self._orgs.get(org_id)
            self._check_access("org", org_id, org is not None, "org.project.read")
            resources = list(org.projects.values()) if org is not None else []
        return self._listing(call, resources, limit, version_headers(version, _SERVED_PROJECTS))

    def _listing(
        self,
        call: Call,
        resources: Sequence[dict[str, Any]],
        limit: int,
        headers: Mapping[str, str],
    ) -> Response:
        """One page of a cursor-paged listing (`limit`, `starting_after`); links.self always."""
        offset = decode_cursor(call.params, "starting_after")
        page = list(resources[offset : offset + limit])
        full_last_page = self.empty_last_page and len(page) == limit
        more = offset + limit < len(resources) or full_last_page
        links = {"self": self._styled(call.target)}
        links.update(self._paging_links(call, "starting_after", offset + limit if more else None))
        document = {"data": page, "jsonapi": JSONAPI, "links": links}
        return json_response(200, document, headers)

    def _self(self, call: Call) -> Response:
        version = require_version(call.params)
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
        return json_response(200, document, version_headers(version, _SERVED_SELF))

    def _paging_links(
        self,
        call: Call,
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
        return styled_link(rest_target, style, self.url if style == "absolute" else "")


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
        if (latency := fake._latency(split.path)) > 0:
            # Each connection has its own thread and no lock is held here, so concurrent
            # requests wait side by side, as they would on the live service.
            time.sleep(latency)
        fault = fake._take_fault(self.path)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        if fault is not None and fault.revoke_tokens:
            fake.revoke_access_tokens()
        if fault is not None and fault.reset:
            self.close_connection = True
            return
        response = fault.replacement() if fault is not None else None
        if response is None:
            response = fake._answer(self.command, self.path, self.headers, body)
            if fault is not None and fault.truncated_body:
                response.body = response.body[: len(response.body) // 2]
        if fault is not None:
            response.headers.update(fault.headers)
        self._send(response, fault)

    def _send(self, response: Response, fault: Fault | None = None) -> None:
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

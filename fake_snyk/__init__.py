"""A fake Snyk REST API for tap-snyk: real HTTP on 127.0.0.1, for tests, demos and benchmarks.

Standard library only, but for PyJWT (a dependency of the tap) to verify OAuth client assertions.
Start it from any folder with `fake-snyk` (see `fake_snyk.cli`), or in Python:

    with FakeSnyk() as api:
        api.add_org_events(uuid_for("org-a"), make_events(100, start=..., org_id=...))
        ... api.url, DEFAULT_TOKEN ...

What lives where:
- `server`: `FakeSnyk`, the server: routing, recorded requests, latency, faults, rate limits.
- `store`: the orgs, groups, events, members and projects it serves, as tests give them.
- `jsonapi`: the contract every endpoint keeps: parameters, versions, cursors, errors, links.
- `audit_logs`: the audit-log search (contract 2024-04-29): its filters and sort order.
- `oauth`: the token endpoint `POST /oauth2/token` and its service accounts (`OAuthClient`).
- `limits`: rate limits per token and their 429s (`SNYK_RATE_LIMITS`).
- `faults`: injected failures (`Fault`).
- `data`: deterministic ids and realistic events, members and projects (`make_events`, ...).
- `demo` and `cli`: the demo data and the `fake-snyk` command that serves it.

The fake reproduces what clients observed on the live service, not only what the contract
promises: `sort_order` defaults to DESC, a missing `from` means "since the start of yesterday",
`api.access` events are hidden unless asked for, a repeated query parameter is a 400, next links
are relative paths under /rest that repeat every parameter, and the last page has no `links`.
"""

from __future__ import annotations

from fake_snyk.audit_logs import API_ACCESS, AUDIT_LOG_CONTRACT, start_of_yesterday
from fake_snyk.data import make_events, make_members, make_projects, uuid_for
from fake_snyk.demo import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, seed_demo_data
from fake_snyk.faults import Fault
from fake_snyk.jsonapi import (
    JSONAPI,
    JSONAPI_CONTENT_TYPE,
    NEXT_LINK_STYLES,
    encode_cursor,
    error_document,
    format_created,
    parse_rfc3339,
)
from fake_snyk.limits import SNYK_RATE_LIMITS
from fake_snyk.oauth import CLIENT_ASSERTION_TYPE, MAX_ASSERTION_LIFETIME, TOKEN_PATH, OAuthClient
from fake_snyk.server import DEFAULT_TOKEN, FakeSnyk, RecordedRequest

__all__ = [
    "API_ACCESS",
    "AUDIT_LOG_CONTRACT",
    "CLIENT_ASSERTION_TYPE",
    "DEFAULT_TOKEN",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "JSONAPI",
    "JSONAPI_CONTENT_TYPE",
    "MAX_ASSERTION_LIFETIME",
    "NEXT_LINK_STYLES",
    "SNYK_RATE_LIMITS",
    "TOKEN_PATH",
    "FakeSnyk",
    "Fault",
    "OAuthClient",
    "RecordedRequest",
    "encode_cursor",
    "error_document",
    "format_created",
    "make_events",
    "make_members",
    "make_projects",
    "parse_rfc3339",
    "seed_demo_data",
    "start_of_yesterday",
    "uuid_for",
]

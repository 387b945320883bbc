"""The connection check (`tap-snyk --test`): the credentials, then access to each org and group.

It asks for one page of every selected stream in every partition and writes no Singer message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tap_snyk.errors import SnykError, SnykRefusal
from tap_snyk.streams import ScopedStream, SelfStream

if TYPE_CHECKING:
    from tap_snyk.tap import TapSnyk


@dataclass(frozen=True)
class Finding:
    """What the check found for one thing it tried.

    `ok` False fails the check; a `warning` is a lookup the sync would skip, not fail on.
    """

    subject: str
    ok: bool
    detail: str
    warning: bool = False


def check_connection(tap: TapSnyk) -> list[Finding]:
    """Check the credentials, then every org and group the settings name (or discover)."""
    credentials = tap.credentials
    subject = "the API token" if credentials.client_id is None else "the OAuth service account"
    try:
        # An access token first: refused client credentials need no REST request to tell.
        obtained = credentials.obtain()
        user = next(iter(SelfStream(tap=tap).request_records(None)), {})
    except SnykError as error:
        return [Finding(subject, ok=False, detail=str(error))]
    attributes = user.get("attributes") or {}
    who = attributes.get("name") or attributes.get("username") or user.get("id") or "unknown"
    detail = f"valid at {tap.settings.api_origin}, for {who}"
    if obtained:
        detail = f"{credentials.describe()}: {obtained}; {detail}"
    findings = [Finding(subject, ok=True, detail=detail)]

    try:
        scope = tap.resolve_scope()
    except SnykError as error:  # listing the orgs of a group failed, and not by a refusal
        return [*findings, Finding("the groups' organizations", ok=False, detail=str(error))]
    for group_id, refusal in scope.refused.items():
        # As the sync judges it: lost orgs with `discover_orgs`, else a skipped lookup.
        skipped = not scope.discover_orgs
        detail = f"listing its organizations: {refusal}" + (
            " (the sync skips it in organizations)" if skipped else ""
        )
        findings.append(Finding(f"group {group_id}", ok=skipped, detail=detail, warning=skipped))

    for stream in tap.streams.values():
        if not isinstance(stream, ScopedStream) or not stream.selected or stream.partitions is None:
            continue
        for context in stream.partitions:
            subject = stream.subject.format(**context)
            try:
                next(iter(stream.request_records(context)), None)
            except SnykRefusal as refusal:
                skipped = stream.may_skip(context, refusal)
                detail = f"{stream.name}: {refusal}" + (" (the sync skips it)" if skipped else "")
                findings.append(Finding(subject, ok=skipped, detail=detail, warning=skipped))
            except SnykError as error:
                findings.append(Finding(subject, ok=False, detail=f"{stream.name}: {error}"))
            else:
                detail = f"{stream.name} readable ({stream.required_permission})"
                findings.append(Finding(subject, ok=True, detail=detail))
    return findings

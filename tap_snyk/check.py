"""The connection check (`tap-snyk --test`): the credentials, then access to each org and group.

It asks for one page of every selected stream in every partition and writes no Singer message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tap_snyk.errors import SnykError, SnykRefusal

if TYPE_CHECKING:
    from tap_snyk.run import RunContext
    from tap_snyk.stream import SnykStream


@dataclass(frozen=True)
class Finding:
    """What the check found for one thing it tried.

    `ok` False fails the check; a `warning` is a lookup the sync would skip, not fail on.
    """

    subject: str
    ok: bool
    detail: str
    warning: bool = False


def check_connection(
    run: RunContext, streams: Iterable[SnykStream], *, need_listings: bool
) -> list[Finding]:
    """Check the credentials, then every org and group the settings name (or discover).

    `streams`: the selected streams; `need_listings` as for `RunContext.resolve_scope`.
    """
    api = run.api
    credentials = api.credentials
    subject = "the API token" if credentials.client_id is None else "the OAuth service account"
    try:
        # An access token first: refused client credentials need no REST request to tell.
        obtained = credentials.obtain()
        user = api.whoami()
    except SnykError as error:
        return [Finding(subject, ok=False, detail=str(error))]
    attributes = user.get("attributes") or {}
    who = attributes.get("name") or attributes.get("username") or user.get("id") or "unknown"
    detail = f"valid at {api.origin}, for {who}"
    if obtained:
        detail = f"{credentials.describe()}: {obtained}; {detail}"
    findings = [Finding(subject, ok=True, detail=detail)]

    try:
        scope = run.resolve_scope(need_listings=need_listings)
    except SnykError as error:  # listing the orgs of a group failed, and not by a refusal
        return [*findings, Finding("the groups' organizations", ok=False, detail=str(error))]
    for group_id, refusal in scope.refused.items():
        # As the sync judges it: lost orgs with `discover_orgs`, else a skipped lookup.
        skipped = not scope.discover_orgs
        detail = f"listing its organizations: {refusal}" + (
            " (the sync skips it in organizations)" if skipped else ""
        )
        findings.append(Finding(f"group {group_id}", ok=skipped, detail=detail, warning=skipped))

    for stream in streams:
        for context in stream.partitions or ():
            subject = stream.partitioning.of(context)
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

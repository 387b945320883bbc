"""Audit-log items as records: one timestamp format, the partition's id, a stable `event_id`."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from tap_snyk.settings import rfc3339

#: The fields of an audit-log item (Panther's Snyk.OrgAudit / Snyk.GroupAudit, in snake_case).
AUDIT_FIELDS = ("created", "event", "org_id", "group_id", "user_id", "project_id", "content")


def parse_timestamp(value: str) -> datetime:
    """An RFC3339 timestamp as an aware datetime (a missing offset means UTC)."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class MalformedItem(ValueError):
    """An audit-log item the tap cannot read; the message says what is wrong with it."""


def normalized_item(item: object, partition: Mapping[str, str]) -> dict[str, Any]:
    """An audit-log item read for `partition` (e.g. {"org_id": …}), every field kept.

    `created` is rewritten in the tap's one timestamp format, because bookmarks are compared
    as strings; the partition's id fills in the item's when the item lacks it.

    Raises MalformedItem when the item is not an object or has no readable `created`.
    """
    if not isinstance(item, Mapping):
        raise MalformedItem(f"is not an object but {_sample(item)}")
    created = item.get("created")
    if not isinstance(created, str):
        raise MalformedItem(
            f"has {'no `created`' if created is None else f'`created` {_sample(created)}'}, "
            f"not a timestamp: {_sample(item)}"
        )
    try:
        moment = parse_timestamp(created)
    except ValueError:
        raise MalformedItem(f"has `created` {_sample(created)}, not a timestamp") from None
    normal = dict(item)
    normal["created"] = rfc3339(moment)
    for key, value in partition.items():
        normal[key] = normal.get(key) or value
    return normal


def _sample(value: object, limit: int = 200) -> str:
    """A value as JSON for a log line, cut short: enough to find it, never a whole page."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


class EventIdentities:
    """Gives the events of one partition, read oldest first, their `event_id`.

    Snyk has no event id. The id is the SHA-256 of the normalized item's canonical JSON (every
    field, keys sorted, no spaces, UTF-8, null fields left out): for items with only the
    schema's fields, the canonical JSON of a loaded row's other columns. Events that are equal
    in every field can only share a timestamp; the second and later of them, counted within
    that timestamp, get the hash of the same JSON followed by "#2", "#3", … Every read of a
    timestamp sees all of its events (`from` is inclusive, `to` exclusive), so the count, and
    with it the id, is the same on every run.
    """

    def __init__(self) -> None:
        self._created: str | None = None
        self._seen: Counter[str] = Counter()

    def event_id(self, item: Mapping[str, Any]) -> str:
        """The id of the next event read, from its normalized item."""
        if item["created"] != self._created:
            self._created = item["created"]
            self._seen.clear()
        canonical = json.dumps(
            {key: value for key, value in item.items() if value is not None},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        self._seen[canonical] += 1
        if self._seen[canonical] > 1:
            canonical += f"#{self._seen[canonical]}"
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def resource_record(resource: Mapping[str, Any], properties: Iterable[str]) -> dict[str, Any]:
    """The record of a JSON:API resource, flat, with exactly the schema's `properties`.

    Its id, its attributes, and for each relationship `<name>_id` and `<name>_<attribute>`
    (e.g. `user_email`).
    """
    flat: dict[str, Any] = {"id": resource.get("id"), **(resource.get("attributes") or {})}
    for name, relationship in (resource.get("relationships") or {}).items():
        related = (relationship or {}).get("data") or {}
        if isinstance(related, dict):
            flat[f"{name}_id"] = related.get("id")
            for key, value in (related.get("attributes") or {}).items():
                flat[f"{name}_{key}"] = value
    return {name: flat.get(name) for name in properties}

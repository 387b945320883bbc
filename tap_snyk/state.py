"""The Singer state handed to the tap, checked and put in the tap's own form before any request.

A state can come from `meltano state set` or from an old file as well as from the tap itself. The
SDK trusts it: a wrong shape or a bookmark that is not a timestamp ends in a traceback, a bookmark
with an offset is read as UTC, a bookmark in the future hides every new event. Here each
bookmark becomes UTC in the tap's one format (the SDK compares bookmarks as strings), a future
one is brought back to the run's start, and anything unusable stops the run with one line.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tap_snyk.errors import SnykError
from tap_snyk.records import parse_timestamp
from tap_snyk.settings import rfc3339

if TYPE_CHECKING:
    from datetime import datetime

#: What a partition's context names, for messages.
_SUBJECTS = {"org_id": "organization {}", "group_id": "group {}"}
_REMEDY = (
    "Correct it with `meltano state set`, or drop it with `meltano state clear` (the next run "
    "then starts at `start_date`; `event_id` keeps re-read events once). Nothing was requested."
)


class StateError(SnykError):
    """The state handed to the tap cannot be used; the message says where and what to do."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"The state handed to tap-snyk is unusable: {where} {problem}. {_REMEDY}")


def parsed_state_text(text: str) -> dict[str, Any]:
    """The state in a state file's text (blank: no state), before the SDK reads it.

    Raises StateError when it is not JSON or not a JSON object.
    """
    if not text.strip():
        return {}
    try:
        state = json.loads(text)
    except ValueError as error:
        raise StateError("the state file", f"is not JSON ({error})") from None
    if not isinstance(state, dict):
        raise StateError("the state", f"is {_kind(state)}, not a JSON object")
    return state


def checked_state(state: object, *, now: datetime, warn: Callable[[str], None]) -> dict[str, Any]:
    """A copy of `state` with every bookmark in UTC, in the tap's format, no later than `now`.

    Raises StateError naming the first part of the state that is unusable.
    """
    if not isinstance(state, dict):
        raise StateError("the state", f"is {_kind(state)}, not a JSON object")
    checked = copy.deepcopy(state)
    bookmarks = checked.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        raise StateError("`bookmarks`", f"is {_kind(bookmarks)}, not an object of streams")
    for stream, stream_state in bookmarks.items():
        where = f"bookmarks.{stream}"
        if not isinstance(stream_state, dict):
            raise StateError(f"`{where}`", f"is {_kind(stream_state)}, not an object")
        _check_bookmark(stream_state, where, stream, None, now, warn)
        partitions = stream_state.get("partitions", [])
        if not isinstance(partitions, list):
            raise StateError(f"`{where}.partitions`", f"is {_kind(partitions)}, not a list")
        for index, partition in enumerate(partitions):
            at = f"{where}.partitions[{index}]"
            if not isinstance(partition, dict) or not isinstance(partition.get("context"), dict):
                raise StateError(f"`{at}`", "is not an object with a `context` object")
            _check_bookmark(partition, at, stream, partition["context"], now, warn)
    return checked


def _check_bookmark(
    bookmark_state: dict[str, Any],
    where: str,
    stream: str,
    context: dict[str, Any] | None,
    now: datetime,
    warn: Callable[[str], None],
) -> None:
    value = bookmark_state.get("replication_key_value")
    if value is None:
        return
    try:
        moment = parse_timestamp(value)
    except (TypeError, ValueError, AttributeError):
        raise StateError(
            f"`{where}.replication_key_value`",
            f"is {value!r}, not a timestamp such as 2024-05-01T00:00:00Z",
        ) from None
    if moment > now:
        subject = ", ".join(
            _SUBJECTS.get(k, k + " {}").format(v) for k, v in (context or {}).items()
        )
        warn(
            f"The bookmark of {stream} for {subject or 'the stream'} is {value}, after the start "
            f"of this run ({rfc3339(now)}): it is read as the run's start, since a bookmark in the "
            "future would hide every new event."
        )
        moment = now
    bookmark_state["replication_key_value"] = rfc3339(moment)


def _kind(value: object) -> str:
    """What a JSON value is, in a word or two."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "a value")

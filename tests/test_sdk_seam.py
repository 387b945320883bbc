"""The seam between tap-snyk and the Singer SDK, fenced: an SDK upgrade that moves it fails here.

Every SDK member a tap class overrides carries `@override`, none is one the SDK marks `@final`,
and the private SDK members the tap overrides or calls are few and named below, each with the
shape the tap relies on.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from singer_sdk import RESTStream, Stream, Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.pagination import BaseAPIPaginator

import tap_snyk
from tap_snyk.output import WholeMessageWriter
from tap_snyk.pagination import NextLinkPaginator
from tap_snyk.stream import AuditLogStream, LookupStream, SnykStream
from tap_snyk.streams import STREAMS
from tap_snyk.tap import TapSnyk

PACKAGE = Path(tap_snyk.__file__).parent
TAP_CLASSES = [
    TapSnyk,
    SnykStream,
    AuditLogStream,
    LookupStream,
    *STREAMS,
    WholeMessageWriter,
    NextLinkPaginator,
]
SDK_BASES = (Tap, RESTStream, Stream, MsgSpecWriter, BaseAPIPaginator)

#: The private SDK members the tap overrides, and why; at most two.
PRIVATE_OVERRIDES = {
    # The bookmark must not move back for events re-read from the lookback window, nor past the
    # run's start for an event dated in the future; the SDK offers no public hook between a
    # record and its bookmark.
    "_increment_stream_state": (Stream, ["self", "latest_record", "context"]),
    # ACTIVATE_VERSION only after a complete read of a lookup, not as its sync starts.
    "_write_activate_version_message": (Stream, ["self", "full_table_version"]),
}
#: The private SDK members the tap calls without overriding them.
PRIVATE_CALLS = {
    # One page is one request through the SDK's own path (authentication, request metrics).
    "_request": (RESTStream, ["self", "prepared_request", "context"]),
}


def sdk_owner(cls: type, name: str) -> type | None:
    """The SDK class in `cls`'s bases that defines `name`, if any."""
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("singer_sdk") and name in vars(base):
            return base
    return None


def function_of(member: Any) -> Any:
    """The function inside a method, property, classmethod or staticmethod."""
    if isinstance(member, property):
        return member.fget
    return getattr(member, "__func__", member)


def overrides() -> list[tuple[type, str, Any, type]]:
    """Every SDK method or property a tap class defines again: (class, name, member, owner)."""
    found = []
    for cls in TAP_CLASSES:
        for name, member in vars(cls).items():
            methodlike = (property, classmethod, staticmethod)
            if name.startswith("__") or isinstance(member, type):
                continue
            if not (callable(member) or isinstance(member, methodlike)):
                continue
            owner = sdk_owner(cls, name)
            if owner is not None:
                found.append((cls, name, member, owner))
    return found


def test_the_introspection_finds_the_overrides_it_is_about() -> None:
    names = {name for _, name, _, _ in overrides()}
    assert {"get_records", "request_records", "partitions", "invoke", "load_state"} <= names


def test_every_sdk_override_is_marked_override() -> None:
    unmarked = [
        f"{cls.__name__}.{name}"
        for cls, name, member, _ in overrides()
        if not getattr(function_of(member), "__override__", False)
        and not getattr(member, "__override__", False)
    ]
    assert unmarked == [], f"SDK members overridden without @override: {unmarked}"


def test_no_member_the_sdk_marks_final_is_overridden() -> None:
    final = [
        f"{cls.__name__}.{name} (final in {owner.__name__})"
        for cls, name, _, owner in overrides()
        if getattr(function_of(vars(owner)[name]), "__final__", False)
    ]
    assert final == [], f"@final SDK members overridden: {final}"


def test_at_most_two_private_sdk_members_are_overridden_and_they_are_the_named_ones() -> None:
    private = {name for _, name, _, _ in overrides() if name.startswith("_")}
    assert private <= PRIVATE_OVERRIDES.keys(), (
        f"private SDK members overridden but not named in PRIVATE_OVERRIDES: "
        f"{sorted(private - PRIVATE_OVERRIDES.keys())}"
    )
    assert len(PRIVATE_OVERRIDES) <= 2


@pytest.mark.parametrize("name", sorted({**PRIVATE_OVERRIDES, **PRIVATE_CALLS}))
def test_each_private_sdk_member_the_tap_relies_on_has_the_shape_it_relies_on(name: str) -> None:
    owner, parameters = {**PRIVATE_OVERRIDES, **PRIVATE_CALLS}[name]
    member = next((vars(base)[name] for base in owner.__mro__ if name in vars(base)), None)
    assert member is not None, (
        f"singer-sdk no longer defines {owner.__name__}.{name}, which tap-snyk relies on "
        "(see tests/test_sdk_seam.py for why): find the SDK's new hook before upgrading."
    )
    found = list(inspect.signature(member).parameters)
    assert found == parameters, (
        f"singer-sdk changed {owner.__name__}.{name}{inspect.signature(member)}; tap-snyk relies "
        f"on ({', '.join(parameters)}): check its use in tap_snyk before upgrading."
    )


def test_the_tap_touches_no_private_sdk_member_but_the_named_ones() -> None:
    used = set()
    for path in PACKAGE.glob("*.py"):
        for name in re.findall(r"\b(?:self|super\(\))\.(_[a-z]\w*)", path.read_text()):
            if any(name in vars(base) for sdk in SDK_BASES for base in sdk.__mro__):
                used.add(name)
    assert used <= {**PRIVATE_OVERRIDES, **PRIVATE_CALLS}.keys(), used


def test_nothing_but_the_tap_module_knows_the_tap() -> None:
    """No stream, client or policy reaches back up: they get the run context, not the tap."""
    knowing = sorted(
        path.name
        for path in PACKAGE.glob("*.py")
        if path.name not in ("tap.py", "__main__.py")
        and re.search(r"\bTapSnyk\b|\b_tap\b|\.tap\b", path.read_text())
    )
    assert knowing == []

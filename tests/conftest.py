"""Fixtures: a fake Snyk API over real HTTP, and a way to run the tap and read its messages."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fake_snyk import FakeSnyk, uuid_for
from tap_snyk.errors import SnykError
from tap_snyk.retries import RequestRateLimiter
from tap_snyk.tap import TapSnyk
from tests.meltano_project import DemoSync, run_demo_sync

pytest_plugins = ("tests.parallel",)  # how `pytest -n` spreads the tests over workers

ORG_A = uuid_for("org-a")
ORG_B = uuid_for("org-b")
GROUP = uuid_for("group-1")
TOKEN = "test-token"


@pytest.fixture
def snyk_api() -> Iterator[FakeSnyk]:
    """A fake Snyk API on 127.0.0.1 that follows the contract and the live service's quirks."""
    with FakeSnyk() as api:
        yield api


def tap_config(api: FakeSnyk, **settings: Any) -> dict[str, Any]:
    """A config for the fake API: org A unless the test says otherwise."""
    return {"api_url": api.url, "api_token": TOKEN, "org_ids": [ORG_A], **settings}


@dataclass(frozen=True)
class KeyPair:
    """An RSA key pair of an OAuth service account, as PEM texts, and the key's id."""

    private_pem: str = field(repr=False)
    public_pem: str
    key_id: str = "key-1"


def make_key_pair(key_id: str = "key-1") -> KeyPair:
    """A fresh 2048-bit RSA key pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem, key_id)


@pytest.fixture(scope="session")
def key_pair() -> KeyPair:
    """One RSA key pair for the session's tests (making one takes a moment)."""
    return make_key_pair()


def oauth_config(api: FakeSnyk, **settings: Any) -> dict[str, Any]:
    """`tap_config` for an OAuth service account rather than an API token."""
    config = tap_config(api, **settings)
    del config["api_token"]
    return config


@dataclass
class TapRun:
    """What one run of the tap wrote."""

    exit_code: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def records(self, stream: str) -> list[dict[str, Any]]:
        """The records of one stream, in the order written."""
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def by_partition(self, stream: str) -> dict[str, list[dict[str, Any]]]:
        """A stream's records per org or group, each one's in the order written.

        Reading ahead, a stream's partitions are written in the order they are ready, which
        varies from run to run: runs compare partition by partition.
        """
        key = "group_id" if stream.startswith("group_") else "org_id"
        partitions: dict[str, list[dict[str, Any]]] = {}
        for record in self.records(stream):
            partitions.setdefault(record[key], []).append(record)
        return partitions

    @property
    def states(self) -> list[dict[str, Any]]:
        """The value of every STATE message."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any]:
        """The value of the last STATE message."""
        return self.states[-1]


def in_any_partition_order(state: dict[str, Any]) -> dict[str, Any]:
    """A STATE value with each stream's partitions sorted: the order they were written aside."""
    state = copy.deepcopy(state)
    for stream_state in state.get("bookmarks", {}).values():
        stream_state.get("partitions", []).sort(key=lambda p: json.dumps(p["context"]))
    return state


def unpaced(tap: TapSnyk) -> TapSnyk:
    """The tap with a rate limit that never makes a request wait (a 429's wait still holds).

    For the tests of anything but the pacing, which has tests of its own: at the highest
    `max_requests_per_minute` a run of a few hundred requests would wait seconds for its turns.
    """
    tap.run_context.api.limiter = RequestRateLimiter(per_minute=10**9)
    return tap


def run_tap(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    *,
    paced: bool = False,
) -> TapRun:
    """Run the tap in this process, as `tap-snyk --config … --state … --catalog …` would.

    Unless `paced`, requests go without waiting for their turn under the rate limit (`unpaced`).
    """
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    exit_code, error = 0, None
    with contextlib.redirect_stdout(stdout):
        try:
            tap = TapSnyk(config=config, state=state, catalog=catalog, parse_env_config=False)
            (tap if paced else unpaced(tap)).run_sync()
        except SnykError as failure:  # what `tap-snyk` reports in one line, exiting 1
            exit_code, error = 1, str(failure)
    stdout.flush()
    lines = stdout.buffer.getvalue().decode("utf-8").splitlines()  # type: ignore[attr-defined]
    return TapRun(exit_code, [json.loads(line) for line in lines if line.strip()], error)


def run_cli(
    tmp_path: Path, config: dict[str, Any], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `tap-snyk --config <config> ARGS` as a process of its own, as a user would."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "tap_snyk.tap", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def bookmark(state: dict[str, Any], stream: str, key: str, value: str) -> str | None:
    """The bookmark of one partition of a stream in a STATE value."""
    for partition in state["bookmarks"][stream].get("partitions", []):
        if partition["context"] == {key: value}:
            return partition.get("replication_key_value")
    return None


from tests.alerting import alerting  # noqa: E402, F401  # the `alerting` pipeline, once a session
from tests.postgres import postgres  # noqa: E402, F401  # the `postgres` fixture


@pytest.fixture(scope="session")
def demo_sync(tmp_path_factory: pytest.TempPathFactory) -> DemoSync:
    """One `scripts/sync --demo` for the session: what it printed, and its DuckDB file."""
    return run_demo_sync(tmp_path_factory.mktemp("demo-sync"))

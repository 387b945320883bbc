"""A real PostgreSQL server for the tests: settings from TEST_POSTGRES_*, a fresh schema per module.

`scripts/test` starts a throwaway server (`scripts/postgres start`) and sets TEST_POSTGRES_HOST,
_PORT, _USER and _DATABASE; set them yourself (and TEST_POSTGRES_PASSWORD, if needed) to use a
server of your own. Each test module that asks for `postgres` gets an empty schema of its own;
its tests fail, never skip, when there is no server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import psycopg

MISSING = "no PostgreSQL: run scripts/test, or set TEST_POSTGRES_*"
REQUIRED = ("host", "port", "user", "database")  # TEST_POSTGRES_HOST, …; _PASSWORD is optional


@dataclass(frozen=True)
class PostgresSchema:
    """Where a test may write: one schema of its own in the test server's database."""

    host: str
    port: int
    user: str
    password: str | None
    database: str
    schema: str

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A new autocommit connection to the database."""
        try:
            import psycopg  # here, so that only the tests that use PostgreSQL need it
        except ImportError:
            pytest.fail("psycopg is not installed: run scripts/setup (the dev extra has it)")
        try:
            return psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname=self.database,
                autocommit=True,
                connect_timeout=10,
            )
        except psycopg.OperationalError as error:
            pytest.fail(f"{MISSING} (connecting to {self.host}:{self.port} failed: {error})")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement (none for a statement that returns none)."""
        with self.connect() as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def target_env(self) -> dict[str, str]:
        """The environment that points Meltano's target-postgres at this schema."""
        return {
            "TARGET_POSTGRES_HOST": self.host,
            "TARGET_POSTGRES_PORT": str(self.port),
            "TARGET_POSTGRES_USER": self.user,
            # target-postgres 0.8.1 refuses to start without a password, even for a server that
            # asks for none (the throwaway one trusts loopback): an empty one will do there.
            "TARGET_POSTGRES_PASSWORD": self.password or "",
            "TARGET_POSTGRES_DATABASE": self.database,
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
        }


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresSchema]:
    """A fresh, empty schema for a test module, dropped with everything in it afterwards."""
    settings = {name: os.environ.get(f"TEST_POSTGRES_{name.upper()}") for name in REQUIRED}
    if not all(settings.values()):
        missing = ", ".join(f"TEST_POSTGRES_{k.upper()}" for k, v in settings.items() if not v)
        pytest.fail(f"{MISSING} ({missing} not set)")
    server = PostgresSchema(
        host=str(settings["host"]),
        port=int(str(settings["port"])),
        user=str(settings["user"]),
        password=os.environ.get("TEST_POSTGRES_PASSWORD"),
        database=str(settings["database"]),
        schema=f"test_{uuid.uuid4().hex[:12]}",
    )
    server.query(f'create schema "{server.schema}"')
    yield server
    server.query(f'drop schema "{server.schema}" cascade')

"""Fixtures for the state store's tests: every contract test runs against each backend.

``backend`` is a real SQLite file in tmp_path, or a fresh database on the session's PostgreSQL
server (see ``tests/postgres.py``); ``store`` is a store opened on it with a clock the test moves.
Tests that must reach under the store (damage a row, claim as another process, make a write fail)
do it through the backend's few raw-SQL helpers, so one test body covers both engines.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from tests.store.factories import FakeClock

from deploy_fetcher.store import SqliteStore, StateStore

BACKENDS = ["sqlite", "postgres"]


class Backend(Protocol):
    """Where a test's state lives, and raw access to it beneath the store."""

    name: str

    def open(self, clock: FakeClock) -> Any:
        """A new store on this state (another process's view of it)."""
        ...

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run SQL with ``?`` placeholders on the store's tables, committed at once."""
        ...

    def refuse_writes(self, table: str, operation: str, message: str) -> None:
        """Make every ``operation`` (INSERT or UPDATE) on ``table`` fail with ``message``."""
        ...

    def allow_writes(self, table: str) -> None:
        """Undo :meth:`refuse_writes`."""
        ...


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self, clock: FakeClock) -> SqliteStore:
        return SqliteStore(self.path, clock=clock)

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path)
        try:
            found = conn.execute(statement, params).fetchall()
            conn.commit()
            return found
        finally:
            conn.close()

    def refuse_writes(self, table: str, operation: str, message: str) -> None:
        self.execute(
            f"CREATE TRIGGER refuse_{table} BEFORE {operation} ON {table}"
            f" BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )

    def allow_writes(self, table: str) -> None:
        self.execute(f"DROP TRIGGER refuse_{table}")


class PostgresBackend:
    name = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url

    def open(self, clock: FakeClock) -> StateStore:
        from deploy_fetcher.store.postgres import PostgresStore

        return PostgresStore(self.url, clock=clock, pool_size=4)

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SET search_path TO deploy_fetcher")
            cur = conn.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def refuse_writes(self, table: str, operation: str, message: str) -> None:
        self.execute(
            f"""
            CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION '{message}'; END $$
            """
        )
        self.execute(
            f"CREATE TRIGGER refuse_{table} BEFORE {operation} ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
        )

    def allow_writes(self, table: str) -> None:
        self.execute(f"DROP TRIGGER refuse_{table} ON {table}")
        self.execute(f"DROP FUNCTION refuse_{table}")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, db_path: Path) -> Backend:
    """Each backend in turn: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return SqliteBackend(db_path)
    return PostgresBackend(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(backend: Backend, clock: FakeClock) -> Iterator[Any]:
    opened = backend.open(clock)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(db_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    """For the tests of what only a file has (permissions, disk space, fork, the file's header)."""
    opened = SqliteStore(db_path, clock=clock)
    yield opened
    opened.close()

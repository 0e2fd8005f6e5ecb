"""Fixtures for the state store's tests: every contract test runs against each backend.

``backend`` is a real SQLite file in tmp_path, a fresh database on the session's PostgreSQL server
(see ``tests/postgres.py``), or the ``dashboard`` mode: cursors in a state slot of a dashboard
emulator on 127.0.0.1, the outbox in a temporary SQLite file. ``store`` is a store opened on it with
a clock the test moves. Tests that must reach under the store (damage a row, claim as another
process, make a write fail) do it through the backend's few raw-SQL helpers, so one test body covers
every engine.

A test that cannot apply to a backend says so with ``@pytest.mark.not_applicable(name, reason=...)``:
it is reported as skipped with that reason, so ``-ra`` lists every such case and why.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from tests.store.factories import FakeClock
from tests.support import DASHBOARD_KEY

from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.sinks.dashboard import DashboardConfig
from deploy_fetcher.sinks.dashboard.backend import DashboardStore, decode_document
from deploy_fetcher.sinks.dashboard.slot import HttpStateSlot
from deploy_fetcher.store import SqliteStore, StateStore

BACKENDS = ["sqlite", "postgres", "dashboard"]
#: What ``not_applicable`` says of the dashboard mode's outbox, for the tests it excludes.
TEMPORARY_OUTBOX = (
    "its outbox is a temporary file of one process by design: a reopened store starts with an"
    " empty one and reads the lost events again from the providers"
)


class Backend(Protocol):
    """Where a test's state lives, and raw access to it beneath the store."""

    name: str
    dialect: str
    """The SQL the raw helpers take: ``sqlite`` or ``postgres``."""
    outbox_module: str
    """The module whose ``DELETE_BATCH`` sizes the outbox's deletes."""

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
    dialect = "sqlite"
    outbox_module = "deploy_fetcher.store.sqlite"

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
    dialect = "postgres"
    outbox_module = "deploy_fetcher.store.postgres._store"

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


class DashboardBackend:
    """Cursors in the state slot ``slot`` of a dashboard emulator; each store its own outbox.

    The stores write the slot as in production (a writer thread, here every 20 ms); the raw-SQL
    helpers reach the outbox of the store opened last, the one the test is using.
    """

    name = "dashboard"
    dialect = "sqlite"  # the raw helpers reach its outbox, a SQLite file
    outbox_module = "deploy_fetcher.store.sqlite"

    def __init__(self, emulator: DashboardEmulator, directory: Path, slot: str = "store") -> None:
        self.emulator = emulator
        self.directory = directory
        self.slot = slot
        self.config = DashboardConfig.model_validate(
            {
                "name": "dash",
                "type": "deployment-dashboard",
                "url": emulator.url(),
                "api_key": DASHBOARD_KEY,
                "timeout": "2s",
            }
        )
        self._latest: DashboardStore | None = None

    def open(self, clock: FakeClock) -> DashboardStore:
        slot = HttpStateSlot(self.config, self.slot)
        self._latest = DashboardStore(
            slot, directory=self.directory, flush_interval=0.02, clock=clock
        )
        return self._latest

    def saved_cursors(self) -> dict[str, Any]:
        """What the dashboard holds now (empty before the first write)."""
        state = self.emulator.state(self.slot)
        return {} if state is None else decode_document(state)[0]

    def _local(self) -> SqliteBackend:
        if self._latest is None:
            msg = "no store was opened on this backend yet"
            raise RuntimeError(msg)
        return SqliteBackend(self._latest.path)

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._local().execute(statement, params)

    def refuse_writes(self, table: str, operation: str, message: str) -> None:
        self._local().refuse_writes(table, operation, message)

    def allow_writes(self, table: str) -> None:
        self._local().allow_writes(table)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def _not_applicable(request: pytest.FixtureRequest, name: str) -> None:
    """Skip, saying why, when the test is marked as not applicable to backend ``name``."""
    for marker in request.node.iter_markers("not_applicable"):
        if name in marker.args:
            pytest.skip(f"not applicable to the {name} backend: {marker.kwargs['reason']}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, db_path: Path, tmp_path: Path) -> Backend:
    """Each backend in turn: a SQLite file, a fresh PostgreSQL database, a dashboard's state slot."""
    _not_applicable(request, request.param)
    if request.param == "sqlite":
        return SqliteBackend(db_path)
    if request.param == "postgres":
        return PostgresBackend(request.getfixturevalue("pg_url"))
    return DashboardBackend(request.getfixturevalue("dashboard"), tmp_path)


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

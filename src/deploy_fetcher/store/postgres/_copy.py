"""Moving house: copy a SQLite state file into an empty PostgreSQL database, and prove it arrived.

Everything is copied in one transaction on the target — cursors, every outbox row (pending,
delivered, dead: the dedup ledger and the dead letters), the promotion and lifecycle ledgers and
the small values — with the outbox ids kept, so ``fetcher outbox`` refers to the same rows after the move. The counts
are compared inside that transaction, before it commits: a copy that does not add up leaves the
target as empty as it found it.

The target must be empty (a fresh database, or one whose ``deploy_fetcher`` schema holds no row):
merging two states would mix two sets of cursors. The source must not be in use: claims are not
carried over (they belong to processes of the old set-up), so a daemon still delivering from the
file would send its rows again from the new database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from deploy_fetcher._plural import plural
from deploy_fetcher.errors import StoreError
from deploy_fetcher.model import utc_now
from deploy_fetcher.store._codec import from_db, to_db
from deploy_fetcher.store.postgres._schema import SCHEMA, Connection
from deploy_fetcher.store.postgres._store import PostgresStore
from deploy_fetcher.store.sqlite import SqliteStore

__all__ = ["CopyReport", "copy_sqlite_to_postgres"]

_BATCH: Final = 2000
_PROBE_KEY: Final = "deploy-fetcher.write-probe"
_COPY_LOCK: Final = 0x44464554_0002

_OUTBOX_COLUMNS: Final = (
    "id",
    "sink",
    "source",
    "deployment_id",
    "status",
    "happened_at",
    "event",
    "state",
    "attempts",
    "created_at",
    "next_attempt_at",
    "last_error",
    "delivered_at",
    "dead_at",
    "lane_key",
)
_OUTBOX_TIMES: Final = frozenset(
    {"happened_at", "created_at", "next_attempt_at", "delivered_at", "dead_at"}
)


#: The states of an outbox row, in the order the counts are told.
STATES: Final = ("pending", "delivered", "dead")


@dataclass(frozen=True)
class CopyReport:
    """What was copied, counted on both sides."""

    cursors: int
    successes: int
    values: int
    outbox: dict[str, int] = field(default_factory=dict)
    """Rows per state (pending, delivered, dead)."""
    lifecycle: int = 0
    """Lifecycle ledger entries (one per sink and deployment)."""

    @property
    def rows(self) -> int:
        """Every outbox row."""
        return sum(self.outbox.values())

    def describe(self) -> str:
        """The counts in words, e.g. ``1 cursor, 2 outbox rows (2 pending, 0 delivered, 0 dead), …``."""
        states = ", ".join(f"{self.outbox.get(state, 0)} {state}" for state in STATES)
        ledger = plural(self.successes, "promotion ledger entry", "promotion ledger entries")
        lifecycle = plural(self.lifecycle, "lifecycle ledger entry", "lifecycle ledger entries")
        return (
            f"{plural(self.cursors, 'cursor')}, {plural(self.rows, 'outbox row')} ({states}),"
            f" {ledger}, {lifecycle}, {plural(self.values, 'stored value')}"
        )


def _counts_sqlite(conn: sqlite3.Connection) -> CopyReport:
    def one(sql: str, *params: Any) -> int:
        return int(conn.execute(sql, params).fetchone()[0])

    by_state = dict(conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    return CopyReport(
        cursors=one("SELECT count(*) FROM cursors"),
        successes=one("SELECT count(*) FROM successes"),
        values=one("SELECT count(*) FROM kv WHERE key <> ?", _PROBE_KEY),
        outbox={str(k): int(v) for k, v in by_state.items()},
        lifecycle=one("SELECT count(*) FROM lifecycle"),
    )


def _counts_postgres(conn: Connection) -> CopyReport:
    def one(sql: str) -> int:
        row = conn.execute(sql).fetchone()
        return int(str(row[0])) if row else 0

    by_state = conn.execute(
        f"SELECT state, count(*) FROM {SCHEMA}.outbox GROUP BY state"
    ).fetchall()
    return CopyReport(
        cursors=one(f"SELECT count(*) FROM {SCHEMA}.cursors"),
        successes=one(f"SELECT count(*) FROM {SCHEMA}.successes"),
        values=one(f"SELECT count(*) FROM {SCHEMA}.kv"),
        outbox={str(k): int(str(v)) for k, v in by_state},
        lifecycle=one(f"SELECT count(*) FROM {SCHEMA}.lifecycle"),
    )


def _batches(conn: sqlite3.Connection, sql: str, *params: Any) -> Iterator[list[tuple[Any, ...]]]:
    cursor = conn.execute(sql, params)
    while rows := cursor.fetchmany(_BATCH):
        yield rows


def _time(text: str | None) -> datetime | None:
    return None if text is None else from_db(text)


def _copy_rows(
    target: Connection, table: str, columns: tuple[str, ...], rows: Iterator[list[tuple[Any, ...]]]
) -> None:
    names = ", ".join(columns)
    with target.cursor() as cur, cur.copy(f"COPY {SCHEMA}.{table} ({names}) FROM STDIN") as copy:
        for batch in rows:
            for row in batch:
                copy.write_row(row)


def _converted(
    batches: Iterator[list[tuple[Any, ...]]], columns: tuple[str, ...], times: frozenset[str]
) -> Iterator[list[tuple[Any, ...]]]:
    where = [index for index, name in enumerate(columns) if name in times]
    for batch in batches:
        out = []
        for row in batch:
            values = list(row)
            for index in where:
                values[index] = _time(values[index])
            out.append(tuple(values))
        yield out


def copy_sqlite_to_postgres(
    path: Path, url: str, *, now: datetime | None = None
) -> tuple[CopyReport, str]:
    """Copy the state file at ``path`` into the empty database at ``url``; the report and its label.

    Raises StoreError when the file is not a state file, is in use (a live claim), or the database is
    not empty, foreign, unreachable, or the counts do not match after the copy (nothing is kept).
    """
    now = now or utc_now()
    source = SqliteStore(path)
    try:
        conn = source._db.get()  # noqa: SLF001 - the copy reads the file's tables as they are
        busy = conn.execute(
            "SELECT count(*), max(claim_until) FROM outbox WHERE state = 'pending' AND claim_until > ?",
            (to_db(now),),
        ).fetchone()
        if busy[0]:
            claimed = plural(busy[0], "row is", "rows are")
            msg = (
                f"state file {path}: {claimed} claimed by a running process (until"
                f" {busy[1]}); stop every fetcher using the file first"
            )
            raise StoreError(msg)
        with source._db.errors("reading it for the copy"):  # noqa: SLF001
            return _copy_snapshot(conn, url, path)
    finally:
        source.close()


def _copy_snapshot(conn: sqlite3.Connection, url: str, path: Path) -> tuple[CopyReport, str]:
    conn.execute("BEGIN")  # one read snapshot of the file for the whole copy
    try:
        expected = _counts_sqlite(conn)
        target = PostgresStore(url, pool_size=2)
        try:
            _copy_into(target, conn, expected, path)
        finally:
            target.close()
    finally:
        conn.execute("ROLLBACK")  # nothing was written to the file
    return expected, target.label


def _copy_into(
    target: PostgresStore, source: sqlite3.Connection, expected: CopyReport, path: Path
) -> None:
    db = target._db  # noqa: SLF001 - the copy is the store's own business
    with db.transaction(f"copying {path} into it") as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_COPY_LOCK,))
        found = _counts_postgres(conn)
        if found.cursors or found.successes or found.values or found.rows or found.lifecycle:
            msg = (
                f"state database {db.label} is not empty ({found.describe()});"
                " migrate only into an empty database"
            )
            raise StoreError(msg)
        _copy_rows(
            conn,
            "cursors",
            ("key", "cursor", "updated_at"),
            _converted(
                _batches(source, "SELECT key, cursor, updated_at FROM cursors"),
                ("key", "cursor", "updated_at"),
                frozenset({"updated_at"}),
            ),
        )
        _copy_rows(
            conn,
            "outbox",
            _OUTBOX_COLUMNS,
            _converted(
                _batches(source, f"SELECT {', '.join(_OUTBOX_COLUMNS)} FROM outbox ORDER BY id"),
                _OUTBOX_COLUMNS,
                _OUTBOX_TIMES,
            ),
        )
        success_columns = ("service", "environment", "sha", "deployment_id", "happened_at")
        _copy_rows(
            conn,
            "successes",
            success_columns,
            _converted(
                _batches(source, f"SELECT {', '.join(success_columns)} FROM successes"),
                success_columns,
                frozenset({"happened_at"}),
            ),
        )
        lifecycle_columns = ("sink", "deployment_id", "status", "happened_at", "updated_at")
        _copy_rows(
            conn,
            "lifecycle",
            lifecycle_columns,
            _converted(
                _batches(source, f"SELECT {', '.join(lifecycle_columns)} FROM lifecycle"),
                lifecycle_columns,
                frozenset({"happened_at", "updated_at"}),
            ),
        )
        _copy_rows(
            conn,
            "kv",
            ("key", "value", "updated_at"),
            _converted(
                _batches(
                    source, "SELECT key, value, updated_at FROM kv WHERE key <> ?", _PROBE_KEY
                ),
                ("key", "value", "updated_at"),
                frozenset({"updated_at"}),
            ),
        )
        # New rows continue after the copied ids, as they would have in the file.
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{SCHEMA}.outbox', 'id'),"
            f" (SELECT coalesce(max(id), 0) + 1 FROM {SCHEMA}.outbox), false)"
        )
        copied = _counts_postgres(conn)
        if copied != expected:
            msg = (
                f"state database {db.label}: the copy does not add up (file: {expected.describe()};"
                f" database: {copied.describe()}); nothing was kept"
            )
            raise StoreError(msg)

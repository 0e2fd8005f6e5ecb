"""The SQLite state store: one file holding cursors, the outbox, its dedup ledger and dead letters.

SQLite in WAL mode lets the daemon's poller and delivery threads, and a ``fetcher sync`` or
``fetcher outbox`` process run beside it, share one file: readers never block the writer, and every
write is a short ``BEGIN IMMEDIATE`` transaction. Nothing here loads the whole outbox; claims, listings
and prunes are bounded by a limit or done in batches.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import takewhile
from pathlib import Path
from typing import Any, Final

import structlog

from deploy_fetcher.errors import StoreError
from deploy_fetcher.lifecycle import Gated, Reached, gate, ledger_keys
from deploy_fetcher.model import DeployEvent, Status, utc_now
from deploy_fetcher.store._base import CursorRecord, Fence, OutboxRow, OutboxStats, RowState
from deploy_fetcher.store._claims import is_orphaned, process_token
from deploy_fetcher.store._codec import dump_cursor, from_db, load_cursor, to_db
from deploy_fetcher.store._connections import Connections
from deploy_fetcher.store._lanes import lane_key
from deploy_fetcher.store._ledger import report
from deploy_fetcher.store._schema import check_file, ensure_schema
from deploy_fetcher.store._settle import SettlesRows

__all__ = ["SqliteStore"]

_log = structlog.get_logger(__name__)

#: Rows deleted per transaction by prunes and purges, so the write lock is never held for long.
DELETE_BATCH: Final = 500
#: Below this much free space the store is reported unwritable before SQLite fails mid-commit.
MIN_FREE_BYTES: Final = 8 * 1024 * 1024
_PROBE_KEY: Final = "deploy-fetcher.write-probe"

_ROW_COLUMNS: Final = (
    "id, sink, source, event, state, attempts, created_at, next_attempt_at, last_error"
)
#: Where ``next_attempt_at`` (fixed-width UTC text, so it compares as text) is in a selected row.
_NEXT_ATTEMPT: Final = 7
_INSERT_ROW: Final = """
    INSERT OR IGNORE INTO outbox
        (sink, source, deployment_id, status, happened_at, event, created_at, next_attempt_at,
         lane_key)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPSERT_SUCCESS: Final = """
    INSERT INTO successes (service, environment, sha, deployment_id, happened_at)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (service, environment, sha) DO UPDATE
        SET deployment_id = excluded.deployment_id, happened_at = excluded.happened_at
        WHERE excluded.happened_at > successes.happened_at
"""
_UPSERT_LIFECYCLE: Final = """
    INSERT INTO lifecycle (sink, deployment_id, status, happened_at, updated_at)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (sink, deployment_id) DO UPDATE
        SET status = excluded.status, happened_at = excluded.happened_at,
            updated_at = excluded.updated_at
"""
_UPSERT_CURSOR: Final = """
    INSERT INTO cursors (key, cursor, updated_at) VALUES (?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at
"""


#: Dedup keys (four parameters each) and row ids per query, well under SQLite's parameter limit.
_KEYS_PER_QUERY: Final = 200
_IDS_PER_QUERY: Final = 500


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _RollBack(Exception):
    """Raised inside a write transaction to undo it."""


class SqliteStore(SettlesRows):
    """A :class:`~deploy_fetcher.store.StateStore` in one SQLite file, shared by threads and processes.

    Opening refuses a file that is not a deploy-fetcher state file (or was written by a newer
    version) without touching it, initialises a new one, and migrates an older one. ``clock`` stamps
    rows, cursors and values (tests pass a fake); claims and deliveries take the time from the caller.
    """

    PLACEHOLDER = "?"

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        busy_timeout: float = 10.0,
        min_free_bytes: int = MIN_FREE_BYTES,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._min_free_bytes = min_free_bytes
        check_file(self.path)
        self._db = Connections(self.path, busy_timeout=busy_timeout)
        try:
            ensure_schema(self._db)
            self._quick_check()
        except BaseException:
            self._db.close()
            raise
        self._release_orphaned_claims()

    def _quick_check(self) -> None:
        """Refuse a file damaged in the middle (a torn write, a bad disk) before anything uses it.

        SQLite reads only the pages a query touches, so a damaged page deep in the outbox would
        go unnoticed until some later query failed, or returned wrong rows. ``quick_check`` reads
        every page once (seconds for a large file) and finds it at open.
        """
        conn = self._db.get()
        try:
            found = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
        except sqlite3.DatabaseError as exc:  # too damaged for the check itself to walk
            found = [str(exc)]
        if found != ["ok"]:
            msg = (
                f"state file {self.path} is damaged ({'; '.join(found)}): restore it from a "
                "backup, or move it aside to start afresh (the cursors start again at lookback)"
            )
            raise StoreError(msg)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    @property
    def claim_token(self) -> str:
        """This process's claim owner id (a new one after ``fork()``)."""
        return process_token()

    # -- cursors ---------------------------------------------------------------------------------
    def get_cursor(self, key: str) -> dict[str, Any] | None:
        """Return the cursor stored for a source target, or None before its first commit."""
        with self._db.read(f"reading the cursor {key!r}") as conn:
            found = conn.execute("SELECT cursor FROM cursors WHERE key = ?", (key,)).fetchone()
        return None if found is None else self._load_cursor(key, found[0])

    def list_cursors(self) -> list[CursorRecord]:
        """Every stored cursor, ordered by key."""
        with self._db.read("listing cursors") as conn:
            found = conn.execute(
                "SELECT key, cursor, updated_at FROM cursors ORDER BY key"
            ).fetchall()
        return [
            CursorRecord(key, self._load_cursor(key, cursor), from_db(updated))
            for key, cursor, updated in found
        ]

    def reset_cursor(self, key: str) -> bool:
        """Forget a cursor (the next poll starts at now - lookback); False when there was none."""
        with self._db.write(f"resetting the cursor {key!r}") as conn:
            return conn.execute("DELETE FROM cursors WHERE key = ?", (key,)).rowcount > 0

    def _load_cursor(self, key: str, text: str) -> dict[str, Any]:
        try:
            return load_cursor(text)
        except ValueError as exc:
            msg = f"state file {self.path}: the cursor {key!r} is damaged ({exc}); reset it"
            raise StoreError(msg) from exc

    # -- the transaction rule --------------------------------------------------------------------
    def commit_page(
        self,
        key: str,
        cursor: dict[str, Any] | None,
        rows: Sequence[tuple[str, DeployEvent]],
        *,
        successes: Sequence[DeployEvent] | None = None,
        fence: Fence | None = None,
    ) -> int:
        """Store ``(sink name, event)`` rows (duplicates by dedup key ignored) and the cursor, atomically.

        ``successes`` are the page's events under their canonical names (before any sink's filter or
        rename) for :meth:`latest_success`; when None, the rows' events are used. A file has no
        leases (one process polls it), so a ``fence`` is refused.

        The rows are judged against the lifecycle ledger in the same transaction (see
        :mod:`deploy_fetcher.lifecycle`): a row behind what its deployment reached in its sink is
        left out, one further along but dated earlier is re-dated. Returns the rows inserted.
        """
        return self.commit_page_rows(key, cursor, rows, successes=successes, fence=fence)[0]

    def commit_page_rows(
        self,
        key: str,
        cursor: dict[str, Any] | None,
        rows: Sequence[tuple[str, DeployEvent]],
        *,
        successes: Sequence[DeployEvent] | None = None,
        fence: Fence | None = None,
    ) -> tuple[int, list[tuple[str, DeployEvent]]]:
        """:meth:`commit_page`, also returning the rows as queued (less those left out, re-dated).

        Everything that can be is serialised before the transaction starts, so the write lock is
        held only for the ledger and the inserts; a cursor that JSON cannot carry raises ValueError
        and nothing is stored.
        """
        if fence is not None:
            msg = f"state file {self.path}: the sqlite backend has no leases to fence a commit with"
            raise StoreError(msg)
        if cursor is None and not rows and not successes:
            return 0, []
        now = to_db(self._clock())
        cursor_json = None if cursor is None else dump_cursor(key, cursor)
        encoded = {id(event): event.to_json() for _, event in rows}
        ledger = _success_params((event for _, event in rows) if successes is None else successes)
        keys = ledger_keys(rows)
        with self._db.write(f"committing a page for {key!r}") as conn:
            gated = gate(rows, _read_ledger(conn, keys))
            repeated = _already_queued(conn, gated)  # before this page's rows are in
            outbox = list(self._outbox_params(gated.rows, now, encoded))
            inserted = conn.executemany(_INSERT_ROW, outbox).rowcount if outbox else 0
            conn.executemany(
                _UPSERT_LIFECYCLE,
                [
                    (sink, deployment, reached.status.value, to_db(reached.happened_at), now)
                    for (sink, deployment), reached in gated.reached.items()
                ],
            )
            if ledger:
                conn.executemany(_UPSERT_SUCCESS, ledger)
            if cursor_json is not None:
                conn.execute(_UPSERT_CURSOR, (key, cursor_json, now))
        report(gated, repeated)
        return max(inserted, 0), gated.rows

    @staticmethod
    def _outbox_params(
        rows: Sequence[tuple[str, DeployEvent]], now: str, encoded: dict[int, str]
    ) -> Iterable[tuple[str | int, ...]]:
        # One event is usually fanned out to several sinks: serialise it once (``encoded`` holds
        # those serialised before the transaction; a re-dated copy is serialised here).
        for sink, event in rows:
            text = encoded.get(id(event))
            if text is None:
                text = encoded[id(event)] = event.to_json()
            yield (
                sink,
                event.source,
                event.deployment_id,
                event.status.value,
                to_db(event.happened_at),
                text,
                now,
                now,
                lane_key(event),
            )

    # -- outbox ----------------------------------------------------------------------------------
    def claim(
        self,
        sink: str,
        *,
        limit: int,
        lease_seconds: float,
        now: datetime,
        lane: int = 0,
        lanes: int = 1,
    ) -> list[OutboxRow]:
        """Claim up to ``limit`` due pending rows of ``sink``, oldest ``happened_at`` first.

        With ``lanes`` above one, only rows of line ``lane`` (``lane_key % lanes``), whose head is
        held on its own: a row waiting for its retry holds back the later rows of its lane only.

        The line is held at its head: rows come in ``(happened_at, id)`` order and the walk stops
        at the first row waiting for its retry (``next_attempt_at`` still ahead), so nothing later
        overtakes it. The rule lives here, not in a worker's memory of its backoff, because a
        restarted daemon or a ``fetcher sync`` beside it claims from the same file without that
        memory. Rows under another live claim are in flight elsewhere and are stepped over.

        Selecting and marking happen under one write lock, so two processes never claim the same
        row. A row whose stored event no longer parses (written by an incompatible version) is
        dead-lettered here rather than returned, so it cannot block the sink's queue forever.
        """
        if limit <= 0:
            return []
        at = to_db(now)
        until = to_db(now + timedelta(seconds=lease_seconds))
        with self._db.write(f"claiming rows for the sink {sink!r}") as conn:
            # Not filtering on next_attempt_at keeps the walk to ``limit`` rows of the claim index
            # in delivery order; a subquery for the first waiting row would scan the sink's whole
            # backlog whenever no row waits.
            line = conn.execute(
                f"""
                SELECT {_ROW_COLUMNS} FROM outbox
                WHERE sink = ? AND state = 'pending' AND lane_key % ? = ?
                  AND (claim_until IS NULL OR claim_until <= ?)
                ORDER BY happened_at, id
                LIMIT ?
                """,  # noqa: S608 - only constant column names are interpolated
                (sink, max(lanes, 1), lane, at, limit),
            ).fetchall()
            found = list(takewhile(lambda record: record[_NEXT_ATTEMPT] <= at, line))
            claimed: list[OutboxRow] = []
            poisoned: list[tuple[str, str, int]] = []
            for record in found:
                row = self._decode(record)
                if isinstance(row, str):
                    poisoned.append((row, at, record[0]))
                else:
                    claimed.append(row)
            token = self.claim_token
            conn.executemany(
                "UPDATE outbox SET claimed_by = ?, claim_until = ? WHERE id = ?",
                [(token, until, row.id) for row in claimed],
            )
            conn.executemany(
                """
                UPDATE outbox SET state = 'dead', last_error = ?, dead_at = ?,
                    claimed_by = NULL, claim_until = NULL
                WHERE id = ?
                """,
                poisoned,
            )
        return claimed

    def _time(self, value: datetime) -> Any:
        """A time as this store writes it."""
        return to_db(value)

    def _finish(
        self, action: str, statements: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]
    ) -> int:
        """Settle pending rows and drop their claims, every statement in one write transaction."""
        changed = 0
        with self._db.write(action) as conn:
            for assignments, rows in statements:
                changed += conn.executemany(
                    f"""
                    UPDATE outbox SET {assignments}, claimed_by = NULL, claim_until = NULL
                    WHERE id = ? AND state = 'pending'
                    """,  # noqa: S608 - assignments are constants of SettlesRows
                    rows,
                ).rowcount
        return changed

    def release(self, row_ids: Sequence[int]) -> None:
        """Give back this process's claims without counting an attempt (shutdown, sink paused)."""
        if not row_ids:
            return
        token = self.claim_token
        with self._db.write("releasing claims") as conn:
            conn.executemany(
                """
                UPDATE outbox SET claimed_by = NULL, claim_until = NULL
                WHERE id = ? AND claimed_by = ?
                """,
                [(row_id, token) for row_id in row_ids],
            )

    def _release_orphaned_claims(self) -> None:
        """Free, on open, the claims of processes on this host that died holding them.

        Best effort: a store opened read-only (``fetcher outbox list`` on a copy) must still open,
        and those rows are freed anyway when their lease runs out.
        """
        try:
            with self._db.read("looking for orphaned claims") as conn:
                owners = [
                    row[0]
                    for row in conn.execute(
                        "SELECT DISTINCT claimed_by FROM outbox WHERE claimed_by IS NOT NULL"
                    )
                ]
            orphaned = [(owner,) for owner in owners if is_orphaned(owner, self.claim_token)]
            if not orphaned:
                return
            with self._db.write("releasing orphaned claims") as conn:
                released = conn.executemany(
                    "UPDATE outbox SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = ?",
                    orphaned,
                ).rowcount
        except StoreError as exc:
            _log.warning("store.orphaned_claims_kept", path=str(self.path), error=str(exc))
            return
        _log.info("store.orphaned_claims_released", path=str(self.path), rows=released)

    def pending_count(self, sink: str) -> int:
        """Rows of ``sink`` not yet delivered nor dead."""
        with self._db.read("counting pending rows") as conn:
            found = conn.execute(
                "SELECT count(*) FROM outbox WHERE sink = ? AND state = 'pending'", (sink,)
            ).fetchone()
        return int(found[0])

    def stats(self) -> list[OutboxStats]:
        """Counts per sink (every sink that has rows), ordered by sink."""
        with self._db.read("counting rows") as conn:
            found = conn.execute(
                """
                SELECT sink,
                       sum(state = 'pending'), sum(state = 'delivered'), sum(state = 'dead'),
                       min(CASE WHEN state = 'pending' THEN created_at END)
                FROM outbox GROUP BY sink ORDER BY sink
                """
            ).fetchall()
        return [
            OutboxStats(sink, pending, delivered, dead, None if oldest is None else from_db(oldest))
            for sink, pending, delivered, dead, oldest in found
        ]

    def list_rows(
        self, *, sink: str | None = None, state: RowState | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        """Rows for ``fetcher outbox list``, newest first; unreadable rows are logged and skipped."""
        where, params = _filters(sink=sink, state=state)
        with self._db.read("listing rows") as conn:
            found = conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM outbox{where} ORDER BY id DESC LIMIT ?",  # noqa: S608
                (*params, max(limit, 0)),
            ).fetchall()
        return [row for row in map(self._decode, found) if not isinstance(row, str)]

    def rows_for(self, deployment_id: str, *, sinks: Sequence[str]) -> list[OutboxRow]:
        """Every row of one deployment for ``sinks``, oldest ``happened_at`` first.

        One lookup per sink on the dedup index (which starts with sink, deployment_id), so the
        size of the outbox does not matter.
        """
        found: list[Any] = []
        with self._db.read(f"reading the rows of deployment {deployment_id!r}") as conn:
            for sink in dict.fromkeys(sinks):
                found += conn.execute(
                    f"SELECT {_ROW_COLUMNS} FROM outbox WHERE sink = ? AND deployment_id = ?",  # noqa: S608
                    (sink, deployment_id),
                ).fetchall()
        rows = [row for row in map(self._decode, found) if not isinstance(row, str)]
        return sorted(rows, key=lambda row: (row.event.happened_at, row.id))

    def make_due(self, *, sink: str | None = None, now: datetime) -> int:
        """Make pending rows waiting out a backoff due at ``now``; live claims are left alone."""
        where, params = _filters(sink=sink, state="pending")
        at = to_db(now)
        with self._db.write("making waiting rows due") as conn:
            return conn.execute(
                f"""
                UPDATE outbox SET next_attempt_at = ?
                {where} AND next_attempt_at > ? AND (claim_until IS NULL OR claim_until <= ?)
                """,  # noqa: S608 - the filters are built from constant clauses
                (at, *params, at, at),
            ).rowcount

    def retry_dead(self, *, sink: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Move dead letters back to pending (attempts reset, due now); returns how many.

        The last error is kept, so ``fetcher outbox list`` still says why the row died before.
        """
        where, params = _filters(sink=sink, state="dead")
        update = f"""
            UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, dead_at = NULL,
                claimed_by = NULL, claim_until = NULL
            {where}
        """  # noqa: S608 - the filters are built from constant clauses
        now = to_db(self._clock())
        with self._db.write("retrying dead letters") as conn:
            if ids is None:
                return conn.execute(update, (now, *params)).rowcount
            if not ids:
                return 0
            by_id = [(now, *params, row_id) for row_id in ids]
            return conn.executemany(f"{update} AND id = ?", by_id).rowcount

    def purge(
        self, *, state: RowState, sink: str | None = None, ids: Sequence[int] | None = None
    ) -> int:
        """Delete rows in ``state`` (dead letters, typically); returns how many."""
        where, params = _filters(sink=sink, state=state)
        if ids is not None:
            if not ids:
                return 0
            with self._db.write("purging rows") as conn:
                return conn.executemany(
                    f"DELETE FROM outbox{where} AND id = ?",  # noqa: S608
                    [(*params, row_id) for row_id in ids],
                ).rowcount
        return self._delete_in_batches(
            "purging rows",
            f"DELETE FROM outbox WHERE id IN (SELECT id FROM outbox{where} LIMIT ?)",  # noqa: S608
            params,
        )

    def prune_delivered(self, *, older_than: datetime) -> int:
        """Delete delivered rows older than the retention window; returns how many.

        Promotion ledger entries (:meth:`latest_success`) older than the same cutoff go too, and
        lifecycle ledger entries last written before it, so the file stays the size of the
        retention window. A deployment whose entry is gone is judged by its pages alone again.
        """
        cutoff = (to_db(older_than),)
        pruned = self._delete_in_batches(
            "pruning delivered rows",
            """
            DELETE FROM outbox WHERE id IN (
                SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at < ? LIMIT ?
            )
            """,
            cutoff,
        )
        self._delete_in_batches(
            "pruning the promotion ledger",
            """
            DELETE FROM successes WHERE rowid IN (
                SELECT rowid FROM successes WHERE happened_at < ? LIMIT ?
            )
            """,
            cutoff,
        )
        self._delete_in_batches(
            "pruning the lifecycle ledger",
            """
            DELETE FROM lifecycle WHERE (sink, deployment_id) IN (
                SELECT sink, deployment_id FROM lifecycle WHERE updated_at < ? LIMIT ?
            )
            """,
            cutoff,
        )
        return pruned

    def _delete_in_batches(self, action: str, statement: str, params: tuple[Any, ...]) -> int:
        """Run a ``DELETE … LIMIT ?`` until it deletes less than a batch, one transaction per batch."""
        total = 0
        while True:
            with self._db.write(action) as conn:
                deleted = conn.execute(statement, (*params, DELETE_BATCH)).rowcount
            total += deleted
            if deleted < DELETE_BATCH:
                return total

    # -- which rows are still pending (the dashboard backend's bookkeeping) ------------------------
    def pending_ids(self, rows: Sequence[tuple[str, DeployEvent]]) -> set[int]:
        """Ids of the outbox rows (by dedup key) of ``(sink, event)`` pairs that are still pending."""
        keys = list(
            {
                (sink, event.deployment_id, event.status.value, to_db(event.happened_at))
                for sink, event in rows
            }
        )
        found: set[int] = set()
        with self._db.read("looking up the rows of a page") as conn:
            for chunk in _chunks(keys, _KEYS_PER_QUERY):
                values = ", ".join("(?, ?, ?, ?)" for _ in chunk)
                params = [value for key in chunk for value in key]
                found.update(
                    row[0]
                    for row in conn.execute(
                        f"""
                        WITH wanted (sink, deployment_id, status, happened_at) AS (VALUES {values})
                        SELECT outbox.id FROM outbox
                        JOIN wanted USING (sink, deployment_id, status, happened_at)
                        WHERE outbox.state = 'pending'
                        """,  # noqa: S608 - only placeholders are interpolated
                        params,
                    )
                )
        return found

    def still_pending(self, ids: Iterable[int]) -> set[int]:
        """Those of ``ids`` whose rows are still pending (delivered, dead or purged ones are not)."""
        wanted = sorted(ids)
        found: set[int] = set()
        with self._db.read("checking pending rows") as conn:
            for chunk in _chunks(wanted, _IDS_PER_QUERY):
                marks = ", ".join("?" for _ in chunk)
                found.update(
                    row[0]
                    for row in conn.execute(
                        f"SELECT id FROM outbox WHERE state = 'pending' AND id IN ({marks})",  # noqa: S608
                        list(chunk),
                    )
                )
        return found

    # -- promotion order -------------------------------------------------------------------------
    def latest_success(self, *, service: str, environment: str, sha: str) -> str | None:
        """deployment_id of the latest successful deployment of service+sha in environment."""
        with self._db.read("looking up a successful deployment") as conn:
            found = conn.execute(
                """
                SELECT deployment_id FROM successes
                WHERE service = ? AND environment = ? AND sha = ?
                """,
                (service, environment, sha),
            ).fetchone()
        return None if found is None else str(found[0])

    # -- small values ----------------------------------------------------------------------------
    def get_value(self, key: str) -> str | None:
        """A value stored with :meth:`set_value`, or None."""
        with self._db.read(f"reading the value {key!r}") as conn:
            found = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if found is None else str(found[0])

    def set_value(self, key: str, value: str) -> None:
        """Store a small value under ``key`` (replacing any previous one)."""
        with self._db.write(f"storing the value {key!r}") as conn:
            conn.execute(
                """
                INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                """,
                (key, value, to_db(self._clock())),
            )

    # -- health ----------------------------------------------------------------------------------
    def check_writable(self) -> str | None:
        """None when the store can be written, else the reason (read-only, disk full, locked).

        Three cheap checks, each for what the others miss: permissions (a connection opened before a
        ``chmod`` or a remount would go on writing until the next restart, so SQLite alone would not
        tell), free space (a rolled-back write never reaches the disk, so it cannot detect a full
        one), and a real write that is rolled back (locks, and whatever SQLite itself refuses).
        """
        directory = self.path.parent
        if not self.path.exists():
            # Open connections write on into the unlinked file; all of it is lost at the restart.
            return f"state file {self.path}: the file was deleted or moved away"
        if not os.access(directory, os.W_OK):
            return f"state file {self.path}: the directory {directory} is read-only"
        if not os.access(self.path, os.W_OK):
            return f"state file {self.path}: the file is read-only"
        try:
            free = shutil.disk_usage(directory).free
        except OSError as exc:
            return (
                f"state file {self.path}: cannot tell the free disk space ({exc.strerror or exc})"
            )
        if free < self._min_free_bytes:
            return (
                f"state file {self.path}: the disk is full (only {free // 1024} KiB free,"
                f" at least {self._min_free_bytes // 1024} KiB needed)"
            )
        return self._probe_write()

    def _probe_write(self) -> str | None:
        try:
            with self._db.write("testing a write") as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO kv (key, value, updated_at) VALUES (?, '', '')",
                    (_PROBE_KEY,),
                )
                raise _RollBack  # noqa: TRY301 - leaving the block by exception is what rolls back
        except _RollBack:
            return None
        except StoreError as exc:
            return str(exc)

    def close(self) -> None:
        """Close every thread's connection."""
        self._db.close()

    # -- decoding --------------------------------------------------------------------------------
    def _decode(self, record: tuple[Any, ...]) -> OutboxRow | str:
        """The row, or why its stored event cannot be read back (logged once here)."""
        row_id, sink, source, event, state, attempts, created, next_attempt, last_error = record
        try:
            parsed = DeployEvent.from_json(event)
        except ValueError as exc:
            reason = f"stored event cannot be read back: {exc}"
            _log.warning(
                "store.unreadable_row", path=str(self.path), row=row_id, sink=sink, error=reason
            )
            return reason
        return OutboxRow(
            id=row_id,
            sink=sink,
            source=source,
            event=parsed,
            state=state,
            attempts=attempts,
            created_at=from_db(created),
            next_attempt_at=from_db(next_attempt),
            last_error=last_error,
        )


def _read_ledger(
    conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Reached]:
    """The lifecycle ledger's entries for ``(sink, deployment_id)`` keys (those it has)."""
    found: dict[tuple[str, str], Reached] = {}
    for chunk in _chunks(keys, _KEYS_PER_QUERY):
        values = ", ".join("(?, ?)" for _ in chunk)
        for sink, deployment, status, at in conn.execute(
            f"""
            WITH wanted (sink, deployment_id) AS (VALUES {values})
            SELECT ledger.sink, ledger.deployment_id, ledger.status, ledger.happened_at
            FROM wanted CROSS JOIN lifecycle AS ledger
            WHERE ledger.sink = wanted.sink AND ledger.deployment_id = wanted.deployment_id
            """,  # noqa: S608 - only placeholders are interpolated; CROSS JOIN: one key lookup each
            [value for key in chunk for value in key],
        ):
            found[(sink, deployment)] = Reached(Status(status), from_db(at))
    return found


def _already_queued(conn: sqlite3.Connection, gated: Gated) -> set[int]:
    """Indexes of the gate's dropped rows whose state their sink holds at or after their time."""
    return {
        index
        for index, dropped in enumerate(gated.dropped)
        if conn.execute(
            """
            SELECT 1 FROM outbox
            WHERE sink = ? AND deployment_id = ? AND status = ? AND happened_at >= ?
            LIMIT 1
            """,
            (
                dropped.sink,
                dropped.event.deployment_id,
                dropped.event.status.value,
                to_db(dropped.event.happened_at),
            ),
        ).fetchone()
        is not None
    }


def _success_params(events: Iterable[DeployEvent]) -> list[tuple[str, str, str, str, str]]:
    """Successful deployments with a sha, once each however many sinks they were fanned out to."""
    unique = {
        (e.service, e.environment, e.sha, e.deployment_id, to_db(e.happened_at)): None
        for e in events
        if e.status is Status.SUCCESS and e.sha
    }
    return [(service, env, sha or "", dep, at) for service, env, sha, dep, at in unique]


def _filters(*, sink: str | None, state: RowState | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause (always present, so callers can append ``AND …``) and its parameters."""
    clauses = ["1 = 1"]
    params: list[str] = []
    if sink is not None:
        clauses.append("sink = ?")
        params.append(sink)
    if state is not None:
        clauses.append("state = ?")
        params.append(state)
    return " WHERE " + " AND ".join(clauses), tuple(params)

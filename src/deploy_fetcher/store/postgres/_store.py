"""The PostgreSQL state store: cursors, the outbox, its dedup ledger and dead letters in one database.

The same contract as the SQLite file (:class:`~deploy_fetcher.store.StateStore`), for operators who
run several replicas or already operate PostgreSQL. Each method is one short transaction on a pooled
connection; nothing loads the whole outbox, and prunes and purges delete in batches.

Claims lock the rows they take with ``FOR UPDATE SKIP LOCKED``, so claimers in several processes
never wait on one another and never take the same row; the head-of-line rule is kept by reading the
sink's line first, without locks, and locking only the due rows before the first one that waits (see
:meth:`PostgresStore.claim`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from deploy_fetcher.errors import StoreError
from deploy_fetcher.lifecycle import Gated, Reached, gate, ledger_keys
from deploy_fetcher.model import DeployEvent, Status, utc_now
from deploy_fetcher.store._base import CursorRecord, Fence, OutboxRow, OutboxStats, RowState
from deploy_fetcher.store._claims import is_orphaned, process_token
from deploy_fetcher.store._codec import dump_cursor, load_cursor
from deploy_fetcher.store._lanes import lane_key
from deploy_fetcher.store._ledger import report
from deploy_fetcher.store._settle import SettlesRows
from deploy_fetcher.store.postgres._database import Database, url_label
from deploy_fetcher.store.postgres._leases import LeaseBoard, check_fence
from deploy_fetcher.store.postgres._schema import SCHEMA, Connection, ensure_schema

__all__ = ["PostgresStore"]

_log = structlog.get_logger(__name__)

#: Rows deleted per transaction by prunes and purges, so no lock is held for long.
DELETE_BATCH: Final = 500
_PROBE_KEY: Final = "deploy-fetcher.write-probe"
#: How many stretches of a sink's line one claim reads past rows other claimers hold.
_CLAIM_ROUNDS: Final = 8

_ROW_COLUMNS: Final = (
    "id, sink, source, event, state, attempts, created_at, next_attempt_at, last_error"
)
_INSERT_ROWS: Final = f"""
    INSERT INTO {SCHEMA}.outbox
        (sink, source, deployment_id, status, happened_at, event, created_at, next_attempt_at,
         lane_key)
    SELECT sink, source, deployment_id, status, happened_at, event, %(now)s, %(now)s, lane_key
    FROM unnest(%(sink)s::text[], %(source)s::text[], %(deployment_id)s::text[],
                %(status)s::text[], %(happened_at)s::timestamptz[], %(event)s::text[],
                %(lane_key)s::integer[])
         WITH ORDINALITY AS page (sink, source, deployment_id, status, happened_at, event,
                                  lane_key, n)
    ORDER BY n
    ON CONFLICT ON CONSTRAINT outbox_dedup DO NOTHING
"""
_UPSERT_SUCCESS: Final = f"""
    INSERT INTO {SCHEMA}.successes (service, environment, sha, deployment_id, happened_at)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (service, environment, sha) DO UPDATE
        SET deployment_id = excluded.deployment_id, happened_at = excluded.happened_at
        WHERE excluded.happened_at > {SCHEMA}.successes.happened_at
"""
#: Namespace of the lifecycle ledger's advisory locks (two-key locks: apart from one-key ones).
_LEDGER_LOCKS: Final = 0x4446_4C43
_LOCK_LEDGER: Final = """
    SELECT count(pg_advisory_xact_lock(%s, key))
    FROM (SELECT key FROM unnest(%s::integer[]) AS key ORDER BY key) AS keys
"""
_UPSERT_LIFECYCLE: Final = f"""
    INSERT INTO {SCHEMA}.lifecycle (sink, deployment_id, status, happened_at, updated_at)
    SELECT sink, deployment_id, status, happened_at, %(now)s
    FROM unnest(%(sink)s::text[], %(deployment_id)s::text[], %(status)s::text[],
                %(happened_at)s::timestamptz[]) AS page (sink, deployment_id, status, happened_at)
    ON CONFLICT (sink, deployment_id) DO UPDATE
        SET status = excluded.status, happened_at = excluded.happened_at,
            updated_at = excluded.updated_at
"""
_UPSERT_CURSOR: Final = f"""
    INSERT INTO {SCHEMA}.cursors (key, cursor, updated_at) VALUES (%s, %s, %s)
    ON CONFLICT (key) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at
"""


class PostgresStore(SettlesRows):
    """A :class:`~deploy_fetcher.store.StateStore` in a PostgreSQL database, shared by replicas.

    Opening creates the schema in an empty database, migrates an older one, and refuses one that
    belongs to another application or to a newer deploy-fetcher, without touching it. A database
    that cannot be reached at open is a :class:`~deploy_fetcher.errors.StoreError`; once open, an
    outage makes each call fail with one (the poller and the delivery workers retry) until the pool
    reconnects by itself. ``clock`` stamps rows, cursors and values (tests pass a fake); claims and
    deliveries take the time from the caller, and a claim's lease runs on the database's clock.
    """

    PLACEHOLDER = "%s"

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        pool_size: int = 10,
        borrow_timeout: float = 10.0,
    ) -> None:
        self.label = url_label(url)
        self._clock = clock
        self._db = Database(url, max_size=pool_size, borrow_timeout=borrow_timeout)
        self._board = LeaseBoard(self._db)
        try:
            ensure_schema(self._db)
        except BaseException:
            self._db.close()
            raise
        self._release_orphaned_claims()

    def __repr__(self) -> str:
        return f"PostgresStore({self.label!r})"

    @property
    def claim_token(self) -> str:
        """This process's claim owner id (also its member id in the replica set)."""
        return process_token()

    @property
    def lease_board(self) -> LeaseBoard:
        """Membership and leases of the replicas sharing this database."""
        return self._board

    # -- cursors ---------------------------------------------------------------------------------
    def get_cursor(self, key: str) -> dict[str, Any] | None:
        """Return the cursor stored for a source target, or None before its first commit."""
        with self._db.connection(f"reading the cursor {key!r}") as conn:
            found = conn.execute(
                f"SELECT cursor FROM {SCHEMA}.cursors WHERE key = %s",
                (key,),
            ).fetchone()
        return None if found is None else self._load_cursor(key, str(found[0]))

    def list_cursors(self) -> list[CursorRecord]:
        """Every stored cursor, ordered by key."""
        with self._db.connection("listing cursors") as conn:
            found = conn.execute(
                f'SELECT key, cursor, updated_at FROM {SCHEMA}.cursors ORDER BY key COLLATE "C"'
            ).fetchall()
        return [
            CursorRecord(str(key), self._load_cursor(str(key), str(cursor)), _aware(updated))
            for key, cursor, updated in found
        ]

    def reset_cursor(self, key: str) -> bool:
        """Forget a cursor (the next poll starts at now - lookback); False when there was none."""
        with self._db.transaction(f"resetting the cursor {key!r}") as conn:
            deleted = conn.execute(
                f"DELETE FROM {SCHEMA}.cursors WHERE key = %s",
                (key,),
            ).rowcount
        return deleted > 0

    def _load_cursor(self, key: str, text: str) -> dict[str, Any]:
        try:
            return load_cursor(text)
        except ValueError as exc:
            msg = f"state database {self.label}: the cursor {key!r} is damaged ({exc}); reset it"
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
        rename) for :meth:`latest_success`; when None, the rows' events are used. The page's rows go
        in with one statement (arrays through ``unnest``), whatever their number. With a ``fence``,
        the lease is checked first inside the same transaction (see :func:`check_fence`): a replica
        that lost it raises LeaseLost and stores nothing.

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

        The lifecycle ledger's entries of the page are locked before they are read (transaction
        advisory locks, one per ``(sink, deployment_id)``, taken in one order by every writer), so
        two writers committing the same deployment — replicas polling overlapping targets, a
        ``fetcher sync`` beside the daemon — judge it one after the other, each against what the
        other committed.
        """
        if cursor is None and not rows and not successes and fence is None:
            return 0, []
        now = _utc(self._clock())
        cursor_json = None if cursor is None else dump_cursor(key, cursor)
        encoded = {id(event): event.to_json() for _, event in rows}
        ledger = _success_params((event for _, event in rows) if successes is None else successes)
        keys = ledger_keys(rows)
        with self._db.transaction(f"committing a page for {key!r}") as conn:
            if fence is not None:
                check_fence(conn, fence)
            gated = gate(rows, _lock_ledger(conn, keys))
            repeated = _already_queued(conn, gated)  # before this page's rows are in
            inserted = (
                conn.execute(
                    _INSERT_ROWS, {**_outbox_columns(gated.rows, encoded), "now": now}
                ).rowcount
                if gated.rows
                else 0
            )
            if gated.reached:
                conn.execute(_UPSERT_LIFECYCLE, {**_ledger_columns(gated), "now": now})
            if ledger:
                with conn.cursor() as cur:
                    cur.executemany(_UPSERT_SUCCESS, ledger)
            if cursor_json is not None:
                conn.execute(_UPSERT_CURSOR, (key, cursor_json, now))
        report(gated, repeated)
        return max(inserted, 0), gated.rows

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

        With ``lanes`` above one, only rows of line ``lane`` (``lane_key % lanes``), each line held
        at its own head; replicas can claim different lines of one sink side by side.

        The line is held at its head, as in the SQLite store: the walk stops at the first row waiting
        for its retry, so nothing later overtakes it. Rows under another live claim are in flight
        elsewhere and are stepped over. Two steps keep that rule with concurrent claimers: the line
        is read without locks (so a waiting row is never locked by anyone's claim, which would make
        other claimers step over it), then the due rows before the first waiting one are locked with
        ``SKIP LOCKED`` and checked again under the lock (a row locked by another claimer is being
        claimed or settled there: in flight elsewhere). When other claimers hold the stretch read,
        the next stretch of the line is read, a few times at most, so a claim comes back empty only
        when nothing is free to take. A row whose stored event no longer parses is
        dead-lettered here rather than returned, so it cannot block the sink's queue forever.

        Claims run by the database's clock (see :meth:`_claim_clock`), so a replica whose clock is
        ahead cannot take rows another replica still has in flight, nor one whose clock is behind
        keep them past their lease. Retries fall due by ``now``.
        """
        if limit <= 0:
            return []
        at = _utc(now)
        with self._db.transaction(f"claiming rows for the sink {sink!r}") as conn:
            held_at = self._claim_clock(conn, at)
            until = held_at + timedelta(seconds=lease_seconds)
            claimed: list[OutboxRow] = []
            poisoned: list[tuple[str, datetime, int]] = []
            after: tuple[datetime, int] | None = None
            for _ in range(_CLAIM_ROUNDS):
                line = self._read_line(conn, (sink, max(lanes, 1), lane), held_at, limit, after)
                due = list(_before_waiting(line, at))
                stop = bool(due) and self._lock_due(
                    conn,
                    due,
                    at=at,
                    held_at=held_at,
                    claimed=claimed,
                    poisoned=poisoned,
                    limit=limit,
                )
                if not due or stop or len(due) < len(line) or len(line) < limit:
                    break  # a waiting row, the line's end, or enough rows
                if len(claimed) + len(poisoned) >= limit:
                    break
                last = line[-1]
                after = (_aware(last[2]), int(str(last[0])))
            claimed = claimed[:limit]
            if claimed:
                conn.execute(
                    f"UPDATE {SCHEMA}.outbox SET claimed_by = %s, claim_until = %s"
                    " WHERE id = ANY(%s)",
                    (self.claim_token, until, [row.id for row in claimed]),
                )
            if poisoned:
                with conn.cursor() as cur:
                    cur.executemany(
                        f"""
                        UPDATE {SCHEMA}.outbox SET state = 'dead', last_error = %s, dead_at = %s,
                            claimed_by = NULL, claim_until = NULL
                        WHERE id = %s
                        """,
                        poisoned,
                    )
        return claimed

    def _claim_clock(self, conn: Connection, now: datetime) -> datetime:
        """``now`` on the database's clock: its time, moved by how far ``now`` is from this store's.

        Every replica stamps and checks claims on this one clock. In production ``now`` is this
        store's clock read a moment ago (the offset is nothing); a test's fake clock moves the
        claims by as much as it moves its own time, so claims still expire when it says so.
        """
        found = conn.execute("SELECT clock_timestamp()").fetchone()
        assert found is not None  # noqa: S101 - a SELECT of one value returns one row
        return _aware(found[0]) + (now - _utc(self._clock()))

    @staticmethod
    def _read_line(
        conn: Connection,
        line: tuple[str, int, int],
        held_at: datetime,
        limit: int,
        after: tuple[datetime, int] | None,
    ) -> list[tuple[Any, ...]]:
        """The next ``limit`` pending rows of a line — ``(sink, lanes, lane)`` — free at ``held_at``."""
        start = "" if after is None else "AND (happened_at, id) > (%s, %s)"
        return conn.execute(
            f"""
            SELECT id, next_attempt_at, happened_at FROM {SCHEMA}.outbox
            WHERE sink = %s AND state = 'pending' AND lane_key %% %s = %s
              AND (claim_until IS NULL OR claim_until <= %s) {start}
            ORDER BY happened_at, id
            LIMIT %s
            """,
            (*line, held_at, *(after or ()), limit),
        ).fetchall()

    def _lock_due(
        self,
        conn: Connection,
        due: list[tuple[Any, ...]],
        *,
        at: datetime,
        held_at: datetime,
        claimed: list[OutboxRow],
        poisoned: list[tuple[str, datetime, int]],
        limit: int,
    ) -> bool:
        """Lock what is still free of ``due`` and take it; True when the line stops (a row waits).

        ``at`` is the caller's time (retries fall due by it); ``held_at`` the claims' clock.
        """
        locked = conn.execute(
            f"""
            SELECT {_ROW_COLUMNS}, claim_until FROM {SCHEMA}.outbox
            WHERE id = ANY(%s)
            ORDER BY happened_at, id
            FOR UPDATE SKIP LOCKED
            """,
            ([int(str(record[0])) for record in due],),
        ).fetchall()
        for record in locked:
            *columns, claim_until = record
            if columns[4] != "pending" or (
                claim_until is not None and _aware(claim_until) > held_at
            ):
                continue  # settled or claimed since the line was read
            if _aware(columns[7]) > at:
                return True  # waits for its retry now: the line stops here
            if len(claimed) + len(poisoned) >= limit:
                return False
            row = self._decode(tuple(columns))
            if isinstance(row, str):
                poisoned.append((row, at, int(str(columns[0]))))
            else:
                claimed.append(row)
        return False

    def _time(self, value: datetime) -> Any:
        """A time as this store writes it."""
        return _utc(value)

    def _finish(
        self, action: str, statements: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]
    ) -> int:
        """Settle pending rows and drop their claims, every statement in one transaction.

        ``executemany`` sends a statement's rows in one pipeline, not one round trip each.
        """
        changed = 0
        with self._db.transaction(action) as conn, conn.cursor() as cur:
            for assignments, rows in statements:
                cur.executemany(
                    f"""
                    UPDATE {SCHEMA}.outbox SET {assignments}, claimed_by = NULL, claim_until = NULL
                    WHERE id = %s AND state = 'pending'
                    """,
                    rows,
                )
                changed += max(cur.rowcount, 0)
        return changed

    def release(self, row_ids: Sequence[int]) -> None:
        """Give back this process's claims without counting an attempt (shutdown, sink paused)."""
        if not row_ids:
            return
        with self._db.transaction("releasing claims") as conn:
            conn.execute(
                f"""
                UPDATE {SCHEMA}.outbox SET claimed_by = NULL, claim_until = NULL
                WHERE id = ANY(%s) AND claimed_by = %s
                """,
                (list(row_ids), self.claim_token),
            )

    def _release_orphaned_claims(self) -> None:
        """Free, on open, the claims of processes on this host that died holding them (best effort)."""
        try:
            with self._db.connection("looking for orphaned claims") as conn:
                owners = [
                    str(row[0])
                    for row in conn.execute(
                        f"SELECT DISTINCT claimed_by FROM {SCHEMA}.outbox"
                        " WHERE claimed_by IS NOT NULL"
                    )
                ]
            orphaned = [owner for owner in owners if is_orphaned(owner, self.claim_token)]
            if not orphaned:
                return
            with self._db.transaction("releasing orphaned claims") as conn:
                released = conn.execute(
                    f"UPDATE {SCHEMA}.outbox SET claimed_by = NULL, claim_until = NULL"
                    " WHERE claimed_by = ANY(%s)",
                    (orphaned,),
                ).rowcount
        except StoreError as exc:
            _log.warning("store.orphaned_claims_kept", database=self.label, error=str(exc))
            return
        _log.info("store.orphaned_claims_released", database=self.label, rows=released)

    def pending_count(self, sink: str) -> int:
        """Rows of ``sink`` not yet delivered nor dead."""
        with self._db.connection("counting pending rows") as conn:
            found = conn.execute(
                f"SELECT count(*) FROM {SCHEMA}.outbox WHERE sink = %s AND state = 'pending'",
                (sink,),
            ).fetchone()
        return int(str(found[0])) if found else 0

    def stats(self) -> list[OutboxStats]:
        """Counts per sink (every sink that has rows), ordered by sink."""
        with self._db.connection("counting rows") as conn:
            found = conn.execute(
                f"""
                SELECT sink,
                       count(*) FILTER (WHERE state = 'pending'),
                       count(*) FILTER (WHERE state = 'delivered'),
                       count(*) FILTER (WHERE state = 'dead'),
                       min(created_at) FILTER (WHERE state = 'pending')
                FROM {SCHEMA}.outbox GROUP BY sink ORDER BY sink COLLATE "C"
                """
            ).fetchall()
        return [
            OutboxStats(
                str(sink),
                int(str(pending)),
                int(str(delivered)),
                int(str(dead)),
                None if oldest is None else _aware(oldest),
            )
            for sink, pending, delivered, dead, oldest in found
        ]

    def list_rows(
        self, *, sink: str | None = None, state: RowState | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        """Rows for ``fetcher outbox list``, newest first; unreadable rows are logged and skipped."""
        where, params = _filters(sink=sink, state=state)
        with self._db.connection("listing rows") as conn:
            found = conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM {SCHEMA}.outbox{where} ORDER BY id DESC LIMIT %s",
                (*params, max(limit, 0)),
            ).fetchall()
        return [row for row in map(self._decode, found) if not isinstance(row, str)]

    def rows_for(self, deployment_id: str, *, sinks: Sequence[str]) -> list[OutboxRow]:
        """Every row of one deployment for ``sinks``, oldest ``happened_at`` first (dedup index)."""
        if not sinks:
            return []
        with self._db.connection(f"reading the rows of deployment {deployment_id!r}") as conn:
            found = conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM {SCHEMA}.outbox"
                " WHERE sink = ANY(%s) AND deployment_id = %s ORDER BY happened_at, id",
                (list(dict.fromkeys(sinks)), deployment_id),
            ).fetchall()
        return [row for row in map(self._decode, found) if not isinstance(row, str)]

    def make_due(self, *, sink: str | None = None, now: datetime) -> int:
        """Make pending rows waiting out a backoff due at ``now``; live claims are left alone."""
        where, params = _filters(sink=sink, state="pending")
        at = _utc(now)
        with self._db.transaction("making waiting rows due") as conn:
            held_at = self._claim_clock(conn, at)
            return conn.execute(
                f"""
                UPDATE {SCHEMA}.outbox SET next_attempt_at = %s
                {where} AND next_attempt_at > %s AND (claim_until IS NULL OR claim_until <= %s)
                """,
                (at, *params, at, held_at),
            ).rowcount

    def retry_dead(self, *, sink: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Move dead letters back to pending (attempts reset, due now); returns how many.

        The last error is kept, so ``fetcher outbox list`` still says why the row died before.
        """
        if ids is not None and not ids:
            return 0
        where, params = _filters(sink=sink, state="dead")
        if ids is not None:
            where += " AND id = ANY(%s)"
            params = (*params, list(ids))
        with self._db.transaction("retrying dead letters") as conn:
            return conn.execute(
                f"""
                UPDATE {SCHEMA}.outbox SET state = 'pending', attempts = 0, next_attempt_at = %s,
                    dead_at = NULL, claimed_by = NULL, claim_until = NULL
                {where}
                """,
                (_utc(self._clock()), *params),
            ).rowcount

    def purge(
        self, *, state: RowState, sink: str | None = None, ids: Sequence[int] | None = None
    ) -> int:
        """Delete rows in ``state`` (dead letters, typically); returns how many."""
        where, params = _filters(sink=sink, state=state)
        if ids is not None:
            if not ids:
                return 0
            with self._db.transaction("purging rows") as conn:
                return conn.execute(
                    f"DELETE FROM {SCHEMA}.outbox{where} AND id = ANY(%s)",
                    (*params, list(ids)),
                ).rowcount
        return self._delete_in_batches(
            "purging rows",
            f"DELETE FROM {SCHEMA}.outbox WHERE id IN"
            f" (SELECT id FROM {SCHEMA}.outbox{where} LIMIT %s)",
            params,
        )

    def prune_delivered(self, *, older_than: datetime) -> int:
        """Delete delivered rows older than the retention window; returns how many.

        Promotion ledger entries (:meth:`latest_success`) older than the same cutoff go too, and
        lifecycle ledger entries last written before it (that deployment is then judged by its
        pages alone again).
        """
        cutoff = (_utc(older_than),)
        pruned = self._delete_in_batches(
            "pruning delivered rows",
            f"""
            DELETE FROM {SCHEMA}.outbox WHERE id IN (
                SELECT id FROM {SCHEMA}.outbox
                WHERE state = 'delivered' AND delivered_at < %s LIMIT %s
            )
            """,
            cutoff,
        )
        self._delete_in_batches(
            "pruning the promotion ledger",
            f"""
            DELETE FROM {SCHEMA}.successes WHERE (service, environment, sha) IN (
                SELECT service, environment, sha FROM {SCHEMA}.successes
                WHERE happened_at < %s LIMIT %s
            )
            """,
            cutoff,
        )
        self._delete_in_batches(
            "pruning the lifecycle ledger",
            f"""
            DELETE FROM {SCHEMA}.lifecycle WHERE (sink, deployment_id) IN (
                SELECT sink, deployment_id FROM {SCHEMA}.lifecycle WHERE updated_at < %s LIMIT %s
            )
            """,
            cutoff,
        )
        return pruned

    def _delete_in_batches(self, action: str, statement: str, params: tuple[Any, ...]) -> int:
        """Run a ``DELETE … LIMIT %s`` until it deletes less than a batch, one transaction each."""
        total = 0
        while True:
            with self._db.transaction(action) as conn:
                deleted = conn.execute(statement, (*params, DELETE_BATCH)).rowcount
            total += deleted
            if deleted < DELETE_BATCH:
                return total

    # -- promotion order -------------------------------------------------------------------------
    def latest_success(self, *, service: str, environment: str, sha: str) -> str | None:
        """deployment_id of the latest successful deployment of service+sha in environment."""
        with self._db.connection("looking up a successful deployment") as conn:
            found = conn.execute(
                f"""
                SELECT deployment_id FROM {SCHEMA}.successes
                WHERE service = %s AND environment = %s AND sha = %s
                """,
                (service, environment, sha),
            ).fetchone()
        return None if found is None else str(found[0])

    # -- small values ----------------------------------------------------------------------------
    def get_value(self, key: str) -> str | None:
        """A value stored with :meth:`set_value`, or None."""
        with self._db.connection(f"reading the value {key!r}") as conn:
            found = conn.execute(
                f"SELECT value FROM {SCHEMA}.kv WHERE key = %s",
                (key,),
            ).fetchone()
        return None if found is None else str(found[0])

    def set_value(self, key: str, value: str) -> None:
        """Store a small value under ``key`` (replacing any previous one)."""
        with self._db.transaction(f"storing the value {key!r}") as conn:
            conn.execute(
                f"""
                INSERT INTO {SCHEMA}.kv (key, value, updated_at) VALUES (%s, %s, %s)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                """,
                (key, value, _utc(self._clock())),
            )

    # -- health ----------------------------------------------------------------------------------
    def check_writable(self) -> str | None:
        """None when the store can be written, else the reason (unreachable, read-only, full).

        A real write, rolled back: it finds what a commit would meet (no connection, a read-only
        standby after a failover, a full disk, a revoked privilege) without leaving a trace.
        """
        try:
            with self._db.transaction("testing a write") as conn:
                conn.execute(
                    f"""
                    INSERT INTO {SCHEMA}.kv (key, value, updated_at) VALUES (%s, '', now())
                    ON CONFLICT (key) DO UPDATE SET value = excluded.value
                    """,
                    (_PROBE_KEY,),
                )
                raise _RollBack  # noqa: TRY301 - leaving the block by exception is what rolls back
        except _RollBack:
            return None
        except StoreError as exc:
            return str(exc)

    def close(self) -> None:
        """Close every pooled connection."""
        self._db.close()

    # -- decoding --------------------------------------------------------------------------------
    def _decode(self, record: Sequence[Any]) -> OutboxRow | str:
        """The row, or why its stored event cannot be read back (logged once here)."""
        row_id, sink, source, event, state, attempts, created, next_attempt, last_error = record
        try:
            parsed = DeployEvent.from_json(event)
        except ValueError as exc:
            reason = f"stored event cannot be read back: {exc}"
            _log.warning(
                "store.unreadable_row", database=self.label, row=row_id, sink=sink, error=reason
            )
            return reason
        return OutboxRow(
            id=int(row_id),
            sink=sink,
            source=source,
            event=parsed,
            state=state,
            attempts=int(attempts),
            created_at=_aware(created),
            next_attempt_at=_aware(next_attempt),
            last_error=last_error,
        )


class _RollBack(Exception):
    """Raised inside a transaction to undo it."""


def _utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is refused (it would shift every lease and retry)."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"the state store only takes timezone-aware datetimes, got {value!r}"
        raise ValueError(msg)
    return value.astimezone(UTC)


def _aware(value: Any) -> datetime:
    """A ``timestamptz`` as read back: aware, in UTC (psycopg gives the session's time zone)."""
    if not isinstance(value, datetime):
        msg = f"expected a timestamp, got {value!r}"
        raise StoreError(msg)
    return value.astimezone(UTC)


def _before_waiting(line: Iterable[tuple[Any, ...]], at: datetime) -> Iterable[tuple[Any, ...]]:
    """The rows of a sink's line up to (not including) the first one waiting for its retry."""
    for record in line:
        if _aware(record[1]) > at:
            return
        yield record


def _outbox_columns(
    rows: Sequence[tuple[str, DeployEvent]], encoded: dict[int, str]
) -> dict[str, list[Any]]:
    """The page's rows as one array per column (an event fanned out to sinks is serialised once).

    ``encoded`` holds the events serialised before the transaction; a re-dated copy is added.
    """
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "sink",
            "source",
            "deployment_id",
            "status",
            "happened_at",
            "event",
            "lane_key",
        )
    }
    for sink, event in rows:
        text = encoded.get(id(event))
        if text is None:
            text = encoded[id(event)] = event.to_json()
        columns["sink"].append(sink)
        columns["source"].append(event.source)
        columns["deployment_id"].append(event.deployment_id)
        columns["status"].append(event.status.value)
        columns["happened_at"].append(_utc(event.happened_at))
        columns["event"].append(text)
        columns["lane_key"].append(lane_key(event))
    return columns


def _lock_keys(keys: Sequence[tuple[str, str]]) -> list[int]:
    """The advisory lock of each ledger entry: a 32-bit hash, sorted (a collision only serialises)."""
    return sorted(
        {
            int.from_bytes(
                hashlib.blake2b(f"{sink}\0{deployment}".encode(), digest_size=4).digest(),
                "big",
                signed=True,
            )
            for sink, deployment in keys
        }
    )


def _lock_ledger(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Reached]:
    """Lock the page's lifecycle ledger entries for the transaction, then read those that exist.

    Locks rather than ``FOR UPDATE``: an entry that does not exist yet has no row to lock, and two
    writers must not both judge a new deployment as unknown. Each statement of a transaction sees
    what committed before it began, so the read after the locks sees the other writer's entries.
    """
    if not keys:
        return {}
    conn.execute(_LOCK_LEDGER, (_LEDGER_LOCKS, _lock_keys(keys)))
    found = conn.execute(
        f"""
        SELECT sink, deployment_id, status, happened_at FROM {SCHEMA}.lifecycle
        JOIN unnest(%s::text[], %s::text[]) AS wanted (sink, deployment_id)
            USING (sink, deployment_id)
        """,
        ([sink for sink, _ in keys], [deployment for _, deployment in keys]),
    ).fetchall()
    return {
        (str(sink), str(deployment)): Reached(Status(str(status)), _aware(at))
        for sink, deployment, status, at in found
    }


def _already_queued(conn: Connection, gated: Gated) -> set[int]:
    """Indexes of the gate's dropped rows whose state their sink holds at or after their time."""
    if not gated.dropped:
        return set()
    found = conn.execute(
        f"""
        SELECT n - 1 FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[])
            WITH ORDINALITY AS dropped (sink, deployment_id, status, happened_at, n)
        WHERE EXISTS (
            SELECT 1 FROM {SCHEMA}.outbox AS o
            WHERE o.sink = dropped.sink AND o.deployment_id = dropped.deployment_id
              AND o.status = dropped.status AND o.happened_at >= dropped.happened_at
        )
        """,
        (
            [d.sink for d in gated.dropped],
            [d.event.deployment_id for d in gated.dropped],
            [d.event.status.value for d in gated.dropped],
            [_utc(d.event.happened_at) for d in gated.dropped],
        ),
    ).fetchall()
    return {int(str(row[0])) for row in found}


def _ledger_columns(gated: Gated) -> dict[str, list[Any]]:
    """The ledger entries that moved, as one array per column."""
    entries = list(gated.reached.items())
    return {
        "sink": [sink for (sink, _), _ in entries],
        "deployment_id": [deployment for (_, deployment), _ in entries],
        "status": [reached.status.value for _, reached in entries],
        "happened_at": [_utc(reached.happened_at) for _, reached in entries],
    }


def _success_params(
    events: Iterable[DeployEvent],
) -> list[tuple[str, str, str, str, datetime]]:
    """Successful deployments with a sha, once each however many sinks they were fanned out to."""
    unique = {
        (e.service, e.environment, e.sha or "", e.deployment_id, _utc(e.happened_at)): None
        for e in events
        if e.status is Status.SUCCESS and e.sha
    }
    return list(unique)


def _filters(*, sink: str | None, state: RowState | None) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause (always present, so callers can append ``AND …``) and its parameters."""
    clauses = ["true"]
    params: list[Any] = []
    if sink is not None:
        clauses.append("sink = %s")
        params.append(sink)
    if state is not None:
        clauses.append("state = %s")
        params.append(state)
    return " WHERE " + " AND ".join(clauses), tuple(params)

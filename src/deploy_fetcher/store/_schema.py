"""The SQLite state file's identity and schema, and the migrations that build it.

A state file carries two numbers in its header: ``PRAGMA application_id`` says the file belongs to
deploy-fetcher (so a stray database is never mistaken for ours and migrated into a mess), and
``PRAGMA user_version`` says how many migrations have run. The schema version is the length of
:data:`MIGRATIONS`: a future schema change is one function appended to that list, run once on open by
whichever process gets there first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

from deploy_fetcher.errors import ForeignStateError, StoreError
from deploy_fetcher.store._connections import Connections
from deploy_fetcher.store._lanes import lane_key_of_json
from deploy_fetcher.store._ledger import RANK_SQL

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "Migration",
    "check_file",
    "ensure_schema",
    "schema_version",
]

#: "DFET" in ASCII; written into every state file this project creates.
APPLICATION_ID: Final = 0x44464554

Migration = Callable[[sqlite3.Connection], None]


def _v1_initial(conn: sqlite3.Connection) -> None:
    """Create cursors, the outbox with its dedup ledger, the promotion ledger and the key/value table.

    Timestamps are ISO 8601 UTC text of fixed width (``2024-05-01T12:00:00.000000Z``) so they sort as
    text and stay readable in the ``sqlite3`` shell. ``AUTOINCREMENT`` keeps outbox ids from being
    reused after a purge, because operators refer to rows by id in ``fetcher outbox``.

    The claim index puts ``happened_at`` before ``next_attempt_at`` so a claim walks the index in
    delivery order and stops after ``limit`` due rows, instead of sorting the whole due backlog of a
    sink that was down for a day. The partial indexes stay small: only delivered rows waiting to be
    pruned, only rows under a claim.
    """
    statements = (
        """
        CREATE TABLE cursors (
            key        TEXT PRIMARY KEY,
            cursor     TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE outbox (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            sink            TEXT NOT NULL,
            source          TEXT NOT NULL,
            deployment_id   TEXT NOT NULL,
            status          TEXT NOT NULL,
            happened_at     TEXT NOT NULL,
            event           TEXT NOT NULL,
            state           TEXT NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'delivered', 'dead')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            created_at      TEXT NOT NULL,
            next_attempt_at TEXT NOT NULL,
            last_error      TEXT,
            claimed_by      TEXT,
            claim_until     TEXT,
            delivered_at    TEXT,
            dead_at         TEXT
        )
        """,
        "CREATE UNIQUE INDEX outbox_dedup ON outbox (sink, deployment_id, status, happened_at)",
        "CREATE INDEX outbox_claim ON outbox (sink, state, happened_at, next_attempt_at)",
        "CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE state = 'delivered'",
        "CREATE INDEX outbox_claimed ON outbox (claimed_by) WHERE claimed_by IS NOT NULL",
        """
        CREATE TABLE successes (
            service       TEXT NOT NULL,
            environment   TEXT NOT NULL,
            sha           TEXT NOT NULL,
            deployment_id TEXT NOT NULL,
            happened_at   TEXT NOT NULL,
            PRIMARY KEY (service, environment, sha)
        )
        """,
        "CREATE INDEX successes_age ON successes (happened_at)",
        """
        CREATE TABLE kv (
            key        TEXT PRIMARY KEY,
            value      TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
    )
    for statement in statements:
        conn.execute(statement)


def _v2_lanes(conn: sqlite3.Connection) -> None:
    """Delivery lanes: each row's lane key (see ``_lanes.py``), and the claim index with it.

    Rows still pending (or dead, which an operator may retry) get the key of their event's service,
    so their order within each service is kept whatever a sink's number of lanes; delivered rows are
    never claimed again and keep 0. The key
    joins the claim index so a lane's claim reads it there, without a visit to each row.
    """
    conn.execute("ALTER TABLE outbox ADD COLUMN lane_key INTEGER NOT NULL DEFAULT 0")
    pending = conn.execute("SELECT id, event FROM outbox WHERE state != 'delivered'").fetchall()
    conn.executemany(
        "UPDATE outbox SET lane_key = ? WHERE id = ?",
        [(lane_key_of_json(event), row_id) for row_id, event in pending],
    )
    conn.execute("DROP INDEX outbox_claim")
    conn.execute(
        "CREATE INDEX outbox_claim ON outbox (sink, state, happened_at, next_attempt_at, lane_key)"
    )


def _v3_lifecycle(conn: sqlite3.Connection) -> None:
    """The lifecycle ledger: what each deployment reached in each sink's outbox (``lifecycle.py``).

    One row per ``(sink, deployment_id)``, keyed like the dedup ledger and stored without a rowid
    (the key is the table). ``updated_at`` is when the row was last written, for the prune.

    It is filled from the outbox at once, so a deployment in flight during the upgrade is judged
    against what it already queued: its latest row in delivery order (time, then lifecycle place).
    """
    conn.execute(
        """
        CREATE TABLE lifecycle (
            sink          TEXT NOT NULL,
            deployment_id TEXT NOT NULL,
            status        TEXT NOT NULL,
            happened_at   TEXT NOT NULL,
            updated_at    TEXT NOT NULL,
            PRIMARY KEY (sink, deployment_id)
        ) WITHOUT ROWID
        """
    )
    conn.execute("CREATE INDEX lifecycle_age ON lifecycle (updated_at)")
    conn.execute(
        f"""
        INSERT INTO lifecycle (sink, deployment_id, status, happened_at, updated_at)
        SELECT sink, deployment_id, status, happened_at, written FROM (
            SELECT sink, deployment_id, status, happened_at,
                   max(created_at) OVER latest AS written,
                   row_number() OVER latest_first AS n
            FROM outbox
            WINDOW latest AS (PARTITION BY sink, deployment_id),
                   latest_first AS (
                       PARTITION BY sink, deployment_id
                       ORDER BY happened_at DESC, {RANK_SQL} DESC, id DESC
                   )
        ) WHERE n = 1
        """  # noqa: S608 - the rank expression is built from constants
    )


#: Migration ``i`` takes a file from schema version ``i`` to ``i + 1``.
MIGRATIONS: list[Migration] = [_v1_initial, _v2_lanes, _v3_lifecycle]


def schema_version() -> int:
    """The schema version this code writes (read at call time so tests can append a migration)."""
    return len(MIGRATIONS)


_MAGIC: Final = b"SQLite format 3\x00"
_REFUSED: Final = "refusing to touch it; move it away or set state.path to another file"


def check_file(path: Path) -> None:
    """Refuse, before SQLite opens anything, a path that cannot be or is not a state file.

    Reading the 16-byte header is enough to recognise a text file or some other binary, and unlike
    opening it with SQLite it cannot change a byte of it.
    """
    if not path.parent.is_dir():
        msg = f"cannot open state file {path}: the directory {path.parent} does not exist"
        raise StoreError(msg)
    if path.is_dir():
        msg = f"cannot open state file {path}: it is a directory"
        raise StoreError(msg)
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        msg = f"cannot read state file {path}: {exc.strerror or exc}"
        raise StoreError(msg) from exc
    if header and header != _MAGIC:
        msg = f"{path} is not a deploy-fetcher state file (not an SQLite database); {_REFUSED}"
        raise ForeignStateError(msg)


def _foreign_if_corrupt(exc: BaseException | None, path: Path) -> ForeignStateError | None:
    """The refusal for a file SQLite calls corrupt or not a database, else None."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if not name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return None
    msg = f"{path} is corrupt or not a deploy-fetcher state file ({exc}); {_REFUSED}"
    return ForeignStateError(msg)


def _identify(conn: sqlite3.Connection, path: Path) -> int:
    """Return the file's schema version (0 for a new, empty file) or refuse a foreign file."""
    try:
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    except sqlite3.DatabaseError as exc:
        raise _foreign_if_corrupt(exc, path) or exc from exc
    if application_id == 0 and version == 0 and not has_tables:
        return 0
    if application_id != APPLICATION_ID:
        msg = (
            f"{path} is not a deploy-fetcher state file (an SQLite database of another application,"
            f" application_id {application_id}); {_REFUSED}"
        )
        raise ForeignStateError(msg)
    if version > schema_version():
        msg = (
            f"{path} was written by a newer deploy-fetcher (schema version {version}, this one knows"
            f" up to {schema_version()}); upgrade deploy-fetcher or point state.path elsewhere"
        )
        raise ForeignStateError(msg)
    return int(version)


def ensure_schema(db: Connections) -> None:
    """Check the file is ours, switch it to WAL, and run the migrations it has not seen yet.

    The identity is checked once before anything is written (a foreign file is never switched to
    WAL) and again inside the migration transaction, because another process may be initialising
    the same new file at this very moment; whoever takes the write lock second finds the work done.
    """
    try:
        conn = db.get()
    except StoreError as exc:
        # Opening runs a pragma or two, which is where SQLite first notices a damaged file.
        raise _foreign_if_corrupt(exc.__cause__, db.path) or exc from exc.__cause__
    with db.errors("reading its header"):
        version = _identify(conn, db.path)
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if mode.lower() != "wal":
        with db.errors("switching it to WAL mode"):
            conn.execute("PRAGMA journal_mode = WAL")
    if version == schema_version():
        return
    with db.write("upgrading its schema") as tx:
        version = _identify(tx, db.path)
        for migration in MIGRATIONS[version:]:
            migration(tx)
        tx.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        tx.execute(f"PRAGMA user_version = {schema_version()}")

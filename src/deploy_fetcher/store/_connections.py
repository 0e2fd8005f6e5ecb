"""SQLite connections for a multi-threaded, multi-process daemon, and one way to report their errors.

A ``sqlite3.Connection`` must not be shared by threads that use it at the same time, nor carried across
``fork()``; so every thread gets its own connection, and a forked child quietly opens fresh ones.
Writes always run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken at the start, so two
processes never both read, decide, and then fail to upgrade to a write (SQLite's deadlock that skips
the busy timeout).

Every ``sqlite3`` error that reaches a caller is a :class:`~deploy_fetcher.errors.StoreError` naming
the file and what was being done (disk full, read-only, locked, corrupt); programming errors (a bad
SQL binding) stay what they are.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from deploy_fetcher.errors import StoreError

__all__ = ["Connections", "describe_error"]

_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("SQLITE_FULL",), "the disk is full"),
    (("SQLITE_READONLY",), "the file is read-only"),
    (("SQLITE_CANTOPEN",), "the file cannot be opened (check the path and its permissions)"),
    (("SQLITE_PERM", "SQLITE_AUTH"), "permission denied"),
    (("SQLITE_CORRUPT", "SQLITE_NOTADB"), "the file is corrupt"),
)


def describe_error(exc: sqlite3.Error, path: Path, action: str, busy_timeout: float) -> str:
    """One line that says which file, what went wrong, and while doing what."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        reason = f"the file stayed locked by another process for more than {busy_timeout:g}s"
    elif name.startswith("SQLITE_IOERR"):
        reason = f"an I/O error occurred ({exc})"
    else:
        reason = next(
            (text for prefixes, text in _REASONS if name.startswith(prefixes)), str(exc) or name
        )
    return f"state file {path}: {reason} while {action}"


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the built-in class cannot)."""


class Connections:
    """One SQLite connection per thread (and per process) to one file.

    ``synchronous=NORMAL`` is the documented pairing with WAL: a commit does not wait for an fsync,
    only checkpoints do. An application crash still loses nothing; a power cut can lose the last few
    commits but never corrupts the file, and since a page's cursor is committed with its events, such
    a loss only rewinds a source, which the next poll reads again (and at worst re-sends an event whose
    ``delivered`` mark was lost). ``FULL`` would cost an fsync on every page and every delivery.
    """

    def __init__(self, path: Path, *, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._reset_for(os.getpid())

    def _reset_for(self, pid: int) -> None:
        # After fork() the parent's connections belong to the parent: the child never uses them.
        self._pid = pid
        self._local = threading.local()
        # Weak, so a connection closes with the thread that used it (short-lived threads would
        # otherwise pile up open files); close() reaches the ones still alive.
        self._all: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        if self._closed:
            raise StoreError(f"state file {self.path}: the store is closed")
        pid = os.getpid()
        if pid != self._pid:
            with self._lock:
                if pid != self._pid:
                    self._reset_for(pid)
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.add(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        with self.errors("opening it"):
            # isolation_level=None: no implicit BEGIN; transactions are ours and explicit.
            # check_same_thread=False only so close() can close every thread's connection.
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                factory=_Connection,
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                conn.execute("PRAGMA synchronous = NORMAL")
            except BaseException:
                conn.close()
                raise
        return conn

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn sqlite3 errors raised inside into a StoreError that names the file and the action."""
        try:
            yield
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.Error as exc:
            raise StoreError(describe_error(exc, self.path, action, self.busy_timeout)) from exc

    @contextmanager
    def write(self, action: str) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed when the block ends, rolled back if it raises."""
        conn = self.get()
        with self.errors(action):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    @contextmanager
    def read(self, action: str) -> Iterator[sqlite3.Connection]:
        """This thread's connection for reads (each statement sees a consistent WAL snapshot)."""
        conn = self.get()
        with self.errors(action):
            yield conn

    def close(self) -> None:
        """Close every thread's connection; later use raises StoreError."""
        with self._lock:
            self._closed = True
            connections = list(self._all)
            self._all = weakref.WeakSet()
        for conn in connections:
            with suppress(sqlite3.Error):
                conn.close()

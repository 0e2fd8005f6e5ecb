"""When the state file cannot be written: clear StoreErrors, and check_writable says why."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from tests.store.conftest import Backend
from tests.store.factories import FakeClock, make_event

from deploy_fetcher.errors import StoreError
from deploy_fetcher.store import SqliteStore, StateStore


@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make ``path`` read-only for this process, root included (root ignores permission bits)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], check=False).returncode:
        pytest.skip("running as root, and the file system cannot mark a file immutable")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


@contextmanager
def _write_lock_held(path: Path) -> Iterator[None]:
    """Another connection holding the write lock, as a stuck process would."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_healthy_store_is_writable(store: StateStore) -> None:
    """check_writable is None when nothing is wrong."""
    assert None is store.check_writable()


def test_check_writable_leaves_no_trace(store: StateStore) -> None:
    """The write probe is rolled back: no value is left behind."""
    store.check_writable()

    assert None is store.get_value("deploy-fetcher.write-probe")


def test_a_read_only_file_is_reported(sqlite_store: SqliteStore, db_path: Path) -> None:
    """A state file made read-only after the store opened is reported, naming the file."""
    store = sqlite_store
    with _read_only(db_path):
        problem = store.check_writable()

    assert f"state file {db_path}: the file is read-only" == problem


def test_low_free_space_is_reported(db_path: Path) -> None:
    """Less free space than the store needs is reported before a commit fails on it."""
    needed = shutil.disk_usage(db_path.parent).free + 1024 * 1024 * 1024
    store = SqliteStore(db_path, min_free_bytes=needed)
    try:
        problem = store.check_writable()
    finally:
        store.close()

    assert problem is not None
    assert problem.startswith(f"state file {db_path}: the disk is full (only ")
    assert f", at least {needed // 1024} KiB needed)" in problem


def test_a_locked_file_is_reported_by_check_writable(db_path: Path) -> None:
    """A write lock held past the busy timeout makes check_writable say the file is locked."""
    store = SqliteStore(db_path, busy_timeout=0.05)
    try:
        with _write_lock_held(db_path):
            problem = store.check_writable()
    finally:
        store.close()

    assert (
        f"state file {db_path}: the file stayed locked by another process for more than 0.05s"
        " while testing a write"
    ) == problem


def test_a_locked_file_is_a_store_error_naming_the_file(db_path: Path) -> None:
    """A commit that cannot get the write lock in time raises StoreError, not a raw sqlite3 error."""
    store = SqliteStore(db_path, busy_timeout=0.05)
    try:
        with _write_lock_held(db_path), pytest.raises(StoreError) as caught:
            store.commit_page("gh/octo/api", {"page": 1}, [("dash", make_event())])
    finally:
        store.close()

    assert (
        f"state file {db_path}: the file stayed locked by another process for more than 0.05s"
        " while committing a page for 'gh/octo/api'"
    ) == str(caught.value)


def test_a_full_disk_is_a_store_error_and_nothing_is_half_written(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    """SQLite's 'disk full' surfaces as a StoreError naming the file; the page is not stored."""
    store = sqlite_store
    store.commit_page("gh/octo/api", {"page": 1}, [])
    conn = store._db.get()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    rows = [("dash", make_event(f"run-{n}", minute=n)) for n in range(500)]

    with pytest.raises(StoreError) as caught:
        store.commit_page("gh/octo/api", {"page": 2}, rows)

    assert (
        f"state file {db_path}: the disk is full while committing a page for 'gh/octo/api'"
        == str(caught.value)
    )
    assert ({"page": 1}, 0) == (store.get_cursor("gh/octo/api"), store.pending_count("dash"))


def test_a_closed_store_refuses_use(backend: Backend, clock: FakeClock) -> None:
    """Using a store after close raises StoreError rather than reopening behind the caller's back."""
    store = backend.open(clock)
    store.close()

    with pytest.raises(StoreError, match="the store is closed"):
        store.get_cursor("gh/octo/api")


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    """A naive 'now' would shift leases by the local offset, so it is a ValueError."""
    with pytest.raises(ValueError, match="timezone-aware"):
        store.claim("dash", limit=1, lease_seconds=60, now=datetime(2024, 5, 1, 12, 0))  # noqa: DTZ001


def test_repr_names_the_file_and_nothing_else(sqlite_store: SqliteStore, db_path: Path) -> None:
    """The store's repr is its path (it holds no secrets, and says no more)."""
    store = sqlite_store
    assert f"SqliteStore({str(db_path)!r})" == repr(store)


def test_a_deleted_file_is_reported(sqlite_store: SqliteStore, db_path: Path) -> None:
    """A state file removed under a running store is reported: its writes would be lost."""
    store = sqlite_store
    db_path.unlink()

    assert f"state file {db_path}: the file was deleted or moved away" == store.check_writable()

"""Opening a state file: new ones are initialised, foreign or newer ones refused untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from tests.store.conftest import TEMPORARY_OUTBOX, Backend
from tests.store.factories import FakeClock, make_event

from deploy_fetcher.config import StateConfig
from deploy_fetcher.errors import ForeignStateError, StoreError
from deploy_fetcher.store import SqliteStore, open_store
from deploy_fetcher.store import _schema as schema


def _pragmas(path: Path) -> tuple[int, int, str]:
    conn = sqlite3.connect(path)
    try:
        return (
            conn.execute("PRAGMA application_id").fetchone()[0],
            conn.execute("PRAGMA user_version").fetchone()[0],
            conn.execute("PRAGMA journal_mode").fetchone()[0],
        )
    finally:
        conn.close()


def _sqlite_file(path: Path, *pragmas: str) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    for pragma in pragmas:
        conn.execute(pragma)
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_a_new_path_is_initialised_with_identity_version_and_wal(db_path: Path) -> None:
    """A missing file becomes a WAL state file stamped with our application_id and schema version."""
    SqliteStore(db_path).close()

    assert (schema.APPLICATION_ID, schema.schema_version(), "wal") == _pragmas(db_path)


def test_an_empty_file_is_initialised(db_path: Path) -> None:
    """A zero-byte file (e.g. created by a volume mount) is a new state file, not a foreign one."""
    db_path.touch()

    SqliteStore(db_path).close()

    assert schema.APPLICATION_ID == _pragmas(db_path)[0]


@pytest.mark.not_applicable("dashboard", reason=TEMPORARY_OUTBOX)
def test_data_survives_reopening(backend: Backend, clock: FakeClock) -> None:
    """Cursors and rows committed before close are there after reopening the file or database."""
    first = backend.open(clock)
    first.commit_page("gh/octo/api", {"since": "x"}, [("dash", make_event())])
    first.close()

    again = backend.open(clock)
    try:
        assert {"since": "x"} == again.get_cursor("gh/octo/api")
        assert 1 == again.pending_count("dash")
    finally:
        again.close()


def test_cursors_of_settled_pages_survive_reopening(backend: Backend, clock: FakeClock) -> None:
    """A cursor whose page queued nothing, or whose rows were delivered or dead, outlives the store."""
    first = backend.open(clock)
    first.commit_page("gh/octo/api", {"since": "a"}, [])
    first.commit_page("gl/grp/web", {"since": "b"}, [("dash", make_event("run-1"))])
    first.commit_page("gl/grp/db", {"since": "c"}, [("dash", make_event("run-2", minute=1))])
    delivered, dead = first.claim("dash", limit=2, lease_seconds=60, now=clock())
    first.mark_delivered(delivered.id, now=clock())
    first.dead_letter(dead.id, reason="HTTP 422", now=clock())
    first.close()

    again = backend.open(clock)
    try:
        cursors = {record.key: record.cursor for record in again.list_cursors()}
    finally:
        again.close()
    expected = {
        "gh/octo/api": {"since": "a"},
        "gl/grp/db": {"since": "c"},
        "gl/grp/web": {"since": "b"},
    }
    assert expected == cursors


def test_a_reset_cursor_stays_forgotten_after_reopening(backend: Backend, clock: FakeClock) -> None:
    """Reset forgets the stored cursor, not only this store's copy: a new store starts from scratch."""
    first = backend.open(clock)
    first.commit_page("gh/octo/api", {"since": "a"}, [])
    first.commit_page("gl/grp/web", {"since": "b"}, [])
    second = backend.open(clock)  # the cursors as stored, e.g. by a previous run
    first.close()
    try:
        second.reset_cursor("gh/octo/api")
    finally:
        second.close()

    again = backend.open(clock)
    try:
        cursors = (again.get_cursor("gh/octo/api"), again.get_cursor("gl/grp/web"))
    finally:
        again.close()
    assert (None, {"since": "b"}) == cursors


def test_closing_twice_is_harmless(backend: Backend, clock: FakeClock) -> None:
    """A second close (a shutdown path after an error path) does nothing and logs no error."""
    store = backend.open(clock)
    store.commit_page("gh/octo/api", {"since": "a"}, [])
    store.close()

    with capture_logs() as logs:
        store.close()

    assert [] == [entry for entry in logs if entry["log_level"] in {"warning", "error"}]


def test_open_store_opens_the_configured_path(tmp_path: Path) -> None:
    """open_store builds a SQLite store at state.path."""
    path = tmp_path / "configured.db"

    store = open_store(StateConfig(path=path))
    try:
        assert path == store.path  # type: ignore[attr-defined]
        assert path.exists()
    finally:
        store.close()


def test_missing_parent_directory_is_a_clear_store_error(tmp_path: Path) -> None:
    """A path in a directory that does not exist names the directory, and creates nothing."""
    path = tmp_path / "nope" / "state.db"

    with pytest.raises(StoreError, match=r"directory .*nope does not exist") as caught:
        SqliteStore(path)

    assert not isinstance(caught.value, ForeignStateError)
    assert not path.parent.exists()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    """A path that is a directory is a StoreError naming it."""
    with pytest.raises(StoreError, match="is a directory"):
        SqliteStore(tmp_path)


def test_a_text_file_is_refused_and_left_unchanged(db_path: Path) -> None:
    """A file that is not SQLite is refused with its path in the message, byte for byte untouched."""
    content = b"retention: 30d\nnot a database at all, but long enough to look like a header\n"
    db_path.write_bytes(content)

    with pytest.raises(ForeignStateError, match="not an SQLite database") as caught:
        SqliteStore(db_path)

    assert str(db_path) in str(caught.value)
    assert content == db_path.read_bytes()


def test_a_corrupt_sqlite_file_is_refused_and_left_unchanged(db_path: Path) -> None:
    """A file with SQLite's magic but garbage after it is refused, untouched."""
    content = b"SQLite format 3\x00" + bytes(range(256)) * 16
    db_path.write_bytes(content)

    with pytest.raises(ForeignStateError) as caught:
        SqliteStore(db_path)

    assert str(db_path) in str(caught.value)
    assert content == db_path.read_bytes()


def test_another_applications_database_is_refused_and_left_unchanged(db_path: Path) -> None:
    """An SQLite file with a different application_id is refused, untouched, and not switched to WAL."""
    content = _sqlite_file(db_path, "PRAGMA application_id = 1234")

    with pytest.raises(ForeignStateError, match="application_id 1234") as caught:
        SqliteStore(db_path)

    assert str(db_path) in str(caught.value)
    assert content == db_path.read_bytes()
    assert not db_path.with_name(db_path.name + "-wal").exists()


def test_an_sqlite_database_without_application_id_but_with_tables_is_refused(
    db_path: Path,
) -> None:
    """A database that never set an application_id but holds tables is somebody else's."""
    content = _sqlite_file(db_path)

    with pytest.raises(ForeignStateError, match="another application"):
        SqliteStore(db_path)

    assert content == db_path.read_bytes()


def test_a_newer_schema_version_is_refused_and_left_unchanged(db_path: Path) -> None:
    """A state file from a newer deploy-fetcher is refused with that reason, untouched."""
    SqliteStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {schema.schema_version() + 1}")
    conn.close()
    content = db_path.read_bytes()

    with pytest.raises(ForeignStateError, match="written by a newer deploy-fetcher") as caught:
        SqliteStore(db_path)

    assert str(db_path) in str(caught.value)
    assert content == db_path.read_bytes()


def test_a_new_migration_runs_once_on_an_existing_file(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appending one function to MIGRATIONS upgrades an existing file once, keeping its data."""
    SqliteStore(db_path).close()
    before = schema.schema_version()
    runs: list[int] = []

    def add_notes(conn: sqlite3.Connection) -> None:
        runs.append(1)
        conn.execute("CREATE TABLE notes (body TEXT)")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, add_notes])
    SqliteStore(db_path).close()
    SqliteStore(db_path).close()

    assert [1] == runs
    assert (schema.APPLICATION_ID, before + 1, "wal") == _pragmas(db_path)


def test_a_failing_migration_leaves_the_file_at_its_old_version(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails rolls back entirely: the version and schema stay as they were."""
    SqliteStore(db_path).close()
    before = schema.schema_version()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("THIS IS NOT SQL")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    with pytest.raises(StoreError, match="upgrading its schema"):
        SqliteStore(db_path)

    conn = sqlite3.connect(db_path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert before == _pragmas(db_path)[1]
    assert "notes" not in tables

"""A state file that is not ours, from a newer version, or damaged: ``fetcher run`` refuses it.

Each case goes through the real command: exit status 1, one line on stderr naming the file and what
is wrong with it, no traceback, and the file byte for byte as it was — never replaced by a fresh one,
which would silently forget every cursor and every queued event. Damage deeper in a file that opens
cleanly is found by the first statement that reads it: the daemon stays up and says so on /readyz.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.stress.harness import Stage
from tests.support import run_cli, wait_until

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.store import SqliteStore
from deploy_fetcher.store import _schema as schema

PAGE = 4096


def _text_file(path: Path) -> str:
    path.write_text("deployments:\n  - api\n", encoding="utf-8")
    return "not an SQLite database"


def _sql(path: Path, *statements: str) -> None:
    """Run statements and close, so nothing is left in a write-ahead log to checkpoint later."""
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


def _other_application(path: Path) -> str:
    _sql(path, "CREATE TABLE notes (body TEXT)", "INSERT INTO notes VALUES ('keep me')")
    return "an SQLite database of another application"


def _newer_version(path: Path) -> str:
    SqliteStore(path).close()
    _sql(path, f"PRAGMA user_version = {schema.schema_version() + 1}")
    return "written by a newer deploy-fetcher"


def _filled_state(path: Path) -> None:
    store = SqliteStore(path)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    events = [
        DeployEvent(
            deployment_id=f"d-{n}",
            service="api",
            environment="prod",
            status="success",
            happened_at=start + timedelta(seconds=n),
        )
        for n in range(2000)
    ]
    store.commit_page("scripted", {"offset": 2000}, [("dashboard", e) for e in events])
    store.close()
    _sql(path, "PRAGMA wal_checkpoint(TRUNCATE)")


def _corrupt_first_page(path: Path) -> str:
    _filled_state(path)
    with path.open("r+b") as handle:
        handle.seek(100)  # past the 100-byte header: the schema's own page
        handle.write(os.urandom(PAGE - 100))
    return "is corrupt or not a deploy-fetcher state file"


CASES: dict[str, Callable[[Path], str]] = {
    "text": _text_file,
    "foreign-sqlite": _other_application,
    "newer-version": _newer_version,
    "corrupt-schema-page": _corrupt_first_page,
}


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    s = Stage(tmp_path)
    yield s
    s.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_fetcher_run_refuses_the_file_and_leaves_it_as_it_was(stage: Stage, case: str) -> None:
    """Exit 1 with one line naming the file and the problem; the file is byte for byte unchanged."""
    expected = CASES[case](stage.state)
    before = stage.state.read_bytes()
    result = run_cli("run", "--config", str(stage.config), timeout=30)
    assert 1 == result.returncode
    lines = result.stderr.strip().splitlines()
    assert 1 == len(lines)
    assert str(stage.state) in lines[0]
    assert expected in lines[0]
    assert before == stage.state.read_bytes()
    assert not stage.state.with_name("state.db-wal").exists()


def test_damage_inside_a_file_that_opens_is_reported_not_repaired(stage: Stage) -> None:
    """Garbage in the middle of the outbox: /readyz says the file is corrupt, SIGTERM exits 1 saying so.

    The file opens (its header and schema are fine), so the damage shows at the first statement that
    reads it; the daemon cannot count what it leaves pending, so it stops with status 1 and one line.
    """
    _filled_state(stage.state)
    size = stage.state.stat().st_size
    with stage.state.open("r+b") as handle:
        handle.seek(size // 2 // PAGE * PAGE)
        handle.write(os.urandom(4 * PAGE))
    proc = stage.fetcher(housekeeping=0.5).start()
    try:
        _status, body = wait_until(
            lambda: (r := proc.get("/readyz"))[0] == 503 and "corrupt" in r[1] and r
        )
        assert str(stage.state) in body
    finally:
        code = proc.terminate()
    assert 1 == code
    last = stage.log.read_text(encoding="utf-8").strip().splitlines()[-1]
    assert last.startswith(f"fetcher: state file {stage.state}: the file is corrupt")
    assert stage.state.exists()

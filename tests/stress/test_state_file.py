"""A state file that is not ours, from a newer version, or damaged: ``fetcher run`` refuses it.

Each case goes through the real command: exit status 1, one line on stderr naming the file and what
is wrong with it, no traceback, and the file byte for byte as it was — never replaced by a fresh one,
which would silently forget every cursor and every queued event. Damage deeper in a file whose
header and schema open cleanly is found at open too, by ``PRAGMA quick_check``.
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
from tests.support import run_cli

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


def _damage_mid_file(path: Path) -> str:
    """Garbage in the middle of the outbox: the header and schema open fine, quick_check does not."""
    _filled_state(path)
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size // 2 // PAGE * PAGE)
        handle.write(os.urandom(4 * PAGE))
    return "is damaged ("


CASES: dict[str, Callable[[Path], str]] = {
    "text": _text_file,
    "damaged-mid-file": _damage_mid_file,
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

"""`fetcher state migrate`: a SQLite state moves into PostgreSQL whole, once, and keeps working there."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from tests.store.factories import make_event
from tests.support import FetcherProcess, free_port, run_cli, wait_until, write_config

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.model import Status
from deploy_fetcher.store import SqliteStore
from deploy_fetcher.store.postgres import PostgresStore

KEY = "migrate-dashboard-key"
T0 = datetime(2026, 2, 1, tzinfo=UTC)


def _line(n: int) -> str:
    return json.dumps(
        {
            "deployment_id": f"d{n}",
            "service": "api",
            "environment": "prod",
            "status": "success",
            "sha": f"sha{n}",
            "happened_at": (T0 + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


@pytest.fixture
def dashboard():
    emulator = DashboardEmulator(api_key=KEY)
    emulator.start()
    yield emulator
    emulator.stop()


def _config(tmp_path: Path, dashboard: DashboardEmulator, state: dict[str, Any]) -> Path:
    return write_config(
        tmp_path / f"config-{state.get('backend', 'sqlite')}.yaml",
        {
            "state": state,
            "server": {"port": free_port()},
            "defaults": {"interval": "1s", "jitter": "0s"},
            "sources": [
                {
                    "name": "scripted",
                    "provider": "scripted",
                    "script": str(tmp_path / "events.jsonl"),
                }
            ],
            "sinks": [
                {
                    "name": "dashboard",
                    "type": "deployment-dashboard",
                    "url": dashboard.url(),
                    "api_key": KEY,
                    "timeout": "2s",
                    "backoff_initial": "50ms",
                    "backoff_max": "200ms",
                }
            ],
        },
    )


def _password(url: str) -> str:
    password = urlsplit(url).password
    assert password
    return password


def test_migrate_copies_everything_and_verifies_it(tmp_path: Path, pg_url: str) -> None:
    """Cursors, outbox rows (ids kept), both ledgers and values all arrive; no password shown."""
    state = tmp_path / "state.db"
    source = SqliteStore(state)
    source.commit_page(
        "gh/octo/api", {"page": 3}, [("dash", make_event(f"run-{n}", minute=n)) for n in range(5)]
    )
    source.commit_page("gl/group/web", {"since": "x"}, [])
    now = datetime.now(UTC)
    rows = source.claim("dash", limit=3, lease_seconds=60, now=now)
    source.mark_delivered(rows[0].id, now=now)
    source.dead_letter(rows[1].id, reason="422: bad service", now=now)
    source.release([rows[2].id])
    source.set_value("control.last-event-id", "41")
    before = {row.id: (row.state, row.event, row.last_error) for row in source.list_rows(limit=100)}
    source.close()
    config = write_config(tmp_path / "config.yaml", {"state": {"path": str(state)}})

    result = run_cli("state", "migrate", "--config", str(config), "--to", pg_url)

    assert 0 == result.returncode, result.stderr
    assert _password(pg_url) not in result.stdout + result.stderr
    assert "  2 cursors\n  5 outbox rows (3 pending, 1 delivered, 1 dead)\n" in result.stdout
    assert "5 lifecycle ledger entries" in result.stdout
    target = PostgresStore(pg_url)
    try:
        assert {"page": 3} == target.get_cursor("gh/octo/api")
        assert ["gh/octo/api", "gl/group/web"] == [c.key for c in target.list_cursors()]
        after = {
            row.id: (row.state, row.event, row.last_error) for row in target.list_rows(limit=100)
        }
        assert before == after
        assert "run-4" == target.latest_success(service="api", environment="prod", sha="abc123")
        assert "41" == target.get_value("control.last-event-id")
        # The lifecycle ledger came along: a state behind run-2's success is still left out.
        behind = make_event("run-2", status=Status.IN_PROGRESS, minute=1)
        assert 0 == target.commit_page("k", None, [("dash", behind)])
        # New rows get ids after the copied ones, never one of theirs.
        target.commit_page("k", None, [("dash", make_event("new", minute=99))])
        assert max(before) + 1 == target.list_rows(limit=1)[0].id
    finally:
        target.close()


def test_migrate_refuses_a_database_that_is_not_empty(tmp_path: Path, pg_url: str) -> None:
    """A target already holding state is refused, exit 1, and keeps exactly what it had."""
    state = tmp_path / "state.db"
    source = SqliteStore(state)
    source.commit_page("gh/octo/api", {"page": 1}, [("dash", make_event("run-1"))])
    source.close()
    existing = PostgresStore(pg_url)
    existing.commit_page("other", {"mine": True}, [])
    existing.close()
    config = write_config(tmp_path / "config.yaml", {"state": {"path": str(state)}})

    result = run_cli("state", "migrate", "--config", str(config), "--to", pg_url)

    assert 1 == result.returncode
    assert (
        "is not empty (1 cursor, 0 outbox rows (0 pending, 0 delivered, 0 dead),"
        " 0 promotion ledger entries, 0 lifecycle ledger entries, 0 stored values);"
        " migrate only into an empty database"
    ) in result.stderr
    assert _password(pg_url) not in result.stdout + result.stderr
    target = PostgresStore(pg_url)
    try:
        assert (["other"], 0) == (
            [c.key for c in target.list_cursors()],
            target.pending_count("dash"),
        )
    finally:
        target.close()


def test_migrate_refuses_a_file_in_use(tmp_path: Path, pg_url: str) -> None:
    """A file with live claims (a daemon still delivering from it) is refused; nothing is copied."""
    state = tmp_path / "state.db"
    source = SqliteStore(state)
    source.commit_page("k", None, [("dash", make_event("run-1"))])
    source.claim("dash", limit=1, lease_seconds=3600, now=datetime.now(UTC))
    config = write_config(tmp_path / "config.yaml", {"state": {"path": str(state)}})

    result = run_cli("state", "migrate", "--config", str(config), "--to", pg_url)
    source.close()

    assert 1 == result.returncode
    assert "1 row is claimed by a running process" in result.stderr
    with psycopg.connect(pg_url) as conn:
        schemas = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'deploy_fetcher'"
        ).fetchone()
    assert (0,) == schemas


def _our_schema_exists(url: str) -> bool:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'deploy_fetcher'"
        ).fetchone()
    return (1,) == found


def test_migrate_refuses_a_file_whose_run_lock_is_held(tmp_path: Path, pg_url: str) -> None:
    """A daemon running on the file (its run lock held, no claim yet) is named; nothing is copied."""
    from deploy_fetcher.runlock import RunLock

    state = tmp_path / "state.db"
    source = SqliteStore(state)
    source.commit_page("k", {"page": 1}, [("dash", make_event("run-1"))])
    source.close()
    config = write_config(tmp_path / "config.yaml", {"state": {"path": str(state)}})

    with RunLock(state):
        result = run_cli("state", "migrate", "--config", str(config), "--to", pg_url)

    assert 1 == result.returncode
    assert f"the state file {state} is in use by another fetcher run (pid" in result.stderr
    assert not _our_schema_exists(pg_url)


def test_migrate_whose_counts_do_not_add_up_keeps_nothing_and_exits_1(
    tmp_path: Path, pg_url: str
) -> None:
    """Rows lost on the way (a trigger drops them) are found by the count check: exit 1, nothing kept."""
    state = tmp_path / "state.db"
    source = SqliteStore(state)
    source.commit_page("k", {"page": 1}, [("dash", make_event(f"run-{n}")) for n in range(3)])
    source.close()
    PostgresStore(pg_url).close()  # our empty schema, so a trigger can be put on it
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION deploy_fetcher.lose_one() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN IF NEW.deployment_id = 'run-1' THEN RETURN NULL; END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER lose_one BEFORE INSERT ON deploy_fetcher.outbox"
            " FOR EACH ROW EXECUTE FUNCTION deploy_fetcher.lose_one()"
        )
    config = write_config(tmp_path / "config.yaml", {"state": {"path": str(state)}})

    result = run_cli("state", "migrate", "--config", str(config), "--to", pg_url)

    assert 1 == result.returncode
    assert "the copy does not add up" in result.stderr
    assert "nothing was kept" in result.stderr
    assert "" == result.stdout
    with psycopg.connect(pg_url) as conn:
        kept = conn.execute(
            "SELECT (SELECT count(*) FROM deploy_fetcher.outbox),"
            " (SELECT count(*) FROM deploy_fetcher.cursors)"
        ).fetchone()
    assert (0, 0) == kept


def test_a_bad_target_url_is_a_usage_error_that_does_not_echo_it(tmp_path: Path) -> None:
    """--to that is not a PostgreSQL URL exits 2 without printing the value (it may hold a password)."""
    config = write_config(tmp_path / "config.yaml", {"state": {"path": str(tmp_path / "s.db")}})

    result = run_cli(
        "state", "migrate", "--config", str(config), "--to", "mysql://u:Sup3rSecret@h/db"
    )

    assert 2 == result.returncode
    assert "--to: not a PostgreSQL URL" in result.stderr
    assert "Sup3rSecret" not in result.stderr + result.stdout


def test_a_migrated_backlog_is_delivered_once_from_postgres(
    tmp_path: Path, pg_url: str, dashboard: DashboardEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivered events stay delivered and the queued backlog is sent once after the move."""
    script = tmp_path / "events.jsonl"
    script.write_text("".join(_line(n) + "\n" for n in range(4)), encoding="utf-8")
    sqlite_config = _config(tmp_path, dashboard, {"path": str(tmp_path / "state.db")})
    first = FetcherProcess(sqlite_config, _port(sqlite_config), tmp_path / "first.log").start()
    try:
        wait_until(lambda: len(dashboard.rows()) == 4, timeout=30)
        dashboard.inject(Fault(status=503, match="^/api/deployments$", method="POST", count=10_000))
        with script.open("a", encoding="utf-8") as handle:
            handle.write("".join(_line(n) + "\n" for n in range(4, 10)))
        wait_until(lambda: _pending(tmp_path / "state.db") == 6, timeout=30)
    finally:
        assert 0 == first.terminate()
    assert 4 == len(dashboard.rows())

    migrated = run_cli("state", "migrate", "--config", str(sqlite_config), "--to", pg_url)
    assert 0 == migrated.returncode, migrated.stderr
    assert "(6 pending, 4 delivered, 0 dead)" in migrated.stdout

    dashboard.clear_faults()
    pg_config = _config(tmp_path, dashboard, {"backend": "postgres", "url": "${STATE_URL}"})
    monkeypatch.setenv("STATE_URL", pg_url)
    second = FetcherProcess(pg_config, _port(pg_config), tmp_path / "second.log").start()
    try:
        wait_until(lambda: len(dashboard.rows()) >= 10, timeout=30)
        wait_until(lambda: _pending_pg(pg_url) == 0, timeout=30)
    finally:
        assert 0 == second.terminate()

    sent = sorted(row["deployment_id"] for row in dashboard.rows())
    assert sorted(f"d{n}" for n in range(10)) == sent
    assert _password(pg_url) not in (tmp_path / "second.log").read_text()


def _port(config: Path) -> int:
    import yaml

    return int(yaml.safe_load(config.read_text())["server"]["port"])


def _pending(path: Path) -> int:
    store = SqliteStore(path)
    try:
        return store.pending_count("dashboard")
    finally:
        store.close()


def _pending_pg(url: str) -> int:
    store = PostgresStore(url, pool_size=2)
    try:
        return store.pending_count("dashboard")
    finally:
        store.close()

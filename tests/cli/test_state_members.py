"""`fetcher state members`: the replicas sharing a PostgreSQL state, and what each holds."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.support import free_port, run_cli, write_config

from deploy_fetcher.store.postgres import PostgresStore


def test_members_lists_live_and_gone_replicas_with_their_leases(
    tmp_path: Path, pg_url: str
) -> None:
    """Each member with its host, state and lease count; --leases lists holder and token per key."""
    store = PostgresStore(pg_url, pool_size=2)
    try:
        board = store.lease_board
        board.heartbeat("replica-a", host="node-1", version="9.9", ttl=60)
        board.heartbeat("replica-b", host="node-2", version="9.9", ttl=0.001)
        board.acquire("replica-a", ["gh/octo/api", "sink:dashboard"], ttl=60)
    finally:
        store.close()
    config = write_config(
        tmp_path / "config.yaml", {"state": {"backend": "postgres", "url": "${STATE_URL}"}}
    )

    result = run_cli(
        "state", "members", "--leases", "--config", str(config), env={"STATE_URL": pg_url}
    )

    assert 0 == result.returncode, result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    members = {line[0]: line for line in lines if line[0].startswith("replica-")}
    assert ["replica-a", "node-1", "9.9"] == members["replica-a"][:3]
    assert ["alive", "2"] == members["replica-a"][-2:]
    assert ["gone", "0"] == members["replica-b"][-2:]
    leases = {line[0]: line[1:3] for line in lines if line[0] in {"gh/octo/api", "sink:dashboard"}}
    assert {"gh/octo/api": ["replica-a", "1"], "sink:dashboard": ["replica-a", "1"]} == leases
    assert urlsplit(pg_url).password not in result.stdout + result.stderr


def test_members_with_a_state_file_says_there_is_one_process(tmp_path: Path) -> None:
    """With the SQLite backend there is no replica set: one line on stderr, nothing on stdout, exit 1."""
    config = write_config(tmp_path / "config.yaml", {"state": {"path": str(tmp_path / "s.db")}})

    result = run_cli("state", "members", "--config", str(config))

    assert 1 == result.returncode
    assert "" == result.stdout
    assert 1 == len(result.stderr.splitlines())
    assert "state members needs state.backend postgres" in result.stderr


@pytest.mark.parametrize("password", ["s3cret-pw", None], ids=["password", "no-password"])
def test_a_command_against_a_database_that_is_down_prints_one_line(
    tmp_path: Path, password: str | None
) -> None:
    """No server at the URL: one error line naming the database (its password masked), exit 1."""
    config = write_config(
        tmp_path / "config.yaml", {"state": {"backend": "postgres", "url": "${STATE_URL}"}}
    )
    port = free_port()
    user = f"fetcher:{password}" if password else "fetcher"
    url = f"postgresql://{user}@127.0.0.1:{port}/fetcher"

    result = run_cli("outbox", "stats", "--config", str(config), env={"STATE_URL": url})

    assert 1 == result.returncode
    assert "" == result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"fetcher: state database postgresql://fetcher@127.0.0.1:{port}/fetcher: "
    )
    assert "Connection refused" in line
    assert "s3cret-pw" not in result.stderr

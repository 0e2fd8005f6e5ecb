"""The smaller holes a hostile upstream or a careless neighbour could use, each closed and held."""

from __future__ import annotations

import io
import json
import os
import pty
import socket
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from deploy_fetcher._logging import configure_logging
from deploy_fetcher.config import FetcherConfig, SourceConfig
from deploy_fetcher.engine import Runtime
from deploy_fetcher.errors import ConfigError, StoreError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import MAX_EVENT_BYTES, DeployEvent, format_rfc3339
from deploy_fetcher.plugins import load_config, load_sink
from deploy_fetcher.providers import Page, Provider
from deploy_fetcher.providers.github.config import GitHubConfig
from deploy_fetcher.sinks import Delivered, Retry, SinkContext
from deploy_fetcher.store import SqliteStore
from tests.support import free_port, run_cli, wait_until, write_config


def _event(n: int = 0, **changes: object) -> DeployEvent:
    fields: dict[str, object] = {
        "deployment_id": f"d-{n}",
        "service": "api",
        "environment": "prod",
        "status": "failure",
        "happened_at": f"2026-03-01T10:00:{n:02d}Z",
    }
    fields.update(changes)
    return DeployEvent.model_validate(fields)


def _state_with_dead_letter(path: Path, reason: str, sink: str = "dash") -> None:
    store = SqliteStore(path)
    try:
        store.commit_page("src/t", None, [(sink, _event())])
        [row] = store.claim(sink, limit=1, lease_seconds=60, now=datetime.now(UTC))
        store.dead_letter(row.id, reason=reason, now=datetime.now(UTC))
    finally:
        store.close()


def _config(tmp_path: Path, **extra: object) -> Path:
    return write_config(
        tmp_path / "config.yaml",
        {
            "state": {"path": str(tmp_path / "state.db")},
            "sources": [{"name": "src", "provider": "scripted", "script": str(tmp_path / "e")}],
            "sinks": [{"name": "dash", "type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
            **extra,
        },
    )


# -- the CLI never interprets server text ----------------------------------------------------------
def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run ``fetcher ARGS`` with stdout on a pseudo-terminal (rich tables are drawn then)."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy_fetcher.cli", *args],
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "COLUMNS": "400"},
    )
    os.close(secondary)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", errors="replace")


def test_markup_in_a_dead_letter_is_printed_not_interpreted(tmp_path: Path) -> None:
    """`outbox list` on a terminal shows `[/x]` and escapes literally (no traceback, no repaint)."""
    _state_with_dead_letter(tmp_path / "state.db", "HTTP 422: [/x] [bold]b[/bold] \x1b[2J")
    code, out = _on_a_terminal("outbox", "list", "--config", str(_config(tmp_path)))
    assert 0 == code, out
    assert "[/x] [bold]b[/bold] \\x1b[2J" in out
    assert "Traceback" not in out


# -- configuration --------------------------------------------------------------------------------
def test_credentials_inside_a_github_base_url_are_refused() -> None:
    """A GitHub base_url with user:password@ is refused like GitLab's and Azure DevOps' URLs."""
    with pytest.raises(ValueError, match="credentials inside the URL are not allowed"):
        GitHubConfig.model_validate(
            {
                "name": "gh",
                "base_url": "https://user:ghp_secret@github.example.com/api/v3",
                "token": "t0ken-value",
                "repos": ["o/r"],
            }
        )


def test_a_fifo_as_a_secret_file_is_refused_at_once(tmp_path: Path) -> None:
    """token_file naming a FIFO is an error naming the key, not a check that hangs for a writer."""
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    path = write_config(
        tmp_path / "c.yaml",
        {
            "sinks": [
                {"name": "d", "type": "deployment-dashboard", "url": "http://127.0.0.1:9"}
                | {"api_key_file": str(fifo)}
            ]
        },
    )
    with pytest.raises(ConfigError, match="is not a regular file") as caught:
        load_config(path, environ={})
    assert "api_key_file" in str(caught.value)


# -- the JSONL sink --------------------------------------------------------------------------------
def _jsonl(path: Path):
    cls = load_sink("jsonl")
    config = cls.config_model.model_validate({"name": "j", "type": "jsonl", "path": str(path)})
    return cls(config, SinkContext(metrics=Metrics(), user_agent="t"))


def test_the_jsonl_file_and_its_lock_are_the_owner_s_alone(tmp_path: Path) -> None:
    """A new events file and its lock file are created 0600, whatever the umask."""
    path = tmp_path / "events.jsonl"
    old = os.umask(0o022)
    try:
        assert isinstance(_jsonl(path).send(_event()), Delivered)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert {"events.jsonl": 0o600, "events.jsonl.lock": 0o600} == modes


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    """A symlink at the events path is refused (Retry): the file it points at stays untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    path = tmp_path / "events.jsonl"
    path.symlink_to(victim)
    sink = _jsonl(path)
    outcome = sink.send(_event())
    assert Retry(reason=f"cannot write {path}: it is a symbolic link (refused)") == outcome
    assert "precious\n" == victim.read_text(encoding="utf-8")
    assert not sink.check().ok


def test_a_planted_symlink_at_the_lock_path_is_not_followed(tmp_path: Path) -> None:
    """A symlink at the lock path is refused too: nothing is created where it points."""
    path = tmp_path / "events.jsonl"
    (tmp_path / "events.jsonl.lock").symlink_to(tmp_path / "elsewhere")
    assert isinstance(_jsonl(path).send(_event()), Retry)
    assert not (tmp_path / "elsewhere").exists()


# -- timestamps and event size ---------------------------------------------------------------------
def test_a_year_one_timestamp_round_trips_through_the_outbox(tmp_path: Path) -> None:
    """0001-01-01 (.NET's MinValue, which Azure DevOps sends) is stored and listed, not hidden."""
    assert "0001-01-01T00:00:00Z" == format_rfc3339(datetime(1, 1, 1, tzinfo=UTC))
    store = SqliteStore(tmp_path / "s.db")
    try:
        store.commit_page("k", None, [("dash", _event(happened_at="0001-01-01T00:00:00Z"))])
        [row] = store.list_rows(state="pending")
    finally:
        store.close()
    assert datetime(1, 1, 1, tzinfo=UTC) == row.event.happened_at


def test_an_event_stays_under_its_size_cap_whatever_the_server_sends() -> None:
    """Megabyte fields, a thousand metadata keys and huge parent ids still make a bounded event."""
    huge = "\x00é" * 5_000_000
    event = _event(
        version=huge,
        run_url=huge,
        actor=huge,
        ref=huge,
        sha=huge,
        parent_deployments=[f"p{n}-{'x' * 300}" for n in range(100)] + ["ok-parent"],
        metadata={f"k{n}": huge for n in range(1000)} | {"k" * 100: "v"},
    )
    assert MAX_EVENT_BYTES >= len(event.to_json().encode())
    assert ("ok-parent",) == event.parent_deployments


# -- the daemon ------------------------------------------------------------------------------------
def test_a_taken_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """A second daemon on a taken port says which address, exits 1, and prints no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, server={"host": "127.0.0.1", "port": port})
        result = run_cli("run", "--config", str(config), timeout=60)
    assert 1 == result.returncode
    assert f"cannot serve /healthz, /readyz and /metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_run_on_the_same_state_file_is_refused_naming_the_first(tmp_path: Path) -> None:
    """`fetcher run` takes an exclusive lock; a second one exits 1 naming the holder's pid."""
    (tmp_path / "e").write_text("", encoding="utf-8")
    port = free_port()
    config = _config(tmp_path, server={"host": "127.0.0.1", "port": port})
    first = subprocess.Popen(
        [sys.executable, "-m", "deploy_fetcher.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = tmp_path / "state.db.run.lock"
        wait_until(lambda: lock.exists() and lock.read_text().strip(), timeout=30)
        second = run_cli("run", "--config", str(_config(tmp_path, server={"port": free_port()})))
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert 1 == second.returncode
    assert f"is in use by another fetcher run (pid {first.pid} on " in second.stderr
    assert "Traceback" not in second.stderr


def test_rows_of_a_removed_sink_are_warned_and_can_be_purged(tmp_path: Path) -> None:
    """Rows queued for a sink no longer configured are named at start; purge --sink drops them."""
    (tmp_path / "e").write_text("", encoding="utf-8")
    store = SqliteStore(tmp_path / "state.db")
    store.commit_page("src/t", None, [("gone", _event(1)), ("gone", _event(2))])
    store.close()
    _state_with_dead_letter(tmp_path / "state.db", "HTTP 400", sink="gone")
    port = free_port()
    config = _config(tmp_path, server={"host": "127.0.0.1", "port": port})
    log = tmp_path / "log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "deploy_fetcher.cli", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            env={**os.environ, "FETCHER_LOG__FORMAT": "json"},
        )
    try:
        wait_until(lambda: "outbox.unconfigured_sink" in log.read_text(), timeout=30)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    [line] = [json.loads(x) for x in log.read_text().splitlines() if "unconfigured_sink" in x]
    assert ("gone", 2, 1) == (line["sink"], line["pending"], line["dead"])
    purged = run_cli("outbox", "purge", "--sink", "gone", "--all", "--yes", "--config", str(config))
    assert "3 rows of gone (not configured: queued and dead) purged\n" == purged.stdout
    store = SqliteStore(tmp_path / "state.db")
    try:
        assert [] == [s for s in store.stats() if s.sink == "gone" and (s.pending or s.dead)]
    finally:
        store.close()


def test_a_state_file_damaged_mid_file_is_refused_at_open(tmp_path: Path) -> None:
    """A page overwritten in the middle of the file is found by quick_check when the store opens."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.commit_page("k", None, [("dash", _event(n)) for n in range(60)])
    store.close()
    with sqlite3.connect(path) as conn:  # fold the WAL in, so the damage lands in the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = path.stat().st_size // 4096
    with path.open("r+b") as handle:
        handle.seek((pages // 2) * 4096)  # the header of a page in the middle of the file
        handle.write(b"\x0d\xff\xff\xff" * 8)
    with pytest.raises(StoreError, match="is damaged") as caught:
        SqliteStore(path)
    assert "restore it from a backup" in str(caught.value)


# -- logs -------------------------------------------------------------------------------------------
def test_the_same_malformed_item_is_logged_once_not_every_cycle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten cycles over the same bad item write one line; another item writes its own."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("debug", "json")
    log = structlog.get_logger("t").bind(source="gl", target="g/p")
    try:
        for _ in range(10):
            log.warning("gitlab.malformed_item", url="https://x/api/v4/d", item="{'id': 7}")
        log.warning("gitlab.malformed_item", url="https://x/api/v4/d", item="{'id': 8}")
        log.warning("poll.done", pages=1)
        log.warning("poll.done", pages=1)
    finally:
        structlog.reset_defaults()
    events = [json.loads(line)["event"] for line in buffer.getvalue().splitlines()]
    assert ["gitlab.malformed_item", "gitlab.malformed_item", "poll.done", "poll.done"] == events


class _NestedProvider(Provider):
    """Raises what json.loads raises on an answer nested 100 000 levels deep."""

    name = "nested"

    def targets(self) -> list[str]:
        return ["t"]

    def poll(self, target: str, cursor: object) -> object:
        json.loads("[" * 100_000 + "]" * 100_000)
        yield Page([], None)

    def backfill(self, target: str, since: object, until: object) -> object:
        return iter(())


def test_deeply_nested_json_is_a_failed_cycle_without_a_traceback(tmp_path: Path) -> None:
    """RecursionError from a hostile answer fails the cycle with one clear message, no traceback."""
    config = FetcherConfig.model_validate({"state": {"path": str(tmp_path / "s.db")}})
    config = config.model_copy(update={"sources": [SourceConfig(name="n", provider="nested")]})
    runtime = Runtime(config, provider_resolver=lambda _name: _NestedProvider)
    try:
        with structlog.testing.capture_logs() as logs:
            result = runtime.poller.run_target(runtime.providers["n"], "t")
    finally:
        runtime.close()
    assert "transient_error" == result.outcome
    assert "nested too deeply" in result.error
    assert [] == [e for e in logs if e.get("exc_info") or e["event"].endswith("unexpected_error")]

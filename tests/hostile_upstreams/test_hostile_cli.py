"""`fetcher check` and `fetcher run` against a destination that echoes the credential it received."""

from __future__ import annotations

import json
from pathlib import Path

from deploy_fetcher.emulators.hostile import HostileServer
from deploy_fetcher.emulators.receiver import ReceiverEmulator
from tests.support import FetcherProcess, free_port, run_cli, wait_until, write_config

SECRET = "cli-echoed-credential-0c0c"


def _config(tmp_path: Path, url: str, port: int = 0, sink: str = "cloudlink") -> Path:
    script = tmp_path / "events.jsonl"
    script.write_text(
        json.dumps(
            {
                "deployment_id": "d1",
                "service": "api",
                "environment": "prod",
                "status": "success",
                "happened_at": "2026-03-01T10:00:00Z",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    return write_config(
        tmp_path / "config.yaml",
        {
            "state": {"path": str(tmp_path / "state.db")},
            "server": {"host": "127.0.0.1", "port": port or free_port()},
            "sources": [{"name": "s", "provider": "scripted", "script": str(script)}],
            "sinks": [
                {
                    "name": "hook",
                    "type": sink,
                    "url": url,
                    "api_key": SECRET,
                    "max_attempts": 1,
                }
            ],
        },
    )


def test_check_prints_no_credential_a_server_echoes(tmp_path: Path) -> None:
    """A destination answering with the request's headers: `fetcher check` shows *** instead."""
    receiver = ReceiverEmulator(status=202, bearer=SECRET)
    receiver.start()
    try:
        with HostileServer(receiver.url(), mode="echo", echo_status=500) as server:
            config = _config(tmp_path, server.url, sink="deployment-dashboard")
            result = run_cli("check", "--config", str(config))
            assert any(SECRET in json.dumps(seen.headers) for seen in server.seen)
    finally:
        receiver.stop()
    assert SECRET not in result.stdout + result.stderr
    assert "***" in result.stdout + result.stderr


def test_the_daemon_shows_no_echoed_credential_in_logs_readiness_or_dead_letters(
    tmp_path: Path,
) -> None:
    """Logs, /readyz and `outbox list` after a delivery refused with the credential echoed."""
    receiver = ReceiverEmulator(status=202, bearer=SECRET)
    receiver.start()
    port = free_port()
    try:
        with HostileServer(receiver.url(), mode="echo", echo_status=422) as server:
            config = _config(tmp_path, server.url, port)
            proc = FetcherProcess(config, port, tmp_path / "log").start()
            try:
                wait_until(
                    lambda: "delivery.dead_lettered" in proc.log_path.read_text(), timeout=30
                )
                _status, ready = proc.get("/readyz")
            finally:
                proc.terminate()
            listed = run_cli("outbox", "list", "--config", str(config))
    finally:
        receiver.stop()
    log = proc.log_path.read_text(encoding="utf-8")
    assert "upstream proxy error" in listed.stdout  # the echo is there, masked
    assert [] == [text for text in (log, ready, listed.stdout, listed.stderr) if SECRET in text]

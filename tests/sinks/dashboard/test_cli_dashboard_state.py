"""`fetcher state` and `fetcher outbox` with the cursors kept in the dashboard."""

from __future__ import annotations

from pathlib import Path

import httpx
from tests.store.factories import T0
from tests.support import DASHBOARD_KEY, run_cli, write_config

from deploy_fetcher.sinks.dashboard.backend import decode_document, encode_document


def _config(tmp_path: Path, dashboard) -> Path:
    return write_config(
        tmp_path / "config.yaml",
        {
            "state": {
                "backend": "dashboard",
                "dashboard_sink": "dashboard",
                "dashboard_slot": "fetcher-cli",
                "path": str(tmp_path / "state.db"),
            },
            "sinks": [
                {
                    "name": "dashboard",
                    "type": "deployment-dashboard",
                    "url": dashboard.url(),
                    "api_key": DASHBOARD_KEY,
                }
            ],
        },
    )


def _store_slot(dashboard, cursors: dict) -> None:
    response = httpx.put(
        dashboard.url("/api/fetcher/state/fetcher-cli"),
        json={"state": encode_document(cursors, T0)},
        headers={"X-Api-Key": DASHBOARD_KEY},
        timeout=5,
    )
    assert 200 == response.status_code


def test_state_list_and_show_read_the_dashboards_slot(tmp_path: Path, dashboard) -> None:
    """The cursors listed and shown are the ones stored in the dashboard."""
    _store_slot(dashboard, {"gh/octo/api": {"mark": "2026-03-01T10:00:00Z"}, "gl": {"page": 2}})
    config = str(_config(tmp_path, dashboard))
    listed = run_cli("state", "list", "--config", config)
    shown = run_cli("state", "show", "gl", "--config", config)
    assert (0, 0) == (listed.returncode, shown.returncode)
    assert ["gh/octo/api", "gl"] == [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert '{\n  "page": 2\n}\n' == shown.stdout
    assert not (tmp_path / "state.db").exists()


def test_state_reset_writes_the_slot_back(tmp_path: Path, dashboard) -> None:
    """A reset cursor is gone from the dashboard's slot; the others stay."""
    _store_slot(dashboard, {"gh/octo/api": {"n": 1}, "gl": {"page": 2}})
    result = run_cli("state", "reset", "gl", "--config", str(_config(tmp_path, dashboard)))
    assert (0, "reset gl\n") == (result.returncode, result.stdout)
    assert {"gh/octo/api": {"n": 1}} == decode_document(dashboard.state("fetcher-cli") or "")[0]


def test_outbox_commands_say_the_outbox_is_the_daemons(tmp_path: Path, dashboard) -> None:
    """There is no outbox another process could list: the command says so instead of showing none."""
    result = run_cli("outbox", "list", "--config", str(_config(tmp_path, dashboard)))
    assert 1 == result.returncode
    assert "the outbox is a temporary file inside the running daemon" in result.stderr
    assert not (tmp_path / "state.db").exists()

"""`fetcher sync`, `state` and `outbox` against a real store and the dashboard emulator."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from tests.support import run_cli, write_config

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.dashboard import DashboardEmulator

KEY = "cli-dashboard-key"
T0 = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def dashboard():
    emulator = DashboardEmulator(api_key=KEY)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def setup(tmp_path, dashboard):
    script = tmp_path / "events.jsonl"
    lines = [
        {
            "deployment_id": f"d{day}",
            "service": "api",
            "environment": "prod",
            "status": "success",
            "happened_at": (T0 + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for day in range(10)
    ]
    script.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    config = write_config(
        tmp_path / "config.yaml",
        {
            "state": {"path": str(tmp_path / "state.db")},
            "sources": [{"name": "scripted", "provider": "scripted", "script": str(script)}],
            "sinks": [
                {
                    "name": "dashboard",
                    "type": "deployment-dashboard",
                    "url": dashboard.url(),
                    "api_key": KEY,
                    "backoff_initial": "50ms",
                    "backoff_max": "200ms",
                }
            ],
        },
    )
    return str(config)


def test_sync_delivers_the_window_and_exits_0(setup, dashboard):
    """`sync --since --until` delivers exactly the events inside the window and prints a summary."""
    result = run_cli("sync", "--config", setup, "--since", "2026-02-03", "--until", "2026-02-06")
    assert 0 == result.returncode, result.stderr
    assert ["d2", "d3", "d4"] == [row["deployment_id"] for row in dashboard.rows()]
    assert "delivered" in result.stdout


def test_sync_exits_1_when_events_are_dead_lettered(setup, dashboard):
    """A 422 during sync is dead-lettered and the command exits 1."""
    dashboard.inject(
        Fault(status=422, body='{"errors":[]}', match="^/api/deployments$", method="POST")
    )
    result = run_cli("sync", "--config", setup, "--since", "2026-02-01", "--until", "2026-02-03")
    assert 1 == result.returncode
    assert 1 == len(dashboard.rows())
    listing = run_cli("outbox", "list", "--config", setup)
    assert "d0" in listing.stdout


def test_outbox_retry_requeues_dead_letters(setup, dashboard):
    """`outbox retry --all` puts dead letters back; the next sync delivers them."""
    dashboard.inject(Fault(status=422, body="{}", match="^/api/deployments$", method="POST"))
    run_cli("sync", "--config", setup, "--since", "2026-02-01", "--until", "2026-02-02")
    assert [] == dashboard.rows()
    retried = run_cli("outbox", "retry", "--all", "--config", setup)
    assert "1 dead letter queued again" == retried.stdout.strip()
    again = run_cli("sync", "--config", setup, "--since", "2026-02-01", "--until", "2026-02-02")
    assert 0 == again.returncode
    assert ["d0"] == [row["deployment_id"] for row in dashboard.rows()]


def test_outbox_purge_deletes_dead_letters(setup, dashboard):
    """`outbox purge --all` removes dead letters for good."""
    dashboard.inject(Fault(status=422, body="{}", match="^/api/deployments$", method="POST"))
    run_cli("sync", "--config", setup, "--since", "2026-02-01", "--until", "2026-02-02")
    purged = run_cli("outbox", "purge", "--all", "--yes", "--config", setup)
    assert "1 dead letter purged" == purged.stdout.strip()
    listing = run_cli("outbox", "list", "--config", setup)
    assert 0 == listing.returncode
    assert "deployment_id" in listing.stdout  # the table is printed, only without the row
    assert "d0" not in listing.stdout


def test_dry_run_prints_events_and_stores_nothing(setup, dashboard, tmp_path):
    """`sync --dry-run` prints JSON lines and neither sends nor creates the state file."""
    result = run_cli(
        "sync", "--dry-run", "--config", setup, "--since", "2026-02-01", "--until", "2026-02-03"
    )
    assert 0 == result.returncode, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert ["d0", "d1"] == [p["deployment_id"] for p in printed]
    assert [] == dashboard.rows()
    assert not (tmp_path / "state.db").exists()


def test_state_list_show_reset(setup, tmp_path):
    """Cursors written by a poll can be listed, shown as JSON and reset."""
    from deploy_fetcher.engine import Runtime
    from deploy_fetcher.plugins import load_config

    runtime = Runtime(load_config(setup, environ={}))
    try:
        runtime.poller.run_target(runtime.providers["scripted"], "scripted")
    finally:
        runtime.close()
    listed = run_cli("state", "list", "--config", setup)
    assert "scripted" in listed.stdout
    shown = run_cli("state", "show", "scripted", "--config", setup)
    assert {"offset": 10} == json.loads(shown.stdout)
    reset = run_cli("state", "reset", "scripted", "--config", setup)
    assert (0, "reset scripted") == (reset.returncode, reset.stdout.strip())
    assert 1 == run_cli("state", "show", "scripted", "--config", setup).returncode


def test_bad_since_is_a_usage_error(setup):
    """An unparseable --since exits 2 with an example of what works."""
    result = run_cli("sync", "--config", setup, "--since", "last tuesday")
    assert 2 == result.returncode
    assert "7d" in result.stderr


def test_state_and_outbox_commands_need_no_source_secret(setup, tmp_path):
    """With a GitHub source whose token variable is unset, state and outbox still read the store."""
    assert "UNSET_GH_TOKEN" not in os.environ
    assert 0 == run_cli("sync", "--config", setup, "--since", "2026-02-01").returncode
    config = yaml.safe_load(Path(setup).read_text(encoding="utf-8"))
    config["sources"].append(
        {"name": "gh", "provider": "github", "token": "${UNSET_GH_TOKEN}", "repos": ["octo/api"]}
    )
    with_github = str(write_config(tmp_path / "with-github.yaml", config))
    results = {
        command: run_cli(*command.split(), "--config", with_github, "--output", "json")
        for command in ("state list", "outbox list --state all", "outbox stats")
    }
    assert dict.fromkeys(results, 0) == {
        command: result.returncode for command, result in results.items()
    }, {command: result.stderr for command, result in results.items()}
    listed = json.loads(results["outbox list --state all"].stdout)
    assert {"dashboard"} == {row["sink"] for row in listed}
    checked = run_cli("check", "--offline", "--config", with_github)
    assert (2, True) == (checked.returncode, "UNSET_GH_TOKEN" in checked.stderr)

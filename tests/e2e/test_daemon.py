"""The real `fetcher run` process against the dashboard emulator, fed by a scripted source."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.dashboard_view import Shown, latest_by_deployment, matrix
from tests.support import FetcherProcess, free_port, run_cli, wait_until, write_config

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.dashboard import DashboardEmulator

API_KEY = "e2e-dashboard-key"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _event_line(n: int) -> str:
    status = ("in-progress", "success")[n % 2]
    return json.dumps(
        {
            "deployment_id": f"run-{n // 2}",
            "service": f"svc-{n % 3}",
            "environment": "prod",
            "status": status,
            "happened_at": (T0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "version": f"v{n // 2}",
            "run_number": n // 2,
        }
    )


class Scenario:
    """A dashboard emulator, a script file and a config for one daemon."""

    def __init__(self, tmp_path: Path) -> None:
        self.dashboard = DashboardEmulator(api_key=API_KEY)
        self.dashboard.start()
        self.script = tmp_path / "events.jsonl"
        self.script.write_text("", encoding="utf-8")
        self.written = 0
        self.port = free_port()
        self.config = write_config(
            tmp_path / "config.yaml",
            {
                "state": {"path": str(tmp_path / "state.db")},
                "server": {"port": self.port},
                "defaults": {"interval": "1s", "jitter": "0s"},
                "sources": [
                    {
                        "name": "scripted",
                        "provider": "scripted",
                        "script": str(self.script),
                        "page_size": 25,
                    }
                ],
                "sinks": [
                    {
                        "name": "dashboard",
                        "type": "deployment-dashboard",
                        "url": self.dashboard.url(),
                        "api_key": "${DASHBOARD_KEY}",
                        "timeout": "2s",
                        "backoff_initial": "100ms",
                        "backoff_max": "1s",
                    }
                ],
            },
        )
        self.log = tmp_path / "fetcher.log"

    def add(self, count: int) -> None:
        with self.script.open("a", encoding="utf-8") as handle:
            for n in range(self.written, self.written + count):
                handle.write(_event_line(n) + "\n")
        self.written += count

    def expected(self) -> set[tuple[str, str, str]]:
        rows = [json.loads(_event_line(n)) for n in range(self.written)]
        return {(r["deployment_id"], r["status"], r["happened_at"]) for r in rows}

    def delivered(self) -> list[tuple[str, str, str]]:
        return [(r["deployment_id"], r["status"], r["happened_at"]) for r in self.dashboard.rows()]

    def all_delivered(self) -> bool:
        return set(self.delivered()) == self.expected()

    def fetcher(self) -> FetcherProcess:
        import os

        os.environ["DASHBOARD_KEY"] = API_KEY
        return FetcherProcess(self.config, self.port, self.log)


@pytest.fixture
def scenario(tmp_path):
    s = Scenario(tmp_path)
    yield s
    s.dashboard.stop()


@pytest.fixture
def daemon(scenario):
    proc = scenario.fetcher().start()
    yield proc
    proc.terminate()


def test_every_event_is_delivered_exactly_once(scenario, daemon):
    """40 scripted events arrive at the dashboard once each, and SIGTERM exits 0."""
    scenario.add(40)
    wait_until(scenario.all_delivered)
    time.sleep(1.5)  # a further poll cycle re-reads nothing new
    assert len(scenario.delivered()) == 40
    shown = latest_by_deployment(scenario.dashboard.rows())
    assert {
        f"run-{k}": Shown(
            "success",
            (T0 + timedelta(seconds=2 * k + 1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"svc-{(2 * k + 1) % 3}",
            "prod",
        )
        for k in range(20)
    } == shown
    # The script sends each event to svc-{n % 3}: the matrix's cell is its service's last event.
    last = {n % 3: n for n in range(40)}
    assert {
        (f"svc-{s}", "prod"): ("in-progress", "success")[n % 2] for s, n in last.items()
    } == matrix(scenario.dashboard.rows())
    assert daemon.terminate() == 0
    assert "fetcher.stopped" in [line.get("event") for line in daemon.logs()]


def test_dashboard_down_then_back_loses_nothing(scenario, daemon):
    """Events polled while the dashboard refuses connections are delivered once it is back."""
    scenario.add(4)
    wait_until(scenario.all_delivered)
    scenario.dashboard.stop()
    scenario.add(10)
    wait_until(lambda: '"dashboard"} 10.0' in daemon.get("/metrics")[1], timeout=15)
    scenario.dashboard.start()
    wait_until(scenario.all_delivered)
    assert len(scenario.delivered()) == len(set(scenario.delivered()))


def test_retry_after_is_honoured(scenario, daemon):
    """After a 503 with Retry-After: 2 the next POST waits at least two seconds; a 429 likewise."""
    scenario.dashboard.inject(
        Fault(status=503, headers={"Retry-After": "2"}, match="^/api/deployments$", method="POST"),
        Fault(status=429, headers={"Retry-After": "1"}, match="^/api/deployments$", method="POST"),
    )
    scenario.add(2)
    wait_until(scenario.all_delivered)
    posts = scenario.dashboard.requests_to("^/api/deployments$", method="POST")
    assert [p.status for p in posts] == [503, 429, 201, 201]
    assert posts[1].at - posts[0].at >= 1.9
    assert posts[2].at - posts[1].at >= 0.9


def test_a_422_is_dead_lettered_and_listed(scenario, daemon):
    """A rejected event is kept as a dead letter with the dashboard's problem body; the rest flow."""
    problem = json.dumps(
        {"title": "Unprocessable", "errors": [{"field": "run_number", "message": "bad"}]}
    )
    scenario.dashboard.inject(
        Fault(status=422, body=problem, match="^/api/deployments$", method="POST")
    )
    scenario.add(3)
    wait_until(lambda: len(scenario.delivered()) == 2)
    result = wait_until(
        lambda: (
            (r := run_cli("outbox", "list", "--config", str(scenario.config))).stdout.count("run-0")
            and r
        )
    )
    assert result.returncode == 0
    assert "run_number" in result.stdout
    assert "dead" in result.stdout


def test_sigkill_mid_delivery_loses_nothing(scenario):
    """Killed with SIGKILL while delivering and restarted: every event arrives, at most one twice."""
    scenario.dashboard.inject(
        Fault(kind="delay", delay=0.01, count=100_000, match="^/api/deployments$")
    )
    scenario.add(300)
    proc = scenario.fetcher().start()
    wait_until(lambda: len(scenario.delivered()) >= 60)
    proc.kill()
    proc = scenario.fetcher().start()
    try:
        wait_until(scenario.all_delivered, timeout=60)
    finally:
        proc.terminate()
    delivered = scenario.delivered()
    assert scenario.expected() == set(delivered)
    assert len(delivered) - len(set(delivered)) <= 1


def test_sigterm_exits_within_the_grace_period_even_with_a_poll_stuck(tmp_path):
    """A poll blocked in I/O (here: a FIFO nobody writes) does not keep the process past its grace."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "stuck.fifo"
    os.mkfifo(fifo)
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml",
        {
            "state": {"path": str(tmp_path / "state.db")},
            "server": {"port": port},
            "defaults": {"jitter": "0s"},
            "sources": [{"name": "stuck", "provider": "scripted", "script": str(fifo)}],
            "sinks": [{"name": "out", "type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
        },
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy_fetcher.cli",
            "run",
            "--config",
            str(config),
            "--grace",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        probe = FetcherProcess(config, port, tmp_path / "unused.log")
        probe.proc = proc
        wait_until(probe._alive, timeout=30)
        time.sleep(1.0)  # the first poll is now blocked opening the FIFO
        started = time.monotonic()
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert 0 == proc.returncode
    assert elapsed < 10  # bounded by the grace period (1 s), not by the stuck read
    assert b"fetcher.exit_with_poll_in_flight" in err

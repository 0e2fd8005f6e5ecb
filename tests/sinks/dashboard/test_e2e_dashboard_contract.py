"""The real `fetcher run` process against the dashboard emulator: cursors kept in the dashboard, resets."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support import (
    DASHBOARD_CONTROL_KEY,
    DASHBOARD_KEY,
    FetcherProcess,
    free_port,
    wait_until,
    write_config,
)

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.sinks.dashboard.backend import decode_document

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
INGEST = "^/api/deployments$"


def _event_line(n: int) -> str:
    return json.dumps(
        {
            "deployment_id": f"run-{n}",
            "service": f"svc-{n % 3}",
            "environment": "prod",
            "status": "success",
            "happened_at": (T0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "run_number": n,
        }
    )


class Scenario:
    """A dashboard emulator, a script, and the config of a daemon that may run several times."""

    def __init__(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        *,
        state: dict[str, Any],
        control: dict[str, Any] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.dashboard = DashboardEmulator(
            api_key=DASHBOARD_KEY, control_api_key=DASHBOARD_CONTROL_KEY, ping_interval=0.5
        )
        self.dashboard.start()
        self.temp = tmp_path / "tmp"
        self.temp.mkdir()
        monkeypatch.setenv("TMPDIR", str(self.temp))
        monkeypatch.setenv("DASHBOARD_KEY", DASHBOARD_KEY)
        self.script = tmp_path / "events.jsonl"
        self.script.write_text("", encoding="utf-8")
        self.written = 0
        self.port = free_port()
        sink: dict[str, Any] = {
            "name": "dashboard",
            "type": "deployment-dashboard",
            "url": self.dashboard.url(),
            "api_key": "${DASHBOARD_KEY}",
            "timeout": "2s",
            "backoff_initial": "100ms",
            "backoff_max": "1s",
        }
        if control is not None:
            sink["control"] = control
        self.config = write_config(
            tmp_path / "config.yaml",
            {
                "state": {"path": str(tmp_path / "state.db"), **state},
                "server": {"port": self.port},
                "defaults": {"interval": "1s", "jitter": "0s"},
                "sources": [
                    {"name": "scripted", "provider": "scripted", "script": str(self.script)}
                ],
                "sinks": [sink],
            },
        )
        self.runs = 0

    def add(self, count: int) -> None:
        with self.script.open("a", encoding="utf-8") as handle:
            for n in range(self.written, self.written + count):
                handle.write(_event_line(n) + "\n")
        self.written += count

    def expected(self) -> set[tuple[str, str]]:
        return {
            (f"run-{n}", json.loads(_event_line(n))["happened_at"]) for n in range(self.written)
        }

    def delivered(self) -> list[tuple[str, str]]:
        return [(r["deployment_id"], r["happened_at"]) for r in self.dashboard.rows()]

    def all_delivered(self) -> bool:
        return set(self.delivered()) == self.expected()

    def slot_cursors(self) -> dict[str, Any] | None:
        state = self.dashboard.state("deploy-fetcher")
        return None if state is None else decode_document(state)[0]

    def posts(self, status: int | None = None) -> int:
        requests = self.dashboard.requests_to(INGEST, method="POST")
        return len([r for r in requests if status is None or r.status == status])

    def fetcher(self) -> FetcherProcess:
        self.runs += 1
        log = self.tmp_path / f"fetcher-{self.runs}.log"
        return FetcherProcess(self.config, self.port, log).start()


@pytest.fixture
def started() -> Iterator[list[Any]]:
    """Processes and emulators to stop at the end, whatever happened."""
    items: list[Any] = []
    yield items
    for item in items:
        if isinstance(item, FetcherProcess):
            if item.proc is not None and item.proc.poll() is None:
                item.kill()
        else:
            item.dashboard.stop()


def _dashboard_state(tmp_path, monkeypatch, started, **kwargs: Any) -> Scenario:
    scenario = Scenario(
        tmp_path,
        monkeypatch,
        state={"backend": "dashboard", "dashboard_sink": "dashboard"},
        **kwargs,
    )
    started.append(scenario)
    return scenario


def _run(scenario: Scenario, started: list[Any]) -> FetcherProcess:
    proc = scenario.fetcher()
    started.append(proc)
    return proc


def test_the_cursor_in_the_dashboard_survives_a_restart_without_a_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Any]
) -> None:
    """No state file, temp outbox gone: the next process resumes at the dashboard's cursor, exactly."""
    scenario = _dashboard_state(tmp_path, monkeypatch, started)
    scenario.add(30)
    first = _run(scenario, started)
    wait_until(scenario.all_delivered)
    wait_until(lambda: scenario.slot_cursors() == {"scripted": {"offset": 30}})
    assert 0 == first.terminate()
    assert (False, []) == ((tmp_path / "state.db").exists(), list(scenario.temp.iterdir()))
    scenario.add(10)
    second = _run(scenario, started)
    wait_until(scenario.all_delivered)
    wait_until(lambda: scenario.slot_cursors() == {"scripted": {"offset": 40}})
    assert 0 == second.terminate()
    delivered = scenario.delivered()
    assert (scenario.expected(), 40) == (set(delivered), len(delivered))
    loaded = [line for line in second.logs() if line.get("event") == "dashboard_state.loaded"]
    assert [1] == [line["cursors"] for line in loaded]


def test_a_page_whose_posts_failed_is_not_covered_by_the_dashboards_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Any]
) -> None:
    """The dashboard answers 503 to a page's POSTs, the daemon is killed: the restart delivers them."""
    scenario = _dashboard_state(tmp_path, monkeypatch, started)
    scenario.add(4)
    first = _run(scenario, started)
    wait_until(scenario.all_delivered)
    wait_until(lambda: scenario.slot_cursors() == {"scripted": {"offset": 4}})
    scenario.dashboard.inject(Fault(status=503, match=INGEST, method="POST", count=1_000_000))
    scenario.add(6)
    wait_until(lambda: scenario.posts(503) >= 3)
    time.sleep(1.5)  # the cursor writer runs at least once a second after a settled row
    assert {"scripted": {"offset": 4}} == scenario.slot_cursors()
    first.kill()
    scenario.dashboard.clear_faults()
    second = _run(scenario, started)
    wait_until(scenario.all_delivered)
    wait_until(lambda: scenario.slot_cursors() == {"scripted": {"offset": 10}})
    assert 0 == second.terminate()
    delivered = scenario.delivered()
    assert (scenario.expected(), 10) == (set(delivered), len(delivered))


def _poll_cycles(proc: FetcherProcess) -> float:
    _, text = proc.get("/metrics")
    found = re.search(
        r'fetcher_poll_cycles_total\{outcome="ok",source="scripted",target="scripted"\} (\S+)', text
    )
    return float(found.group(1)) if found else 0.0


def test_the_reset_choreography_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Any]
) -> None:
    """Pause and ack with the reset's id, nothing sent or polled during the wipe, re-backfill, running."""
    scenario = Scenario(
        tmp_path,
        monkeypatch,
        state={},
        control={
            "api_key": DASHBOARD_CONTROL_KEY,
            "component_id": "fetcher-e2e",
            "report_status": True,
            "report_interval": "500ms",
            "reconnect_initial": "100ms",
            "reconnect_max": "1s",
            "idle_timeout": "5s",
        },
    )
    started.append(scenario)
    dashboard = scenario.dashboard
    scenario.add(6)
    proc = _run(scenario, started)
    wait_until(scenario.all_delivered)
    wait_until(lambda: dashboard.requests_to("^/api/control/stream$"))
    wait_until(lambda: any(r.type == "status" for r in dashboard.reports()))

    correlation_id = dashboard.start_reset()
    wait_until(lambda: [r for r in dashboard.reports() if r.type == "reset-ack"])
    [ack] = [r for r in dashboard.reports() if r.type == "reset-ack"]
    assert ("fetcher-e2e", correlation_id, "paused") == (
        ack.component_id,
        ack.correlation_id,
        ack.body["status"],
    )
    posts, cycles = scenario.posts(), _poll_cycles(proc)
    scenario.add(4)
    time.sleep(2.5)  # two and a half poll intervals
    assert (posts, cycles) == (scenario.posts(), _poll_cycles(proc))

    dashboard.complete_reset(correlation_id)
    wait_until(scenario.all_delivered)
    wait_until(
        lambda: [
            r
            for r in dashboard.reports()
            if r.correlation_id == correlation_id and r.type == "status"
        ]
    )
    assert 0 == proc.terminate()
    [running] = [
        r for r in dashboard.reports() if r.correlation_id == correlation_id and r.type == "status"
    ]
    assert ("running", 1) == (running.body["status"], running.body["cursors_reset"])
    delivered = scenario.delivered()
    assert (scenario.expected(), 10) == (set(delivered), len(delivered))
    log = proc.log_path.read_text(encoding="utf-8")
    assert "control.reset_completed" in log
    assert [] == [
        key for key in (DASHBOARD_CONTROL_KEY, DASHBOARD_KEY) if key in log
    ]  # secrets never logged
    periodic = [r.body for r in dashboard.reports() if r.type == "status" and not r.correlation_id]
    assert ("running", True) == (periodic[0]["status"], periodic[0]["cycles"] >= 1)

"""DaemonControls over a real runtime and scheduler: pause, forget, status, quota views."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support import DASHBOARD_KEY, wait_until

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.engine import DeliveryPolicy, Runtime
from deploy_fetcher.plugins import parse_config
from deploy_fetcher.scheduler import Scheduler
from deploy_fetcher.sinks.dashboard.controls import DaemonControls


def _line(n: int, source: str = "feeds") -> str:
    return json.dumps(
        {
            "deployment_id": f"{source}-{n}",
            "service": "api",
            "environment": "prod",
            "status": "success",
            "happened_at": f"2026-03-01T10:00:{n:02d}Z",
        }
    )


class Setup:
    """A runtime with a source feeding the dashboard and one feeding a JSONL file only."""

    def __init__(self, tmp_path: Path, dashboard) -> None:
        for name in ("feeds", "other"):
            (tmp_path / f"{name}.jsonl").write_text(
                "".join(_line(n, name) + "\n" for n in range(3)), encoding="utf-8"
            )
        config: dict[str, Any] = {
            "state": {"path": str(tmp_path / "state.db")},
            "sinks": [
                {
                    "name": "dash",
                    "type": "deployment-dashboard",
                    "url": dashboard.url(),
                    "api_key": DASHBOARD_KEY,
                    "backoff_initial": "10ms",
                },
                {"name": "archive", "type": "jsonl", "path": str(tmp_path / "out.jsonl")},
            ],
            "sources": [
                {
                    "name": "feeds",
                    "provider": "scripted",
                    "script": str(tmp_path / "feeds.jsonl"),
                    "sinks": ["dash", "archive"],
                },
                {
                    "name": "other",
                    "provider": "scripted",
                    "script": str(tmp_path / "other.jsonl"),
                    "sinks": ["archive"],
                },
            ],
        }
        self.runtime = Runtime(
            parse_config(yaml.safe_dump(config)), policy=DeliveryPolicy(idle_poll=0.05)
        )
        self.scheduler = Scheduler(self.runtime)
        for name in self.runtime.providers:
            self.scheduler._discover(name)
        self.controls = DaemonControls(self.runtime, self.scheduler)

    def poll(self, source: str) -> None:
        self.scheduler._poll(source, source)

    def close(self) -> None:
        self.runtime.stop_delivery(2.0)
        self.runtime.close()


@pytest.fixture
def setup(tmp_path: Path, dashboard) -> Iterator[Setup]:
    made = Setup(tmp_path, dashboard)
    yield made
    made.close()


def test_only_the_sources_feeding_the_sink_are_paused(setup) -> None:
    """While paused, runs of the dashboard's sources are skipped; other sources still poll."""
    assert ["feeds"] == setup.controls.sources_for("dash")
    assert setup.controls.pause("dash", timeout=5)
    setup.poll("feeds")
    setup.poll("other")
    store = setup.runtime.store
    assert (None, {"offset": 3}) == (store.get_cursor("feeds"), store.get_cursor("other"))
    assert setup.runtime.workers["dash"].held
    setup.controls.resume("dash")
    setup.poll("feeds")
    assert {"offset": 3} == store.get_cursor("feeds")
    assert not setup.runtime.workers["dash"].held


def test_a_held_worker_sends_nothing_until_let_go(setup, dashboard) -> None:
    """Rows queued while delivery is held wait in the outbox and go out once it is let go."""
    worker = setup.runtime.workers["dash"]
    setup.runtime.start_delivery()
    worker.hold()
    setup.poll("feeds")
    time.sleep(0.3)  # several idle loops of the worker
    assert ([], 3) == (dashboard.rows(), setup.runtime.store.pending_count("dash"))
    assert worker.wait_idle(5)
    worker.unhold()
    wait_until(lambda: len(dashboard.rows()) == 3)


def test_forget_resets_the_feeding_cursors_and_drops_the_dashboards_rows(setup, dashboard) -> None:
    """Cursors of the sink's sources go, its pending and delivered rows go, dead letters stay."""
    dashboard.inject(Fault(status=422, match="^/api/deployments$", method="POST"))
    setup.poll("feeds")
    setup.poll("other")
    worker = setup.runtime.workers["dash"]
    worker.drain_once()
    store = setup.runtime.store
    [before] = [s for s in store.stats() if s.sink == "dash"]
    assert (0, 2, 1) == (before.pending, before.delivered, before.dead)
    assert (1, 2) == setup.controls.forget("dash")
    assert (None, {"offset": 3}) == (store.get_cursor("feeds"), store.get_cursor("other"))
    stats = {s.sink: (s.pending, s.delivered, s.dead) for s in store.stats()}
    assert (0, 0, 1) == stats["dash"]
    assert (6, 0, 0) == stats["archive"]


def test_status_says_running_paused_or_degraded(setup) -> None:
    """The status follows the pause and readiness."""
    assert "degraded" == setup.controls.status()["status"]  # nothing polled yet
    setup.poll("feeds")
    setup.poll("other")
    status = setup.controls.status()
    assert ("running", {"ok": 2, "failing": 0}) == (status["status"], status["targets"])
    assert {"dash": 3, "archive": 6} == status["outbox_pending"]
    setup.controls.pause("dash", timeout=5)
    assert ("paused", ["dash"]) == (
        setup.controls.status()["status"],
        setup.controls.status()["paused_sinks"],
    )


def test_quota_views_come_from_the_rate_limit_metrics(setup) -> None:
    """What providers publish as rate-limit gauges is what a rate-limit report carries."""
    metrics = setup.runtime.metrics
    metrics.rate_limit_remaining.labels("github", "octo").set(4321)
    metrics.rate_limit_limit.labels("github", "octo").set(5000)
    metrics.rate_limit_remaining.labels("gitlab", "grp").set(17)
    assert [
        {"provider": "github", "credential": "octo", "remaining": 4321, "limit": 5000},
        {"provider": "gitlab", "credential": "grp", "remaining": 17},
    ] == setup.controls.rate_limits()

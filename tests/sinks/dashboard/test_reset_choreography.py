"""The reset choreography over a fake engine, acknowledging to the real (emulated) dashboard."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support import wait_until

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.sinks.dashboard.channel import ControlChannel
from deploy_fetcher.sinks.dashboard.reporter import Reporter
from deploy_fetcher.sinks.dashboard.reset import ResetChoreography
from deploy_fetcher.sinks.dashboard.sse import SseEvent
from deploy_fetcher.store import SqliteStore


class FakeEngine:
    """Records what the choreography asks of the engine, and what the dashboard had heard by then."""

    def __init__(self, dashboard) -> None:
        self.dashboard = dashboard
        self.calls: list[str] = []
        self.reports_when_paused: int | None = None
        self.quiet = True
        self.lock = threading.Lock()

    def pause(self, sink: str, *, timeout: float) -> bool:
        with self.lock:
            self.calls.append(f"pause {sink}")
            self.reports_when_paused = len(self.dashboard.reports())
        return self.quiet

    def resume(self, sink: str) -> None:
        with self.lock:
            self.calls.append(f"resume {sink}")

    def forget(self, sink: str) -> tuple[int, int]:
        with self.lock:
            self.calls.append(f"forget {sink}")
        return 3, 7

    def status(self) -> dict[str, Any]:
        return {"status": "running"}

    def rate_limits(self) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def engine(dashboard) -> FakeEngine:
    return FakeEngine(dashboard)


@pytest.fixture
def parts(dashboard, sink_config, engine) -> Iterator[Any]:
    made: list[tuple[httpx.Client, ResetChoreography]] = []

    def _make(**control: Any) -> ResetChoreography:
        config = sink_config(component_id="fetcher-test", **control)
        client = httpx.Client(base_url=dashboard.url(), timeout=2.0)
        reporter = Reporter(
            client,
            config.control,
            stop=threading.Event(),
            status=engine.status,
            rate_limits=engine.rate_limits,
        )
        choreography = ResetChoreography(
            "dash",
            engine,
            reporter,
            reset_timeout=config.control.reset_timeout.total_seconds(),
            quiet_timeout=1.0,
        )
        made.append((client, choreography))
        return choreography

    yield _make
    for client, choreography in made:
        choreography.close()
        client.close()


def _reports(dashboard) -> list[tuple[str, str | None, str, dict[str, Any]]]:
    return [(r.component_id, r.correlation_id, r.type, r.body) for r in dashboard.reports()]


def test_initiated_pauses_first_then_acknowledges(dashboard, engine, parts) -> None:
    """Polling and delivery are paused before the dashboard hears the ack, which names the reset."""
    choreography = parts()
    correlation_id = dashboard.start_reset()
    choreography.initiated(correlation_id)
    assert (["pause dash"], 0) == (engine.calls, engine.reports_when_paused)
    [(component, correlation, kind, body)] = _reports(dashboard)
    assert ("fetcher-test", correlation_id, "reset-ack") == (component, correlation, kind)
    assert {"event": "reset-initiated", "status": "paused", "quiet": True} == {
        k: body[k] for k in ("event", "status", "quiet")
    }
    assert correlation_id == choreography.active


def test_completed_forgets_resumes_and_reports_running(dashboard, engine, parts) -> None:
    """After the wipe: cursors and rows forgotten, then resumed, then `running` with the same id."""
    choreography = parts()
    correlation_id = dashboard.start_reset()
    choreography.initiated(correlation_id)
    choreography.completed(correlation_id)
    assert ["pause dash", "forget dash", "resume dash"] == engine.calls
    _, correlation, kind, body = _reports(dashboard)[-1]
    assert (correlation_id, "status", "running") == (correlation, kind, body["status"])
    assert (3, 7) == (body["cursors_reset"], body["rows_dropped"])
    assert choreography.active is None


def test_a_completion_without_its_start_still_pauses_first(dashboard, engine, parts) -> None:
    """When reset-initiated was missed, nothing runs while the cursors are reset."""
    parts().completed("c-late")
    assert ["pause dash", "forget dash", "resume dash"] == engine.calls


def test_a_reset_that_never_completes_ends_after_the_timeout(dashboard, engine, parts) -> None:
    """Without reset-completed the pause is lifted after reset_timeout, cursors kept."""
    choreography = parts(reset_timeout="200ms")
    choreography.initiated("c-stuck")
    wait_until(lambda: "resume dash" in engine.calls)
    assert ["pause dash", "resume dash"] == engine.calls
    assert choreography.active is None


def test_events_are_dispatched_by_type(dashboard, engine, parts) -> None:
    """Stream events reach the right step; malformed and unknown ones change nothing."""
    choreography = parts()
    choreography.handle(SseEvent("reset-initiated", "not json", "1"))
    choreography.handle(SseEvent("reset-initiated", '{"type":"reset-initiated"}', "2"))
    choreography.handle(SseEvent("maintenance", '{"correlation_id":"x"}', "3"))
    assert [] == engine.calls
    choreography.handle(SseEvent("reset-initiated", '{"correlation_id":"c-9"}', "4"))
    choreography.handle(SseEvent("reset-completed", '{"correlation_id":"c-9"}', "5"))
    assert ["pause dash", "forget dash", "resume dash"] == engine.calls


def test_an_ack_is_retried_until_the_dashboard_takes_it(dashboard, engine, parts) -> None:
    """Two 503s, then 202: the acknowledgement still arrives, once."""
    dashboard.inject(Fault(status=503, match="^/api/control/events$", count=2))
    parts().initiated("c-retry")
    statuses = [r.status for r in dashboard.requests_to("^/api/control/events$")]
    assert ([503, 503, 202], ["reset-ack"]) == (
        statuses,
        [r.type for r in dashboard.reports()],
    )


def test_the_channel_runs_the_choreography_from_the_stream(
    dashboard, sink_config, engine, tmp_path: Path
) -> None:
    """Through the real stream: ack after reset-initiated, `running` after reset-completed."""
    store = SqliteStore(tmp_path / "state.db")
    config = sink_config(component_id="fetcher-chan")
    channel = ControlChannel(config, config.control, engine, store)
    channel.start()
    try:
        wait_until(lambda: dashboard.requests_to("^/api/control/stream$"))
        correlation_id = dashboard.start_reset()
        wait_until(lambda: [r.type for r in dashboard.reports()] == ["reset-ack"])
        dashboard.complete_reset(correlation_id)
        wait_until(lambda: len(dashboard.reports()) == 2)
    finally:
        channel.stop()
        store.close()
    assert [
        ("fetcher-chan", correlation_id, "reset-ack"),
        ("fetcher-chan", correlation_id, "status"),
    ] == [(r.component_id, r.correlation_id, r.type) for r in dashboard.reports()]
    assert ["pause dash", "forget dash", "resume dash"] == engine.calls

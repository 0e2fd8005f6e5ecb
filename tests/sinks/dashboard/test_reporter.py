"""Component events: status reports after poll cycles, rate-limit reports when quota changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.support import DASHBOARD_CONTROL_KEY, wait_until

from deploy_fetcher.engine import CycleResult
from deploy_fetcher.sinks.dashboard.reporter import Reporter


class Views:
    """What the engine would report; the test changes it."""

    def __init__(self) -> None:
        self.quotas: list[dict[str, Any]] = []
        self.calls = 0

    def status(self) -> dict[str, Any]:
        self.calls += 1
        return {"status": "running", "outbox_pending": {"dash": 0}}

    def rate_limits(self) -> list[dict[str, Any]]:
        return [dict(q) for q in self.quotas]


@pytest.fixture
def views() -> Views:
    return Views()


@pytest.fixture
def reporter(dashboard, sink_config, views) -> Iterator[Reporter]:
    config = sink_config(component_id="fetcher-rep", report_interval="200ms")
    stop = threading.Event()
    with httpx.Client(base_url=dashboard.url(), timeout=2.0) as client:
        made = Reporter(
            client, config.control, stop=stop, status=views.status, rate_limits=views.rate_limits
        )
        yield made
        stop.set()
        made.join(5)


def _cycle(outcome: str = "ok", events: int = 2) -> CycleResult:
    return CycleResult("src", outcome, pages=1, events=events)


def test_a_status_report_sums_up_the_cycles_since_the_last(dashboard, reporter) -> None:
    """Three cycles, one failed: one status report with their counts, sent with the component id."""
    reporter.cycle_done(_cycle())
    reporter.cycle_done(_cycle(events=5))
    reporter.cycle_done(_cycle("transient_error", events=0))
    reporter.send_reports()
    [report] = dashboard.reports()
    assert ("fetcher-rep", None, "status") == (
        report.component_id,
        report.correlation_id,
        report.type,
    )
    counts = {k: report.body[k] for k in ("status", "cycles", "events", "failed_cycles")}
    assert {"status": "running", "cycles": 3, "events": 7, "failed_cycles": 1} == counts
    [post] = dashboard.requests_to("^/api/control/events$")
    assert DASHBOARD_CONTROL_KEY == post.headers["x-control-api-key"]


def test_rate_limit_reports_only_when_the_quota_moved(dashboard, reporter, views) -> None:
    """A quota view is posted once, and again only after it changed."""
    views.quotas = [{"provider": "github", "credential": "octo", "remaining": 4990, "limit": 5000}]
    reporter.send_reports()
    reporter.send_reports()
    views.quotas[0]["remaining"] = 4980
    reporter.send_reports()
    quota = [r.body["remaining"] for r in dashboard.reports() if r.type == "rate-limit"]
    assert [4990, 4980] == quota
    assert 3 == len([r for r in dashboard.reports() if r.type == "status"])


def test_the_reporter_thread_posts_after_cycles_and_coalesces(dashboard, reporter, views) -> None:
    """Cycles mark a report due; the thread sends at most one per report_interval."""
    reporter.start()
    for _ in range(20):
        reporter.cycle_done(_cycle())
    wait_until(lambda: sum(r.body["cycles"] for r in dashboard.reports()) == 20)
    assert len(dashboard.reports()) <= 3


def test_a_dashboard_that_is_down_costs_the_poller_nothing(dashboard, reporter, views) -> None:
    """cycle_done never does I/O; a failed report is dropped, not raised or retried for ever."""
    dashboard.stop()
    reporter.cycle_done(_cycle())
    assert 0 == views.calls
    reporter.send_reports()
    assert (1, 0) == (views.calls, reporter.sent)

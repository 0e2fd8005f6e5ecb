"""Component events: ``POST /api/control/events`` with ``X-Component-Id`` (and ``X-Correlation-Id``).

Two kinds of sending, because they matter differently:

* acknowledgements of the reset choreography are sent at once from the control thread, retried a few
  times within a bounded time, because the dashboard waits for them;
* ``status`` and ``rate-limit`` reports are a view of the fetcher's health: the poll threads only mark
  them due (never blocking, never doing I/O), and the reporter's own thread posts the latest view at
  most once per ``report_interval``. A report that fails is not retried; the next one replaces it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import httpx
import structlog

from deploy_fetcher.engine import CycleResult
from deploy_fetcher.model import format_rfc3339, utc_now
from deploy_fetcher.sinks import Delivered
from deploy_fetcher.sinks.dashboard.config import ControlConfig
from deploy_fetcher.sinks.http import classify, redact, transport_failure

__all__ = ["EVENTS_PATH", "Reporter"]

_log = structlog.get_logger(__name__)

EVENTS_PATH: Final = "/api/control/events"
#: Waits between the attempts of an acknowledgement (so at most about 8 s in all).
ACK_WAITS: Final = (0.5, 1.0, 2.0, 4.0)

#: Fields of a status report: running/paused/degraded and a few numbers (see :class:`Reporter`).
StatusSource = Callable[[], dict[str, Any]]
#: The CI quota views, one dict per provider and credential (``provider``, ``credential``, ``remaining``…).
RateLimitSource = Callable[[], list[dict[str, Any]]]


class Reporter:
    """Sends one component's events to one dashboard.

    ``status`` builds the body of a status report and ``rate_limits`` the quota views; both are
    called in the reporter's thread, never in a poll thread.
    """

    def __init__(
        self,
        client: httpx.Client,
        control: ControlConfig,
        *,
        stop: threading.Event,
        status: StatusSource,
        rate_limits: RateLimitSource,
    ) -> None:
        self._client = client
        self._control = control
        self._stop = stop
        self._status = status
        self._rate_limits = rate_limits
        self._secret = control.api_key.get_secret_value()
        self._cond = threading.Condition()
        self._due = False
        self._cycles = self._events = self._failed = 0
        self._last_sent = -float("inf")
        self._quota_sent: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._failing = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        """Reports accepted by the dashboard (status and rate-limit)."""

    # -- posting -----------------------------------------------------------------------------------
    def post(self, body: dict[str, Any], *, correlation_id: str | None = None) -> bool:
        """Send one event once; True when the dashboard accepted it. Never raises for HTTP trouble."""
        headers = {
            "X-Control-API-Key": self._secret,
            "X-Component-Id": self._control.component_id,
            "Content-Type": "application/json",
        }
        if correlation_id:
            headers["X-Correlation-Id"] = correlation_id
        content = json.dumps({**body, "at": format_rfc3339(utc_now())}).encode()
        try:
            response = self._client.post(EVENTS_PATH, headers=headers, content=content)
        except httpx.TransportError as exc:
            reason = transport_failure(exc).reason
        else:
            outcome = classify(response)
            if isinstance(outcome, Delivered):
                if self._failing:
                    self._failing = False
                    _log.info("control.report_recovered", type=body.get("type"))
                return True
            reason = outcome.reason
        if not self._failing:
            self._failing = True
            _log.warning(
                "control.report_failed", type=body.get("type"), error=redact(reason, [self._secret])
            )
        return False

    def acknowledge(self, body: dict[str, Any], *, correlation_id: str | None) -> bool:
        """Send an event the dashboard waits for, retrying within a bounded time; True when accepted."""
        for wait in (*ACK_WAITS, None):
            if self.post(body, correlation_id=correlation_id):
                return True
            if wait is None or self._stop.wait(wait):
                break
        _log.error(
            "control.ack_failed",
            type=body.get("type"),
            correlation_id=correlation_id,
            attempts=len(ACK_WAITS) + 1,
        )
        return False

    # -- status reports ----------------------------------------------------------------------------
    def cycle_done(self, result: CycleResult) -> None:
        """A poll cycle ended: count it and mark a report due (cheap; called from poll threads)."""
        with self._cond:
            self._cycles += 1
            self._events += result.events
            self._failed += result.outcome != "ok"
            self._due = True
            self._cond.notify()

    def report_now(self) -> None:
        """Mark a status report due, e.g. after the pause of a reset is lifted."""
        with self._cond:
            self._due = True
            self._cond.notify()

    def start(self) -> None:
        """Post reports from a daemon thread until ``stop`` is set."""
        self._thread = threading.Thread(target=self._run, name="control-reports", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (after ``stop`` was set)."""
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        interval = self._control.report_interval.total_seconds()
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._due or self._stop.is_set(), timeout=1.0)
                if not self._due or self._stop.is_set():
                    continue
            wait = self._last_sent + interval - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            try:
                self.send_reports()
            except Exception:
                _log.exception("control.report_error")

    def send_reports(self) -> None:
        """Post the current status, then every quota view that changed since it was last sent."""
        with self._cond:
            counts = {"cycles": self._cycles, "events": self._events, "failed_cycles": self._failed}
            self._cycles = self._events = self._failed = 0
            self._due = False
        self._last_sent = time.monotonic()
        if self.post({"type": "status", **self._status(), **counts}):
            self.sent += 1
        for quota in self._rate_limits():
            key = (str(quota.get("provider")), str(quota.get("credential")))
            seen = (quota.get("remaining"), quota.get("limit"))
            if self._quota_sent.get(key) == seen:
                continue
            if self.post({"type": "rate-limit", **quota}):
                self._quota_sent[key] = seen
                self.sent += 1

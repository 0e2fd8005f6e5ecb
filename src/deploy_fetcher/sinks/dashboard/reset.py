"""The dashboard's reset choreography, from the fetcher's side.

1. ``reset-initiated``: stop polling the sources that feed the dashboard and stop delivering to it,
   wait for the work in flight, then acknowledge (``reset-ack`` with the event's correlation id), so
   nothing reaches the dashboard while it is wiped;
2. ``reset-completed``: reset the cursors of those sources, drop the dashboard's queued and delivered
   rows (they belong to the wiped dashboard; kept, the dedup ledger would stop them being sent
   again), resume, and report ``running``. The next polls start again at now − lookback, which is
   the re-backfill.

A ``reset-completed`` without a ``reset-initiated`` (the stream was down when it came) does the whole
of it at once. A pause whose ``reset-completed`` never comes ends after ``reset_timeout``, cursors
kept, so a dashboard that crashed mid-reset cannot stop the fetcher for good.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Final

import structlog

from deploy_fetcher.sinks.dashboard.controls import EngineControls
from deploy_fetcher.sinks.dashboard.reporter import Reporter
from deploy_fetcher.sinks.dashboard.sse import SseEvent

__all__ = ["INITIATED", "QUIET_TIMEOUT", "ResetChoreography"]

_log = structlog.get_logger(__name__)

INITIATED: Final = "reset-initiated"
COMPLETED: Final = "reset-completed"
#: How long a pause waits for in-flight polls and deliveries before it acknowledges anyway.
QUIET_TIMEOUT: Final = 60.0


class ResetChoreography:
    """Handles the control stream's events for one dashboard sink."""

    def __init__(
        self,
        sink: str,
        engine: EngineControls,
        reporter: Reporter,
        *,
        reset_timeout: float,
        quiet_timeout: float = QUIET_TIMEOUT,
    ) -> None:
        self.sink = sink
        self.engine = engine
        self.reporter = reporter
        self.reset_timeout = reset_timeout
        self.quiet_timeout = quiet_timeout
        self._lock = threading.Lock()
        self._active: str | None = None  # correlation id of the reset under way
        self._timer: threading.Timer | None = None
        self._log = _log.bind(sink=sink)

    @property
    def active(self) -> str | None:
        """The correlation id of the reset under way, or None."""
        with self._lock:
            return self._active

    def handle(self, event: SseEvent) -> None:
        """React to one control event (others are logged and ignored)."""
        if event.type not in {INITIATED, COMPLETED}:
            self._log.debug("control.event_ignored", type=event.type, id=event.id)
            return
        try:
            data: Any = json.loads(event.data)
        except ValueError:
            data = None
        correlation_id = data.get("correlation_id") if isinstance(data, dict) else None
        if not isinstance(correlation_id, str) or not correlation_id:
            self._log.warning(
                "control.event_malformed", type=event.type, id=event.id, data=event.data[:200]
            )
            return
        if event.type == INITIATED:
            self.initiated(correlation_id)
        else:
            self.completed(correlation_id)

    def initiated(self, correlation_id: str) -> None:
        """Pause, wait for quiet, acknowledge."""
        self._log.info("control.reset_initiated", correlation_id=correlation_id)
        quiet = self.engine.pause(self.sink, timeout=self.quiet_timeout)
        if not quiet:
            self._log.warning(
                "control.reset_not_quiet",
                correlation_id=correlation_id,
                waited=self.quiet_timeout,
            )
        with self._lock:
            self._active = correlation_id
            self._arm_timer(correlation_id)
        self.reporter.acknowledge(
            {"type": "reset-ack", "event": INITIATED, "status": "paused", "quiet": quiet},
            correlation_id=correlation_id,
        )

    def completed(self, correlation_id: str) -> None:
        """Forget what the wiped dashboard had, resume, report running."""
        with self._lock:
            active, self._active = self._active, None
            self._cancel_timer()
        if active is None:
            # The initiating event was missed: pause now, so nothing runs while cursors are reset.
            self.engine.pause(self.sink, timeout=self.quiet_timeout)
        elif active != correlation_id:
            self._log.warning("control.reset_mismatch", initiated=active, completed=correlation_id)
        try:
            cursors, rows = self.engine.forget(self.sink)
        finally:
            self.engine.resume(self.sink)
        self._log.info(
            "control.reset_completed",
            correlation_id=correlation_id,
            cursors_reset=cursors,
            rows_dropped=rows,
        )
        self.reporter.acknowledge(
            {
                "type": "status",
                "status": "running",
                "event": COMPLETED,
                "cursors_reset": cursors,
                "rows_dropped": rows,
            },
            correlation_id=correlation_id,
        )

    def _arm_timer(self, correlation_id: str) -> None:
        self._cancel_timer()
        timer = threading.Timer(self.reset_timeout, self._expire, args=[correlation_id])
        timer.daemon = True
        timer.name = f"reset-timeout-{self.sink}"
        self._timer = timer
        timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, correlation_id: str) -> None:
        with self._lock:
            if self._active != correlation_id:
                return
            self._active = None
            self._timer = None
        self.engine.resume(self.sink)
        self._log.error(
            "control.reset_timed_out",
            correlation_id=correlation_id,
            waited=self.reset_timeout,
            note="no reset-completed came: polling and delivery resumed with the cursors kept",
        )
        self.reporter.report_now()

    def close(self) -> None:
        """Cancel a pending timeout; a pause in place stays (the process is stopping mid-reset)."""
        with self._lock:
            self._cancel_timer()

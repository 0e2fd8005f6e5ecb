"""The dashboard's control channel: events broadcast over SSE, and what components report back.

The hub is a numbered, append-only event log behind a condition variable: a stream sends every event
after the client's ``Last-Event-ID`` and then waits for new ones, so a client that reconnects misses
nothing. Reports (``POST /api/control/events``) are recorded for tests to read.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deploy_fetcher.model import format_rfc3339, utc_now

__all__ = ["ControlEvent", "ControlHub", "ControlReport", "sse_comment", "sse_event"]


@dataclass(frozen=True)
class ControlEvent:
    """One event of the control stream."""

    id: int
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ControlReport:
    """One acknowledgement or status a component posted to ``/api/control/events``."""

    component_id: str
    correlation_id: str | None
    type: str
    body: dict[str, Any]
    received_at: datetime = field(default_factory=utc_now)


def sse_event(event: ControlEvent) -> bytes:
    """The wire form of an event (``id``, ``event``, one ``data`` line of JSON)."""
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


def sse_comment(text: str) -> bytes:
    """A comment line; clients ignore it, proxies see traffic (``: ping``)."""
    return f": {text}\n\n".encode()


class ControlHub:
    """Thread-safe event log and report list; ``condition`` wakes the streams."""

    def __init__(self) -> None:
        self.condition = threading.Condition(threading.RLock())
        self._events: list[ControlEvent] = []
        self._reports: list[ControlReport] = []

    def publish(self, type_: str, **data: Any) -> ControlEvent:
        """Append an event and wake every stream."""
        with self.condition:
            event = ControlEvent(id=len(self._events) + 1, type=type_, data={"type": type_, **data})
            self._events.append(event)
            self.condition.notify_all()
            return event

    def after(self, last_id: int) -> list[ControlEvent]:
        """Events with an id above ``last_id``."""
        with self.condition:
            return self._events[max(last_id, 0) :]

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        with self.condition:
            return len(self._events)

    def events(self) -> list[ControlEvent]:
        """Every event published so far."""
        with self.condition:
            return list(self._events)

    def record(self, report: ControlReport) -> None:
        """Keep a component's report."""
        with self.condition:
            self._reports.append(report)
            self.condition.notify_all()

    def reports(self) -> list[ControlReport]:
        """Every report received so far."""
        with self.condition:
            return list(self._reports)

    def wake(self) -> None:
        """Wake every waiting stream (the emulator is stopping)."""
        with self.condition:
            self.condition.notify_all()


def now_text() -> str:
    """The current time as the dashboard writes it."""
    return format_rfc3339(utc_now())

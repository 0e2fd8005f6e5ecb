"""Holding the dashboard's control stream open: ``GET /api/control/stream`` (Server-Sent Events).

* authenticated with ``X-Control-API-Key``; ``Last-Event-ID`` (kept in the state store) makes the
  dashboard replay what was missed while the stream was down;
* the read timeout is ``idle_timeout``, a bit above the dashboard's ``: ping`` interval, so a stream
  that went silent (a proxy dropped it without a FIN) is noticed and reopened;
* reconnects wait with capped exponential backoff and jitter; a stream that worked and then dropped
  starts again from the first step (at least the server's ``retry:``), ``Retry-After`` is honoured,
  and a rejected key is retried at the longest wait, so a fixed key is picked up without a restart;
* transitions are logged once (connected, failing, recovered), never every attempt.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Final

import httpx
import structlog
from tenacity import wait_exponential_jitter

from deploy_fetcher.errors import StoreError
from deploy_fetcher.sinks import Retry, Unauthorized
from deploy_fetcher.sinks.dashboard.config import ControlConfig
from deploy_fetcher.sinks.dashboard.sse import SseError, SseEvent, SseParser
from deploy_fetcher.sinks.http import (
    MAX_REASON_BYTES,
    classify,
    parse_retry_after,
    redact,
    transport_failure,
)
from deploy_fetcher.store import StateStore

__all__ = ["STREAM_PATH", "ControlStream", "last_event_id_key"]

_log = structlog.get_logger(__name__)

STREAM_PATH: Final = "/api/control/stream"
_KEPT_HEADERS: Final = frozenset({"retry-after", "content-type", "location"})


def _bounded(response: httpx.Response) -> httpx.Response:
    """A refusal with at most :data:`MAX_REASON_BYTES` of its body read (an error page can be big)."""
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= MAX_REASON_BYTES:
            break
    # Only the headers classify() reads: the body is already decoded, its encoding must not follow.
    kept = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
    return httpx.Response(response.status_code, headers=kept, content=body[:MAX_REASON_BYTES])


def last_event_id_key(sink: str) -> str:
    """The state store key of a dashboard sink's ``Last-Event-ID``."""
    return f"control/{sink}/last-event-id"


class ControlStream:
    """One dashboard's control stream, read in the caller's thread by :meth:`run` until ``stop``."""

    def __init__(
        self,
        client: httpx.Client,
        control: ControlConfig,
        *,
        sink: str,
        store: StateStore,
        on_event: Callable[[SseEvent], None],
        stop: threading.Event,
    ) -> None:
        self._client = client
        self._control = control
        self._store = store
        self._key = last_event_id_key(sink)
        self._on_event = on_event
        self._stop = stop
        self._secret = control.api_key.get_secret_value()
        self._initial = control.reconnect_initial.total_seconds()
        self._max = control.reconnect_max.total_seconds()
        # Called with a stand-in for tenacity's retry state (only ``attempt_number`` is read).
        self._wait: Callable[[Any], float] = wait_exponential_jitter(
            multiplier=self._initial, max=self._max, jitter=self._initial
        )
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None
        self._failing = False
        self._log = _log.bind(sink=sink)
        self.failures = 0
        """Consecutive attempts that got no stream (reset by a stream that delivered something)."""
        self.connects = 0
        """Streams opened so far."""
        self.events = 0
        """Events handed on so far."""

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> None:
        """Open, read, reopen, until ``stop`` is set."""
        while not self._stop.is_set():
            delay = self.session()
            if self._stop.is_set():
                return
            self._stop.wait(delay)

    def interrupt(self) -> None:
        """Cut the open stream (from another thread), so :meth:`run` notices ``stop`` at once."""
        with self._lock:
            response = self._response
        if response is None:
            return
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def session(self) -> float:
        """One connection, read to its end; returns the seconds to wait before the next one."""
        headers = {
            "X-Control-API-Key": self._secret,
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
        }
        last = self._last_event_id()
        if last:
            headers["Last-Event-ID"] = last
        parser = SseParser()
        events_before = self.events
        try:
            with self._client.stream("GET", STREAM_PATH, headers=headers) as response:
                content_type = response.headers.get("Content-Type", "")
                if response.status_code != 200 or not content_type.startswith(  # noqa: PLR2004
                    "text/event-stream"
                ):
                    return self._refused(_bounded(response))
                self._opened(resumed_from=last)
                with self._lock:
                    self._response = response
                for chunk in response.iter_raw():
                    for event in parser.feed(chunk):
                        self._dispatch(event)
                    if self._stop.is_set():
                        return 0.0
            reason = "the dashboard ended the stream"
        except httpx.ReadTimeout:
            reason = f"nothing received for {self._control.idle_timeout.total_seconds():g}s"
        except httpx.TransportError as exc:
            reason = transport_failure(exc).reason
        except SseError as exc:
            reason = str(exc)
        finally:
            with self._lock:
                self._response = None
        if self._stop.is_set():
            return 0.0
        # A stream that carried an event or a ping worked; one that ended before either did not.
        worked = self.events > events_before or parser.comments > 0
        return self._dropped(reason, worked=worked, retry_ms=parser.retry_ms)

    # -- steps -------------------------------------------------------------------------------------
    def _last_event_id(self) -> str | None:
        try:
            return self._store.get_value(self._key)
        except StoreError as exc:
            self._log.warning("control.last_event_id_unreadable", error=str(exc))
            return None

    def _opened(self, *, resumed_from: str | None) -> None:
        self.connects += 1
        if self._failing:
            self._failing = False
            self._log.info("control.stream_recovered", after_failures=self.failures)
        elif self.connects == 1:
            self._log.info("control.stream_connected", last_event_id=resumed_from)
        else:
            self._log.debug("control.stream_reconnected", last_event_id=resumed_from)

    def _dispatch(self, event: SseEvent) -> None:
        self.events += 1
        try:
            self._on_event(event)
        except Exception:
            # A bad event must not be replayed for ever: it is logged and its id kept like any other.
            self._log.exception("control.event_failed", type=event.type, id=event.id)
        if event.id:
            try:
                self._store.set_value(self._key, event.id)
            except StoreError as exc:
                self._log.warning("control.last_event_id_unsaved", error=str(exc))

    def _backoff(self) -> float:
        self.failures += 1
        return float(self._wait(SimpleNamespace(attempt_number=self.failures)))

    def _refused(self, response: httpx.Response) -> float:
        outcome = classify(response)
        reason = redact(getattr(outcome, "reason", f"HTTP {response.status_code}"), [self._secret])
        if isinstance(outcome, Unauthorized):
            self.failures += 1
            self._transition("control.stream_unauthorized", reason)
            return self._max
        delay = self._backoff()
        if isinstance(outcome, Retry):
            after = parse_retry_after(response.headers.get("Retry-After"))
            if after is not None:
                delay = max(delay, after)
        else:  # a 2xx that is not a stream, or another 4xx
            reason = f"{reason} (not an event stream: {response.headers.get('Content-Type', '')})"
        self._transition("control.stream_failing", reason, retry_in=round(delay, 2))
        return delay

    def _dropped(self, reason: str, *, worked: bool, retry_ms: int | None) -> float:
        if worked:
            # It worked, then dropped: reconnect soon (at least what the server asked for).
            self.failures = 0
            delay = self._backoff()
            if retry_ms is not None:
                delay = max(delay, min(retry_ms / 1000, self._max))
            self._log.info("control.stream_dropped", reason=reason, retry_in=round(delay, 2))
            return delay
        delay = self._backoff()
        self._transition("control.stream_failing", reason, retry_in=round(delay, 2))
        return delay

    def _transition(self, event: str, reason: str, **fields: float) -> None:
        if self._failing:
            self._log.debug(event, reason=reason, attempt=self.failures, **fields)
            return
        self._failing = True
        self._log.warning(event, reason=reason, **fields)

"""The control stream client: events in order, Last-Event-ID kept, reconnects bounded and backed off."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support import DASHBOARD_CONTROL_KEY, wait_until

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.sinks.dashboard.client import dashboard_client
from deploy_fetcher.sinks.dashboard.sse import SseEvent
from deploy_fetcher.sinks.dashboard.stream import ControlStream, last_event_id_key
from deploy_fetcher.store import SqliteStore

STREAM = "^/api/control/stream$"


class Running:
    """A ControlStream on its own thread, with the events it handed on."""

    def __init__(self, config, store: SqliteStore, *, transport=None) -> None:
        self.events: list[SseEvent] = []
        self.stop = threading.Event()
        control = config.control
        timeout = httpx.Timeout(5.0, read=control.idle_timeout.total_seconds())
        self.client = dashboard_client(config, timeout=timeout, transport=transport)
        self.stream = ControlStream(
            self.client,
            control,
            sink=config.name,
            store=store,
            on_event=self.events.append,
            stop=self.stop,
        )
        self.thread = threading.Thread(target=self.stream.run, daemon=True)

    def start(self) -> Running:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.stream.interrupt()
        if self.thread.is_alive():
            self.thread.join(10)
        self.client.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "state.db")
    yield opened
    opened.close()


@pytest.fixture
def running(sink_config, store) -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for item in started:
        item.close()


def _run(running: list[Running], config, store, **kwargs) -> Running:
    item = Running(config, store, **kwargs).start()
    running.append(item)
    return item


def _connected(dashboard, count: int = 1) -> bool:
    return len([r for r in dashboard.requests_to(STREAM) if r.status == 200]) >= count


def test_events_are_handed_on_in_order_and_their_id_kept(
    dashboard, sink_config, store, running
) -> None:
    """A reset's two events arrive in order; the last id is stored for the next connection."""
    item = _run(running, sink_config(), store)
    wait_until(lambda: _connected(dashboard))
    correlation_id = dashboard.trigger_reset()
    wait_until(lambda: len(item.events) == 2)
    assert [("1", "reset-initiated"), ("2", "reset-completed")] == [
        (e.id, e.type) for e in item.events
    ]
    assert correlation_id in item.events[0].data
    assert "2" == store.get_value(last_event_id_key("dash"))
    [request] = dashboard.requests_to(STREAM)
    assert DASHBOARD_CONTROL_KEY == request.headers["x-control-api-key"]
    assert "text/event-stream" == request.headers["accept"]


def test_a_dropped_stream_is_reopened_and_missed_events_replayed(
    dashboard, sink_config, store, running
) -> None:
    """Events published while the dashboard was down arrive after the reconnect, via Last-Event-ID."""
    item = _run(running, sink_config(), store)
    wait_until(lambda: _connected(dashboard))
    dashboard.trigger_reset()
    wait_until(lambda: len(item.events) == 2)
    dashboard.stop()
    missed = dashboard.trigger_reset()
    dashboard.start()
    wait_until(lambda: len(item.events) == 4)
    assert [("3", "reset-initiated"), ("4", "reset-completed")] == [
        (e.id, e.type) for e in item.events[2:]
    ]
    assert missed in item.events[3].data
    reconnect = [r for r in dashboard.requests_to(STREAM) if r.status == 200][-1]
    assert "2" == reconnect.headers["last-event-id"]


def test_a_stored_last_event_id_is_sent_on_the_first_connection(
    dashboard, sink_config, store, running
) -> None:
    """After a restart the stream resumes where the last process stopped reading."""
    dashboard.trigger_reset()
    store.set_value(last_event_id_key("dash"), "1")
    item = _run(running, sink_config(), store)
    wait_until(lambda: len(item.events) == 1)
    assert [("2", "reset-completed")] == [(e.id, e.type) for e in item.events]


class Timed(httpx.HTTPTransport):
    """A real transport that notes when each request was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(time.monotonic())
        return super().handle_request(request)


def test_retry_after_is_honoured_before_reconnecting(
    dashboard, sink_config, store, running
) -> None:
    """A 503 with Retry-After: 1 keeps the next attempt at least a second away."""
    dashboard.inject(Fault(status=503, headers={"Retry-After": "1"}, match=STREAM))
    transport = Timed()
    _run(running, sink_config(), store, transport=transport)
    wait_until(lambda: _connected(dashboard))
    assert [503, 200] == [r.status for r in dashboard.requests_to(STREAM)][:2]
    assert transport.sent[1] - transport.sent[0] >= 0.9


def test_a_rejected_key_is_retried_and_a_fixed_one_picked_up(
    dashboard, sink_config, store, running
) -> None:
    """401 does not end the channel: once the dashboard accepts the key the stream opens."""
    dashboard.control_api_key = "rotated-control-key"
    item = _run(running, sink_config(), store)
    wait_until(lambda: len(dashboard.requests_to(STREAM)) >= 2)
    assert {401} == {r.status for r in dashboard.requests_to(STREAM)}
    dashboard.control_api_key = DASHBOARD_CONTROL_KEY
    wait_until(lambda: item.stream.connects == 1)
    assert 200 == dashboard.requests_to(STREAM)[-1].status


def test_a_silent_stream_is_given_up_after_the_idle_timeout(
    dashboard, sink_config, store, running
) -> None:
    """No ping within idle_timeout: the stream is reopened rather than trusted for ever."""
    dashboard.ping_interval = 60.0
    _run(running, sink_config(idle_timeout="1s"), store)
    wait_until(lambda: _connected(dashboard, 2), timeout=30)


def test_stop_cuts_an_open_stream(dashboard, sink_config, store, running) -> None:
    """interrupt() ends a blocked read at once instead of waiting for the next ping."""
    dashboard.ping_interval = 60.0
    item = _run(running, sink_config(idle_timeout="60s"), store)
    wait_until(lambda: _connected(dashboard))
    running.remove(item)
    item.close()
    assert not item.thread.is_alive()


def test_reconnect_waits_grow_exponentially_up_to_the_cap(sink_config, store) -> None:
    """Each failed attempt waits at least twice the one before (plus jitter), never past the cap."""

    def unavailable(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="down")

    item = Running(
        sink_config(reconnect_initial="100ms", reconnect_max="1s"),
        store,
        transport=httpx.MockTransport(unavailable),
    )
    try:
        waits = [item.stream.session() for _ in range(8)]
    finally:
        item.close()
    floors = [min(0.1 * 2**n, 1.0) for n in range(8)]
    assert all(floor <= wait <= 1.0 for floor, wait in zip(floors, waits, strict=True)), waits
    assert 8 == item.stream.failures


def test_a_stream_that_worked_starts_the_backoff_again(sink_config, store) -> None:
    """After a stream that carried events drops, the next wait is the first step again."""
    body = b'retry: 200\n\nid: 5\nevent: note\ndata: {"type":"note"}\n\n'
    answers = iter([httpx.Response(503)] * 5)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers, None)
        if answer is not None:
            return answer
        return httpx.Response(
            200, headers={"Content-Type": "text/event-stream"}, stream=httpx.ByteStream(body)
        )

    item = Running(
        sink_config(reconnect_initial="100ms", reconnect_max="10s"),
        store,
        transport=httpx.MockTransport(handler),
    )
    try:
        backoffs = [item.stream.session() for _ in range(5)]
        after_success = item.stream.session()
    finally:
        item.close()
    assert backoffs[-1] >= 1.6
    assert 0.2 <= after_success <= 0.3
    assert ([("5", "note")], 1) == ([(e.id, e.type) for e in item.events], item.stream.failures)


def test_an_answer_that_is_not_a_stream_is_a_failed_attempt(sink_config, store) -> None:
    """A 200 HTML page (a proxy's login screen) counts as a failure and is backed off."""

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/html"}, text="<html>" * 5000)

    item = Running(sink_config(), store, transport=httpx.MockTransport(proxy))
    try:
        waits = [item.stream.session() for _ in range(2)]
    finally:
        item.close()
    assert (2, 0, []) == (item.stream.failures, item.stream.connects, item.events)
    assert all(wait > 0 for wait in waits)

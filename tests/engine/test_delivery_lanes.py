"""Delivery lanes: several events of a sink in flight at once, each service's events in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from tests.engine.builders import T0
from tests.support import wait_until

from deploy_fetcher.config import SinkConfig
from deploy_fetcher.engine import DeliveryPolicy, DeliveryWorker, Health
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks import Delivered, Delivery, Retry, Sink, SinkContext

POLICY = DeliveryPolicy(batch=20, pause_probe=0.2, idle_poll=0.05)
SERVICES = [f"svc-{i}" for i in range(8)]


class SlowSink(Sink):
    """Answers after ``seconds``, from any number of threads; records arrivals and concurrency."""

    name = "slow"
    config_model = SinkConfig
    concurrent = True

    def __init__(
        self, config, seconds=0.02, answer: Callable[[DeployEvent], Delivery] | None = None
    ):
        super().__init__(config, SinkContext(metrics=Metrics(), user_agent="test"))
        self.seconds = seconds
        self.answer = answer or (lambda _event: Delivered(201))
        self.received: list[DeployEvent] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def send(self, event):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.seconds)
        outcome = self.answer(event)
        with self.lock:
            self.in_flight -= 1
            if isinstance(outcome, Delivered):
                self.received.append(event)
        return outcome


def _events() -> list[DeployEvent]:
    """Per service, four deployments each in-progress then success, interleaved in time."""
    events = []
    n = 0
    for deployment in range(4):
        for status in ("in-progress", "success"):
            for service in SERVICES:
                events.append(
                    DeployEvent(
                        deployment_id=f"{service}-{deployment}",
                        service=service,
                        environment="prod",
                        status=status,
                        happened_at=T0 + timedelta(seconds=n),
                        provider="test",
                        source="src",
                    )
                )
                n += 1
    return events


def _run(store, sink: SlowSink, *, timeout: float = 30) -> DeliveryWorker:
    events = _events()
    store.commit_page("src", None, [("dash", e) for e in reversed(events)])
    worker = DeliveryWorker(
        sink=sink, store=store, metrics=Metrics(), health=Health(), policy=POLICY
    )
    worker.start()
    try:
        wait_until(lambda: len(sink.received) == len(events), timeout=timeout)
    finally:
        worker.stop(5)
    return worker


def _in_order_per_service(received: list[DeployEvent]) -> bool:
    by_service: dict[str, list[DeployEvent]] = {}
    for event in received:
        by_service.setdefault(event.service, []).append(event)
    return all(
        [e.happened_at for e in seq] == sorted(e.happened_at for e in seq)
        for seq in by_service.values()
    )


def test_lanes_send_several_events_at_once_and_keep_each_service_in_order(store) -> None:
    """With 4 lanes, up to 4 POSTs are in flight, and each service's events arrive in order."""
    sink = SlowSink(SinkConfig(name="dash", type="slow", lanes=4))
    _run(store, sink)
    assert (True, True, 64) == (
        1 < sink.most_in_flight <= 4,
        _in_order_per_service(sink.received),
        len({(e.deployment_id, e.status) for e in sink.received}),
    )


def test_one_lane_sends_one_event_at_a_time_in_happened_at_order(store) -> None:
    """The default single lane keeps the whole sink in happened_at order, one POST at a time."""
    sink = SlowSink(SinkConfig(name="dash", type="slow"), seconds=0.001)
    _run(store, sink)
    times = [e.happened_at for e in sink.received]
    assert (1, sorted(times)) == (sink.most_in_flight, times)


def test_a_retry_holds_back_its_lane_only(store) -> None:
    """One service answering 503 for a while: its lane waits, every other service is delivered."""
    stuck = {"svc-3"}
    sink = SlowSink(
        SinkConfig(name="dash", type="slow", lanes=8, backoff_initial=5, backoff_max=5),
        seconds=0.001,
        answer=lambda e: Retry("503", status_code=503) if e.service in stuck else Delivered(201),
    )
    events = _events()
    store.commit_page("src", None, [("dash", e) for e in events])
    worker = DeliveryWorker(
        sink=sink, store=store, metrics=Metrics(), health=Health(), policy=POLICY
    )
    worker.start()
    try:
        others = [e for e in events if e.service not in stuck]
        wait_until(lambda: len(sink.received) >= len(others), timeout=20)
        delivered_services = {e.service for e in sink.received}
        pending = store.pending_count("dash")
    finally:
        worker.stop(5)
    assert (set(SERVICES) - stuck, 8) == (delivered_services, pending)


def test_a_sink_that_cannot_send_concurrently_gets_one_lane(store) -> None:
    """``lanes`` is ignored for a sink without concurrent sends (a file must get one line at a time)."""

    class FileLike(SlowSink):
        concurrent = False

    sink = FileLike(SinkConfig(name="dash", type="slow", lanes=8), seconds=0.001)
    worker = _run(store, sink)
    assert (1, 1) == (worker.lanes, sink.most_in_flight)


def test_each_lane_sends_its_next_row_only_once_its_last_answer_is_recorded(store) -> None:
    """With 8 lanes sharing commits, no lane ever has two accepted POSTs unrecorded at once."""
    sink = SlowSink(SinkConfig(name="dash", type="slow", lanes=8), seconds=0.005)
    last_accepted: dict[int, DeployEvent] = {}
    unrecorded: list[str] = []
    answer = sink.answer

    def recorded(event: DeployEvent) -> bool:
        rows = store.rows_for(event.deployment_id, sinks=["dash"])
        return any(r.event.status == event.status and r.state == "delivered" for r in rows)

    def checking_answer(event: DeployEvent) -> Delivery:
        previous = last_accepted.get(threading.get_ident())
        if previous is not None and not recorded(previous):
            unrecorded.append(f"{previous.deployment_id}/{previous.status.value}")
        last_accepted[threading.get_ident()] = event
        return answer(event)

    sink.answer = checking_answer
    worker = _run(store, sink)

    assert ([], 64, 64) == (unrecorded, len(sink.received), worker.commits.items)

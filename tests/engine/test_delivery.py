"""Delivery workers: retries with backoff, Retry-After, pauses, dead letters, ordering."""

from __future__ import annotations

import time

from structlog.testing import capture_logs
from tests.engine.builders import ProgrammedSink, make_event

from deploy_fetcher.config import SinkConfig
from deploy_fetcher.engine import DeliveryPolicy, DeliveryWorker, Health
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.sinks import Delivered, Rejected, Retry, Unauthorized

FAST = DeliveryPolicy(batch=10, pause_probe=0.2, idle_poll=0.05)
BACKOFF_MAX = 0.05


def _worker(store, outcomes=(), *, max_attempts=None, health=None):
    config = SinkConfig(
        name="dash",
        type="x",
        max_attempts=max_attempts,
        backoff_initial=0.01,
        backoff_max=BACKOFF_MAX,
    )
    sink = ProgrammedSink(config, outcomes)
    worker = DeliveryWorker(
        sink=sink, store=store, metrics=Metrics(), health=health or Health(), policy=FAST
    )
    return worker, sink


def _queue(store, *events):
    store.commit_page("src", None, [("dash", e) for e in events])


def test_rows_are_delivered_in_happened_at_order(store):
    """Rows committed out of order reach the sink oldest first."""
    _queue(store, make_event(3), make_event(1), make_event(2))
    worker, sink = _worker(store)
    assert worker.drain_once() == 0
    assert [e.deployment_id for e in sink.received] == ["d1", "d2", "d3"]
    assert store.pending_count("dash") == 0


def test_retry_after_is_honoured_and_the_row_stays_first(store):
    """A 503 with Retry-After 2 s makes the worker wait at least 2 s and retry the same row."""
    _queue(store, make_event(1), make_event(2))
    worker, sink = _worker(store, [Retry("503", after=2.0, status_code=503)])
    wait = worker.drain_once()
    assert wait >= 2.0
    assert [e.deployment_id for e in sink.received] == ["d1"]
    assert worker.drain_once() > 1.0  # woken early, it still leaves the sink alone
    [row] = [
        r for r in store.list_rows(sink="dash", state="pending") if r.event.deployment_id == "d1"
    ]
    assert (row.attempts, row.last_error) == (1, "503")


def test_rejected_events_are_dead_lettered_with_the_reason(store):
    """A 422 dead-letters that row with the body and delivery goes on with the next."""
    _queue(store, make_event(1), make_event(2))
    worker, _ = _worker(store, [Rejected('{"errors":[{"field":"run_number"}]}', 422)])
    worker.drain_once()
    [dead] = store.list_rows(sink="dash", state="dead")
    assert (dead.event.deployment_id, dead.last_error) == (
        "d1",
        '{"errors":[{"field":"run_number"}]}',
    )
    assert store.list_rows(sink="dash", state="pending") == []


def test_unauthorized_pauses_the_sink_and_keeps_the_events(store):
    """A 401 keeps every row, reports the sink as not ready, and a later success resumes it."""
    _queue(store, make_event(1), make_event(2))
    health = Health()
    worker, _ = _worker(store, [Unauthorized("401", 401)], health=health)
    assert FAST.pause_probe == worker.drain_once()
    assert store.pending_count("dash") == 2
    assert any("sink dash: credentials rejected" in p for p in health.problems())
    worker._lanes[0].resume_at = 0  # the probe interval has passed
    worker.drain_once()
    assert store.pending_count("dash") == 0
    assert "dash" not in health.paused_sinks


def test_max_attempts_dead_letters_a_row_that_never_goes_through(store):
    """With max_attempts 2, the second retryable failure dead-letters the row."""
    _queue(store, make_event(1))
    worker, _ = _worker(store, [Retry("timeout"), Retry("timeout")], max_attempts=2)
    worker.drain_once()
    assert store.pending_count("dash") == 1
    time.sleep(BACKOFF_MAX * 2)  # the row is due again after at most backoff_max
    worker._lanes[0].resume_at = 0
    worker.drain_once()
    [dead] = store.list_rows(sink="dash", state="dead")
    assert "gave up after 2 attempts" in dead.last_error


def test_a_sink_that_raises_loses_nothing(store):
    """An exception inside a sink is a retry, logged with its traceback."""
    _queue(store, make_event(1))
    worker, _ = _worker(store, [RuntimeError("bug")])
    with capture_logs() as logs:
        worker.drain_once()
    assert store.pending_count("dash") == 1
    assert "delivery.sink_error" in [log["event"] for log in logs]


def test_delivered_rows_count_in_metrics(store):
    """Deliveries are counted by outcome."""
    _queue(store, make_event(1))
    worker, _ = _worker(store, [Delivered(201)])
    worker.drain_once()
    assert worker.metrics.deliveries.labels("dash", "delivered")._value.get() == 1.0


def test_a_slow_sink_hands_back_its_batch_before_the_claim_can_expire(store):
    """After half the lease the rest of the batch is released, never held past its claim."""
    _queue(store, *(make_event(n) for n in range(5)))
    config = SinkConfig(name="dash", type="x", timeout=0.05)
    sink = ProgrammedSink(config)
    slow_send = sink.send

    def send(event):
        time.sleep(0.1)
        return slow_send(event)

    sink.send = send
    policy = DeliveryPolicy(batch=5, lease_floor=0.1, idle_poll=0.01)
    worker = DeliveryWorker(
        sink=sink, store=store, metrics=Metrics(), health=Health(), policy=policy
    )
    assert 0 == worker.drain_once()
    sent = [e.deployment_id for e in sink.received]
    assert 1 <= len(sent) < 5  # 0.1 s of a 0.2 s lease allows at most one or two 0.1 s sends
    again = store.claim("dash", limit=10, lease_seconds=1, now=store.list_rows()[0].created_at)
    assert [f"d{n}" for n in range(len(sent), 5)] == [r.event.deployment_id for r in again]


def _claimable(store):
    """What another process could claim now (claims released, not merely expired later)."""
    now = store.list_rows()[0].created_at
    return [r.event.deployment_id for r in store.claim("dash", limit=10, lease_seconds=1, now=now)]


def test_a_worker_whose_gate_is_shut_claims_and_sends_nothing(store):
    """Without the sink's lease (gate False) nothing is claimed, nothing sent, every row stays free."""
    _queue(store, *(make_event(n) for n in range(3)))
    worker, sink = _worker(store)
    worker.gate = lambda: False

    assert FAST.idle_poll == worker.drain_once()
    assert [] == sink.received
    assert ["d0", "d1", "d2"] == _claimable(store)


def test_a_gate_shutting_mid_batch_hands_the_rest_of_the_batch_back(store):
    """The sink's lease lost after the first send: the rest of the batch is released at once, unsent."""
    _queue(store, *(make_event(n) for n in range(5)))
    worker, sink = _worker(store)
    worker.gate = lambda: not sink.received  # shut once the first row went out
    assert 0 == worker.drain_once()

    assert ["d0"] == [e.deployment_id for e in sink.received]
    assert ["d1", "d2", "d3", "d4"] == _claimable(store)
    assert 4 == store.pending_count("dash")

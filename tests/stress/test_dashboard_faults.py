"""The dashboard misbehaving in every way a sink can, one after the other, and back.

Refused connections (the dashboard is down), then ``503`` with ``Retry-After``, then a storm of
``429`` (with and without ``Retry-After``), then answers slower than the sink's timeout — and then a
healthy dashboard again. Polling goes on throughout; afterwards every event is at the dashboard, and
the only copies are those of POSTs the dashboard stored after the fetcher had stopped waiting for the
answer (the documented window: a success the fetcher never saw).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import pytest
from tests.stress.harness import INGEST, Stage, Tally, metric
from tests.support import wait_until

from deploy_fetcher.emulators._server import Fault

TIMEOUT = 1.0


@dataclass(frozen=True)
class Ordeal:
    """How long and how much of each misbehaviour."""

    refused_seconds: float
    unavailable: int
    retry_after: int
    storm: int
    slow: int


def ride_out(stage: Stage, ordeal: Ordeal) -> Tally:
    """Run the daemon through the ordeal; return what reached the dashboard."""
    proc = stage.fetcher().start()
    try:
        stage.add(20)
        wait_until(stage.all_delivered)
        stage.dashboard.stop()
        stage.add(20)
        # The sink is down, polling is not: the new events wait in the outbox.
        wait_until(lambda: metric(proc, "fetcher_outbox_depth", sink="dashboard") == 20.0)
        assert 200 == proc.get("/readyz")[0]
        time.sleep(ordeal.refused_seconds)
        stage.add(20)
        half = ordeal.storm // 2
        stage.dashboard.inject(
            Fault(
                status=503,
                headers={"Retry-After": str(ordeal.retry_after)},
                count=ordeal.unavailable,
                match=INGEST,
                method="POST",
            ),
            Fault(
                status=429, headers={"Retry-After": "1"}, count=half, match=INGEST, method="POST"
            ),
            Fault(status=429, count=ordeal.storm - half, match=INGEST, method="POST"),
            Fault(
                kind="delay", delay=TIMEOUT + 0.5, count=ordeal.slow, match=INGEST, method="POST"
            ),
        )
        stage.dashboard.start()
        stage.add(20)
        wait_until(stage.all_delivered, timeout=120 + 10 * ordeal.storm)
        time.sleep(2 * TIMEOUT)  # let the last slow answers land, then nothing more may come
        assert 200 == proc.get("/readyz")[0]
    finally:
        assert 0 == proc.terminate()
    return stage.tally()


def _posts(stage: Stage) -> list[tuple[int, float]]:
    return [(r.status, r.at) for r in stage.dashboard.requests_to(INGEST, method="POST")]


def _check(stage: Stage, ordeal: Ordeal, tally: Tally) -> None:
    posts = _posts(stage)
    statuses = [status for status, _ in posts]
    print(f"events={len(tally.expected)} rows={len(tally.rows)} posts={len(posts)}")
    assert set() == tally.missing
    assert set() == tally.unexpected
    assert tally.duplicates <= ordeal.slow
    assert ordeal.unavailable == statuses.count(503)
    assert ordeal.storm == statuses.count(429)
    # Retry-After was honoured: no POST came sooner than the server asked after a 503.
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(posts) if a[0] == 503]
    assert min(gaps) >= ordeal.retry_after - 0.1


@pytest.fixture
def stage(tmp_path):
    s = Stage(tmp_path, sink={"timeout": f"{TIMEOUT:g}s"})
    yield s
    s.close()


def test_a_dashboard_down_then_unavailable_then_throttling_then_slow_loses_nothing(stage):
    """Seconds of each misbehaviour: every event delivered, copies only of answers that came too late."""
    ordeal = Ordeal(refused_seconds=4, unavailable=3, retry_after=1, storm=10, slow=3)
    _check(stage, ordeal, ride_out(stage, ordeal))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_minutes_of_each_misbehaviour_lose_nothing(stage):
    """Minutes down, then long 503s, a 429 storm and slow answers: every event delivered."""
    ordeal = Ordeal(refused_seconds=180, unavailable=10, retry_after=3, storm=100, slow=10)
    _check(stage, ordeal, ride_out(stage, ordeal))

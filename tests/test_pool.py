"""The poll pool: a task running past ``slow_after`` stops holding a worker; the pool shrinks back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from deploy_fetcher._pool import ElasticPool
from tests.support import wait_until


def _blocked(release: threading.Event, started: threading.Event | None = None) -> str:
    if started is not None:
        started.set()
    release.wait(20)
    return "slow"


def test_a_slow_task_frees_its_worker_for_the_queue() -> None:
    """With one worker held by a slow task, a queued task still runs once the first is slow."""
    pool = ElasticPool(1, slow_after=0.3, limit=4)
    release = threading.Event()
    try:
        slow = pool.submit(_blocked, release)
        quick = pool.submit(lambda: "quick")
        assert "quick" == quick.result(timeout=10)
        assert not slow.done()
        assert [True] == [run.slow for run in pool.running()]
    finally:
        release.set()
        pool.shutdown()
    assert "slow" == slow.result(timeout=1)


def test_without_the_headroom_a_slow_task_holds_the_only_worker() -> None:
    """The limit is a hard cap: at ``limit`` threads, the queue waits for a task to end."""
    pool = ElasticPool(1, slow_after=0.1, limit=1)
    release = threading.Event()
    try:
        pool.submit(_blocked, release)
        quick = pool.submit(lambda: "quick")
        with pytest.raises(TimeoutError):
            quick.result(timeout=1.0)
        release.set()
        assert "quick" == quick.result(timeout=10)
    finally:
        release.set()
        pool.shutdown()


def test_the_pool_shrinks_back_when_the_slow_task_ends() -> None:
    """The thread that ran late goes away when its task ends: size threads remain at most."""
    pool = ElasticPool(1, slow_after=0.2, limit=3)
    release = threading.Event()
    started = threading.Event()
    try:
        pool.submit(_blocked, release, started)
        assert started.wait(5)
        assert "quick" == pool.submit(lambda: "quick").result(timeout=10)
        assert 2 == pool.threads
        release.set()
        assert wait_until(lambda: pool.threads <= 1, timeout=15)
    finally:
        release.set()
        pool.shutdown()


def test_an_exception_reaches_the_future() -> None:
    """A task that raises hands its exception to its future; the worker lives on."""
    pool = ElasticPool(1, slow_after=10, limit=1)

    def boom() -> None:
        raise ValueError("boom")

    try:
        with pytest.raises(ValueError, match="boom"):
            pool.submit(boom).result(timeout=5)
        assert 1 == pool.submit(lambda: 1).result(timeout=5)
    finally:
        pool.shutdown()


class _Named:
    """A task's first argument: the pool names a task after its ``id`` (APScheduler's job)."""

    def __init__(self, name: str, order: list[str]) -> None:
        self.id = name
        self.order = order


def _record(named: _Named) -> str:
    named.order.append(named.id)
    return named.id


def _busy_pool(release: threading.Event) -> ElasticPool:
    """One worker held by a blocked task: whatever is submitted next waits in a lane."""
    pool = ElasticPool(1, slow_after=60, limit=1)
    started = threading.Event()
    pool.submit(_blocked, release, started)
    assert started.wait(5)
    return pool


def _order_behind_a_busy_worker(
    arrange: Callable[[ElasticPool, list[str]], list[Future[str]]],
) -> list[str]:
    """The order tasks ran in, queued by ``arrange`` while the pool's only worker was held."""
    order: list[str] = []
    release = threading.Event()
    pool = _busy_pool(release)
    try:
        futures = arrange(pool, order)
        release.set()
        for future in futures:
            future.result(timeout=10)
    finally:
        release.set()
        pool.shutdown()
    return order


def test_an_expedited_queued_task_runs_before_the_scheduled_ones() -> None:
    """A task queued last and expedited runs first when the worker frees; it runs once."""
    seen: list[object] = []

    def arrange(pool: ElasticPool, order: list[str]) -> list[Future[str]]:
        futures = [pool.submit(_record, _Named(name, order)) for name in ("a", "b", "c", "d")]
        seen.extend((pool.expedite("d"), pool.queued()))
        return futures

    order = _order_behind_a_busy_worker(arrange)
    assert ([True, (1, 3)], ["d", "a", "b", "c"]) == (seen, order)


def test_an_expedite_before_submission_sends_the_next_task_of_that_name_first() -> None:
    """Expedited while not queued: the next task of that name takes the urgent lane, once."""
    seen: list[bool] = []

    def arrange(pool: ElasticPool, order: list[str]) -> list[Future[str]]:
        seen.append(pool.expedite("c"))
        return [pool.submit(_record, _Named(name, order)) for name in ("a", "b", "c", "c")]

    order = _order_behind_a_busy_worker(arrange)
    assert ([False], ["c", "a", "b", "c"]) == (seen, order)


def test_urgent_tasks_never_starve_the_scheduled_ones() -> None:
    """While both lanes wait, every fourth task taken is a scheduled one, however many are urgent."""

    def arrange(pool: ElasticPool, order: list[str]) -> list[Future[str]]:
        futures = [pool.submit(_record, _Named(f"s{i}", order)) for i in range(3)]
        for i in range(8):
            pool.expedite(f"u{i}")
            futures.append(pool.submit(_record, _Named(f"u{i}", order)))
        return futures

    order = _order_behind_a_busy_worker(arrange)
    assert ["u0", "u1", "u2", "s0", "u3", "u4", "u5", "s1", "u6", "u7", "s2"] == order


def test_cancelling_on_shutdown_cancels_both_lanes() -> None:
    """``cancel_futures`` cancels urgent and scheduled tasks alike; none of them runs."""
    order: list[str] = []
    release = threading.Event()
    pool = _busy_pool(release)
    scheduled = pool.submit(_record, _Named("a", order))
    pool.expedite("b")
    urgent = pool.submit(_record, _Named("b", order))
    threading.Timer(0.2, release.set).start()
    pool.shutdown(cancel_futures=True)
    assert (True, True, []) == (scheduled.cancelled(), urgent.cancelled(), order)


def test_a_group_whose_tasks_hang_keeps_its_share_of_the_workers_not_all_of_them() -> None:
    """Two workers; six tasks of group ``a`` that hang, then two of ``b``: the ``b`` ones still run.

    Taken first in, first out, ``a`` would hold both workers and ``b`` would wait for ``a``'s six.
    This is a credential at its limit, whose polls wait inside their workers, ahead of another
    credential's polls.
    """
    order: list[str] = []
    blockers, hung = threading.Event(), threading.Event()
    pool = ElasticPool(2, slow_after=60, limit=2, group_of=lambda name: name[:1])
    started = [threading.Event(), threading.Event()]
    try:
        for event in started:
            pool.submit(_blocked, blockers, event)
        assert all(event.wait(5) for event in started)
        hanging = [pool.submit(_held, _Named(f"a{i}", order), hung) for i in range(6)]
        quick = [pool.submit(_record, _Named(f"b{i}", order)) for i in range(2)]
        blockers.set()
        done = [future.result(timeout=10) for future in quick]
        running = sorted((r.group, r.name) for r in pool.running())
        hung.set()
        for future in hanging:
            future.result(timeout=10)
    finally:
        blockers.set()
        hung.set()
        pool.shutdown()
    assert (["b0", "b1"], [("a", "a0"), ("a", "a1")]) == (done, running)
    assert ["a0", "b0", "b1", "a1"] == order[:4]


def test_with_one_group_tasks_run_first_in_first_out() -> None:
    """Without groups (every task in one), the lane is plain first in, first out."""
    order = _order_behind_a_busy_worker(
        lambda pool, order: [
            pool.submit(_record, _Named(name, order)) for name in ("c", "a", "d", "b")
        ]
    )
    assert ["c", "a", "d", "b"] == order


def _held(named: _Named, release: threading.Event) -> str:
    named.order.append(named.id)
    release.wait(20)
    return named.id


def test_a_slow_task_no_longer_counts_against_its_group() -> None:
    """A task past ``slow_after`` gave its worker back: its group's older task goes first again.

    Counted, a group with hung polls would wait behind every other group that had work.
    """
    order: list[str] = []
    hung = threading.Event()
    started = threading.Event()
    pool = ElasticPool(1, slow_after=0.3, limit=2, group_of=lambda name: name[:1])
    try:
        slow = pool.submit(_held_and_told, _Named("a0", order), hung, started)
        assert started.wait(5)
        queued = [pool.submit(_record, _Named(name, order)) for name in ("a1", "b0")]
        for future in queued:
            future.result(timeout=10)
    finally:
        hung.set()
        pool.shutdown()
    assert (["a0", "a1", "b0"], "a0") == (order, slow.result(timeout=5))


def _held_and_told(named: _Named, release: threading.Event, started: threading.Event) -> str:
    started.set()
    return _held(named, release)

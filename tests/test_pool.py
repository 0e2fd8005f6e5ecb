"""The poll pool: a task running past ``slow_after`` stops holding a worker; the pool shrinks back."""

from __future__ import annotations

import threading

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

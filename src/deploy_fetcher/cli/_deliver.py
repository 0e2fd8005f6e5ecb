"""Waiting for a one-off process's delivery workers (``fetcher sync``, ``fetcher outbox flush``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from deploy_fetcher.engine import Runtime

__all__ = ["drain", "summary_rows"]

POLL_SECONDS = 0.2


def drain(
    runtime: Runtime,
    sinks: Sequence[str],
    max_wait: float,
    *,
    tick: Callable[[dict[str, int]], None] = lambda _pending: None,
) -> dict[str, int]:
    """Wake the workers of ``sinks`` until their outboxes are empty, they are all paused, or time runs out.

    ``tick`` receives the rows still pending per sink every round (progress displays). Returns
    what is still pending per sink.
    """
    deadline = time.monotonic() + max_wait
    while True:
        pending = {name: runtime.store.pending_count(name) for name in sinks}
        tick(pending)
        stuck = all(name in runtime.health.paused_sinks for name in sinks)
        if not any(pending.values()) or stuck or time.monotonic() >= deadline:
            return pending
        runtime.wake(sinks)
        time.sleep(POLL_SECONDS)


def summary_rows(
    runtime: Runtime, sinks: Sequence[str], pending: dict[str, int]
) -> list[dict[str, Any]]:
    """One row per sink: what this process delivered and dead-lettered, what is left, why."""
    return [
        {
            "sink": name,
            "delivered": runtime.workers[name].delivered,
            "dead_lettered": runtime.workers[name].dead,
            "still_queued": pending.get(name, 0),
            "note": runtime.health.paused_sinks.get(name, ""),
        }
        for name in sinks
        if name in runtime.workers
    ]

"""What the control channel may do to a running fetcher, in the engine's own terms.

:class:`EngineControls` is the whole surface the reset choreography and the reports use, so they are
tested against a fake; :class:`DaemonControls` implements it over the daemon's runtime and scheduler.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from deploy_fetcher._logging import redact_text
from deploy_fetcher._version import __version__
from deploy_fetcher.engine import Runtime
from deploy_fetcher.scheduler import Scheduler

__all__ = ["DaemonControls", "EngineControls"]

#: At most this many readiness problems go into one status report.
_MAX_PROBLEMS = 20


class EngineControls(Protocol):
    """Pausing, resuming and forgetting, per dashboard sink."""

    def pause(self, sink: str, *, timeout: float) -> bool:
        """Stop polling the sources that feed ``sink`` and delivering to it; wait for what is in flight.

        True when everything went quiet within ``timeout`` seconds.
        """
        ...

    def resume(self, sink: str) -> None:
        """Undo :meth:`pause`."""
        ...

    def forget(self, sink: str) -> tuple[int, int]:
        """Reset the cursors of the sources feeding ``sink`` and drop its queued and delivered rows.

        Returns (cursors reset, rows dropped).
        """
        ...

    def status(self) -> dict[str, Any]:
        """The fields of a status report (``status`` is running, paused or degraded)."""
        ...

    def rate_limits(self) -> list[dict[str, Any]]:
        """The CI quota views the providers publish (provider, credential, remaining, limit)."""
        ...


class DaemonControls:
    """:class:`EngineControls` over a daemon's runtime and scheduler."""

    def __init__(self, runtime: Runtime, scheduler: Scheduler) -> None:
        self.runtime = runtime
        self.scheduler = scheduler
        self._lock = threading.Lock()
        self._paused: set[str] = set()

    def sources_for(self, sink: str) -> list[str]:
        """Names of the running sources that feed ``sink``."""
        config = self.runtime.config
        return sorted(
            name
            for name, provider in self.runtime.providers.items()
            if sink in config.sink_names_for(provider.config)
        )

    def pause(self, sink: str, *, timeout: float) -> bool:
        """Skip the feeding sources' runs, hold the sink's worker, wait for in-flight work."""
        deadline = time.monotonic() + timeout
        sources = self.sources_for(sink)
        self.scheduler.pause_sources(_reason(sink), sources)
        worker = self.runtime.workers.get(sink)
        if worker is not None:
            worker.hold()
        with self._lock:
            self._paused.add(sink)
        quiet = self.scheduler.wait_sources_idle(sources, timeout)
        if worker is not None:
            quiet = worker.wait_idle(max(0.0, deadline - time.monotonic())) and quiet
        return quiet

    def resume(self, sink: str) -> None:
        """Let the worker and the sources go again."""
        worker = self.runtime.workers.get(sink)
        if worker is not None:
            worker.unhold()
        self.scheduler.resume_sources(_reason(sink))
        with self._lock:
            self._paused.discard(sink)

    def forget(self, sink: str) -> tuple[int, int]:
        """Reset the feeding sources' cursors; drop the sink's pending and delivered rows.

        Delivered rows go too: they are the dedup ledger of a dashboard that no longer holds them,
        and kept, they would stop the re-read events from being sent again. Dead letters stay for
        the operator (the same events would be refused again).
        """
        sources = set(self.sources_for(sink))
        store = self.runtime.store
        keys = [r.key for r in store.list_cursors() if r.key.split("/", 1)[0] in sources]
        reset = sum(store.reset_cursor(key) for key in keys)
        dropped = store.purge(state="pending", sink=sink) + store.purge(
            state="delivered", sink=sink
        )
        return reset, dropped

    def status(self) -> dict[str, Any]:
        """running, paused (a reset is under way) or degraded (not ready), with a few numbers."""
        runtime = self.runtime
        problems = [redact_text(problem) for problem in runtime.ready_problems()]
        targets = runtime.health.snapshot().values()
        with self._lock:
            paused = sorted(self._paused)
        state = "paused" if paused else "degraded" if problems else "running"
        body: dict[str, Any] = {
            "status": state,
            "version": __version__,
            "targets": {
                "ok": sum(1 for t in targets if t.ok),
                "failing": sum(1 for t in targets if t.ok is False),
            },
            "outbox_pending": {name: runtime.store.pending_count(name) for name in runtime.sinks},
        }
        if problems:
            body["problems"] = problems[:_MAX_PROBLEMS]
        if paused:
            body["paused_sinks"] = paused
        return body

    def rate_limits(self) -> list[dict[str, Any]]:
        """Remaining quota (and limit, when known) per provider and credential, from the metrics."""
        metrics = self.runtime.metrics
        limits = {
            (s.labels["provider"], s.labels["credential"]): s.value
            for family in metrics.rate_limit_limit.collect()
            for s in family.samples
        }
        out: list[dict[str, Any]] = []
        for family in metrics.rate_limit_remaining.collect():
            for sample in family.samples:
                provider, credential = sample.labels["provider"], sample.labels["credential"]
                view: dict[str, Any] = {
                    "provider": provider,
                    "credential": credential,
                    "remaining": int(sample.value),
                }
                limit = limits.get((provider, credential))
                if limit is not None:
                    view["limit"] = int(limit)
                out.append(view)
        return out


def _reason(sink: str) -> str:
    return f"dashboard reset ({sink})"

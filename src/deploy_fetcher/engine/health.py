"""What the daemon knows about its own health, for ``/readyz`` and for logging transitions once.

A failing source target is logged when it starts failing and when it recovers, never on every tick
(a source down for a night must not write ten thousand identical lines).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from deploy_fetcher.model import utc_now
from deploy_fetcher.redaction import redact

__all__ = ["Health", "TargetState"]

_log = structlog.get_logger(__name__)


@dataclass
class TargetState:
    """The last known state of one source target."""

    ok: bool | None = None
    outcome: str = "never"
    message: str = ""
    last_success: datetime | None = None
    failing_since: datetime | None = None


@dataclass
class Health:
    """Thread-safe health bookkeeping shared by the poller, the delivery workers and the server."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    targets: dict[str, TargetState] = field(default_factory=dict)
    paused_sinks: dict[str, str] = field(default_factory=dict)
    store_problem: str | None = None
    #: Polls running past ``defaults.poll_deadline``: target key → seconds running.
    overdue: dict[str, float] = field(default_factory=dict)
    overdue_deadline: float = 0.0

    def target_ok(self, key: str, *, now: datetime | None = None) -> None:
        """Record a successful cycle; log recovery once."""
        now = now or utc_now()
        with self._lock:
            state = self.targets.setdefault(key, TargetState())
            recovered = state.ok is False
            since = state.failing_since
            state.ok, state.outcome, state.message = True, "ok", ""
            state.last_success, state.failing_since = now, None
        if recovered:
            _log.info(
                "source.recovered", target=key, failing_since=since.isoformat() if since else None
            )

    def target_failed(
        self, key: str, outcome: str, message: str, *, now: datetime | None = None
    ) -> None:
        """Record a failed cycle; log only when the failure is new or changes kind."""
        now = now or utc_now()
        with self._lock:
            state = self.targets.setdefault(key, TargetState())
            changed = state.ok is not False or state.outcome != outcome
            state.ok, state.outcome, state.message = False, outcome, message
            if state.failing_since is None:
                state.failing_since = now
        if changed:
            _log.warning("source.failing", target=key, outcome=outcome, error=message)

    def forget_target(self, key: str) -> None:
        """A target left the configuration (e.g. a repository removed from an org)."""
        with self._lock:
            self.targets.pop(key, None)

    def sink_paused(self, sink: str, reason: str) -> None:
        """A sink rejected its credentials."""
        with self._lock:
            new = sink not in self.paused_sinks
            self.paused_sinks[sink] = reason
        if new:
            _log.error("sink.paused", sink=sink, reason=reason)

    def sink_resumed(self, sink: str) -> None:
        """A paused sink accepted an event again."""
        with self._lock:
            was = self.paused_sinks.pop(sink, None)
        if was is not None:
            _log.info("sink.resumed", sink=sink)

    def set_store_problem(self, problem: str | None) -> None:
        """Record whether the store is writable; log when it stops being so and when it recovers.

        While it stays unwritable the reason may change from one check to the next (the disk's free
        space, then the commit that failed): readiness shows the latest, the log only the transition.
        """
        with self._lock:
            was = self.store_problem
            self.store_problem = problem
        if problem and not was:
            _log.error("store.unwritable", problem=problem)
        elif was and not problem:
            _log.info("store.writable")

    def set_overdue(self, running: dict[str, float], *, deadline: float) -> None:
        """Record the polls running past their deadline; log each once when it becomes overdue."""
        with self._lock:
            new = sorted(set(running) - set(self.overdue))
            self.overdue, self.overdue_deadline = dict(running), deadline
        for key in new:
            _log.warning(
                "poll.overdue", target=key, running_s=round(running[key]), deadline_s=deadline
            )

    def problems(self) -> list[str]:
        """Reasons the daemon is not ready, secrets masked (``/readyz`` is unauthenticated)."""
        return [redact(problem) for problem in self._problems()]

    def _problems(self) -> list[str]:
        with self._lock:
            out: list[str] = []
            if self.store_problem:
                out.append(f"state store: {self.store_problem}")
            out += [f"sink {name}: {reason}" for name, reason in sorted(self.paused_sinks.items())]
            auth = [k for k, s in sorted(self.targets.items()) if s.outcome == "auth_error"]
            out += [f"source {k}: credentials rejected" for k in auth]
            out += [
                f"source {k}: poll running for {seconds:.0f}s, past the poll deadline of "
                f"{self.overdue_deadline:g}s"
                for k, seconds in sorted(self.overdue.items())
            ]
            if self.targets and not any(s.last_success for s in self.targets.values()):
                out.append("no source has completed a poll yet")
            if not self.targets:
                out.append("no source has been polled yet")
            return out

    def snapshot(self) -> dict[str, TargetState]:
        """A copy of the per-target states (for the CLI and metrics)."""
        with self._lock:
            return {k: TargetState(**vars(v)) for k, v in self.targets.items()}

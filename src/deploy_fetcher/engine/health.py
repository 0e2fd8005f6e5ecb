"""What the daemon knows about its own health, for ``/readyz`` and for logging transitions once.

A failing source target is logged when it starts failing and when it recovers, never on every tick
(a source down for a night must not write ten thousand identical lines).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from deploy_fetcher.model import format_rfc3339, utc_now
from deploy_fetcher.redaction import redact

__all__ = ["OUTCOME_PREFIX", "Health", "TargetState", "outcome_record", "parse_outcome"]

#: Store values under this prefix + a target's key hold its latest outcome (see :func:`outcome_record`).
OUTCOME_PREFIX = "last-outcome:"
_MAX_STORED_MESSAGE = 300

_log = structlog.get_logger(__name__)


@dataclass
class TargetState:
    """The last known state of one source target."""

    ok: bool | None = None
    outcome: str = "never"
    message: str = ""
    last_success: datetime | None = None
    failing_since: datetime | None = None


def outcome_record(state: TargetState) -> str:
    """A target's outcome as the small JSON value kept in the store."""
    since = state.last_success if state.ok else state.failing_since
    return json.dumps(
        {
            "outcome": state.outcome,
            "since": format_rfc3339(since) if since else None,
            "error": redact(state.message)[:_MAX_STORED_MESSAGE],
        }
    )


def parse_outcome(text: str | None) -> dict[str, str | None]:
    """The inverse of :func:`outcome_record`; empty when nothing usable is stored."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        key: (str(data[key]) if data.get(key) is not None else None)
        for key in ("outcome", "since", "error")
    }


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
    #: Called (outside the lock) with a target's key and new state when its outcome changes: the
    #: first success after start, a new failure or a change of kind, a recovery. Must not raise.
    transition_listeners: list[Callable[[str, TargetState], None]] = field(default_factory=list)
    #: Seconds without a scheduler heartbeat after which the process counts as wedged (``/healthz``).
    heartbeat_limit: float = 60.0
    _last_beat: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        """The scheduler is alive and dispatching jobs (its housekeeping job calls this)."""
        with self._lock:
            self._last_beat = time.monotonic()

    def liveness_problem(self) -> str | None:
        """Why the process should be restarted (its scheduler stopped dispatching), or None.

        Only a wedged scheduler counts: a rejected credential or a sink that is down is a readiness
        problem, which a restart would not fix.
        """
        with self._lock:
            age = time.monotonic() - self._last_beat
        if age > self.heartbeat_limit:
            return (
                f"the scheduler's last heartbeat was {age:.0f}s ago"
                f" (limit {self.heartbeat_limit:g}s): it no longer dispatches jobs"
            )
        return None

    def _announce(self, key: str, state: TargetState) -> None:
        for listener in self.transition_listeners:
            try:
                listener(key, state)
            except Exception:
                _log.exception("health.listener_failed", target=key)

    def target_ok(self, key: str, *, now: datetime | None = None) -> None:
        """Record a successful cycle; log recovery once."""
        now = now or utc_now()
        with self._lock:
            state = self.targets.setdefault(key, TargetState())
            recovered = state.ok is False
            changed = state.ok is not True
            since = state.failing_since
            state.ok, state.outcome, state.message = True, "ok", ""
            state.last_success, state.failing_since = now, None
            copy = replace(state)
        if changed:
            self._announce(key, copy)
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
            copy = replace(state)
        if changed:
            self._announce(key, copy)
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

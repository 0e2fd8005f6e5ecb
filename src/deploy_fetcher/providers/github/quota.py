"""The API quota of one credential, shared by every repository (and source) that uses it.

GitHub gives each credential an hourly quota per resource (``core`` for REST, ``graphql`` for GraphQL)
and reports it on every response (``x-ratelimit-limit/-remaining/-reset/-resource``). This fetcher may
spend a configured share of it (``quota_share``), so the same token still serves people and other
tools. What it spent is counted from the responses it got: a ``304 Not Modified`` is free, anything
else is charged. Secondary limits (403/429 with ``retry-after``) block the credential for the time
GitHub names. GitHub Enterprise Server often sends no rate-limit headers: then no limit is known and
nothing is enforced except explicit ``retry-after`` answers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import format_rfc3339

__all__ = ["Blocked", "QuotaBudget", "ResourceState"]


@dataclass
class ResourceState:
    """What the last response said about one resource, and what this fetcher spent of it."""

    limit: int | None = None
    remaining: int | None = None
    reset: datetime | None = None
    spent: int = 0


@dataclass(frozen=True)
class Blocked:
    """Why requests must wait, and until when."""

    until: datetime
    reason: str


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


class QuotaBudget:
    """Thread-safe quota bookkeeping for one credential."""

    def __init__(
        self,
        *,
        share: float,
        label: str,
        metrics: Metrics,
        clock: Callable[[], datetime],
        provider: str = "github",
    ) -> None:
        self.share = share
        self.label = label
        self._metrics = metrics
        self._clock = clock
        self._provider = provider
        self._lock = threading.Lock()
        self._resources: dict[str, ResourceState] = {}
        self._blocked_until: datetime | None = None
        self._blocked_reason = ""

    def state(self, resource: str = "core") -> ResourceState:
        """A copy of what is known about ``resource``."""
        with self._lock:
            current = self._resources.get(resource, ResourceState())
            return ResourceState(current.limit, current.remaining, current.reset, current.spent)

    def allowance(self, resource: str = "core") -> int | None:
        """How many charged requests this fetcher may make in the current window (None: unknown)."""
        limit = self.state(resource).limit
        return None if limit is None else max(1, math.floor(limit * self.share))

    def check(self, resource: str) -> Blocked | None:
        """Whether a request on ``resource`` may be sent now; a :class:`Blocked` says until when not."""
        now = self._clock()
        with self._lock:
            if self._blocked_until is not None:
                if self._blocked_until > now:
                    return Blocked(self._blocked_until, self._blocked_reason)
                self._blocked_until = None
            state = self._resources.get(resource)
            if state is None or state.limit is None or state.reset is None:
                return None
            if state.reset <= now:
                # A new window began; the next response will tell its numbers.
                state.spent = 0
                state.remaining = state.limit
                return None
            if state.remaining is not None and state.remaining <= 0:
                return Blocked(state.reset, f"{resource} quota exhausted")
            allowance = max(1, math.floor(state.limit * self.share))
            if state.spent >= allowance:
                share = f"{self.share:.0%}"
                return Blocked(
                    state.reset,
                    f"{resource} budget spent ({state.spent} of {share} of {state.limit})",
                )
        return None

    def observe(self, headers: Mapping[str, str], *, charged: bool, default_resource: str) -> None:
        """Record a response: its rate-limit headers and whether it cost quota."""
        resource = headers.get("x-ratelimit-resource") or default_resource
        limit = _int(headers.get("x-ratelimit-limit"))
        remaining = _int(headers.get("x-ratelimit-remaining"))
        reset_epoch = _int(headers.get("x-ratelimit-reset"))
        with self._lock:
            state = self._resources.setdefault(resource, ResourceState())
            if reset_epoch is not None:
                reset = datetime.fromtimestamp(reset_epoch, UTC)
                if state.reset is not None and reset > state.reset:
                    state.spent = 0  # a new window
                state.reset = reset
            if limit is not None:
                state.limit = limit
            if remaining is not None:
                state.remaining = remaining
            if charged:
                state.spent += 1
        if remaining is not None:
            name = self.label if resource == "core" else f"{self.label}/{resource}"
            self._metrics.rate_limit_remaining.labels(self._provider, name).set(remaining)
            if limit is not None:
                self._metrics.rate_limit_limit.labels(self._provider, name).set(limit)

    def block(self, seconds: float, reason: str) -> datetime:
        """Stop every request on this credential for ``seconds`` (a secondary limit); returns until."""
        until = self._clock() + timedelta(seconds=max(0.0, seconds))
        with self._lock:
            if self._blocked_until is None or until > self._blocked_until:
                self._blocked_until = until
                self._blocked_reason = reason
            return self._blocked_until

    def block_until_reset(self, resource: str, reason: str) -> datetime | None:
        """Stop requests until the window of ``resource`` resets (a primary limit hit)."""
        state = self.state(resource)
        if state.reset is None:
            return None
        with self._lock:
            current = self._resources.setdefault(resource, ResourceState())
            current.remaining = 0
            if self._blocked_until is None or state.reset > self._blocked_until:
                self._blocked_until = state.reset
                self._blocked_reason = reason
        return state.reset

    def problem(self) -> str | None:
        """A readiness problem while this credential is blocked (with the remaining quota)."""
        blocked = self.check("core")
        if blocked is None:
            return None
        state = self.state("core")
        quota = f"; remaining {state.remaining}/{state.limit}" if state.limit is not None else ""
        return (
            f"GitHub credential {self.label}: {blocked.reason} until "
            f"{format_rfc3339(blocked.until)}{quota}"
        )

"""One credential's API quota, read from the responses it gets, and the waits it implies.

GitHub (``X-RateLimit-*``), GitLab (``RateLimit-*``) and Azure DevOps (``X-RateLimit-*``) report the
same four figures on their answers: the limit, what remains, when the window resets (an epoch) and,
for GitHub and Azure DevOps, which resource was charged. A missing header means "no limit known",
never "nothing left" (GitHub Enterprise Server and many self-managed GitLab instances send none):
then nothing waits except what a 429 or a provider's own reading asked for.

What a :class:`Quota` makes wait, before the next request of the credential, is one of:

* a **block**: a 429 (or a provider's own "rate limited" answer) named a wait; lifted early by the
  next answer that is not an error;
* a **reset**: the remaining figure fell to ``reserve`` (0 by default) — wait for the window's reset;
* a **share**: this fetcher spent ``share`` of the window's limit (GitHub's ``quota_share``), so the
  same credential keeps room for people and other tools;
* a **pace**: below ``low_water`` × limit, the remaining budget is spread evenly until the reset
  (Azure DevOps, whose budget slides), one pause per request.

A server's reset epoch is turned into local time with the same answer's ``Date`` header, so a skewed
local clock neither waits for hours nor not at all. Times come from the injected clock (tests move it).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Final

from deploy_fetcher.model import format_rfc3339
from deploy_fetcher.retry_after import parse_retry_after

if TYPE_CHECKING:
    from deploy_fetcher.metrics import Metrics

__all__ = ["Blocked", "Figures", "Quota", "RequestBudget"]

#: A 429 that names no wait blocks the credential this long (GitHub's advice for secondary limits).
DEFAULT_BLOCK: Final = 60.0
_TOO_MANY: Final = 429
_ERRORS: Final = 400


def _int(headers: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = headers.get(name)
        if value is None:
            continue
        try:
            number = float(value.strip())
        except ValueError:
            continue
        if math.isfinite(number):
            return int(number)
    return None


def server_time(headers: Mapping[str, str]) -> datetime | None:
    """The server's clock from its ``Date`` header (lower-case keys), or None."""
    value = headers.get("date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass
class Figures:
    """What the last answer said about one resource, and what this fetcher spent of it."""

    limit: int | None = None
    remaining: int | None = None
    #: When the window resets, on the local clock.
    reset: datetime | None = None
    #: The server's reset epoch: it names the window (a larger one is a new window).
    window: int | None = None
    spent: int = 0


@dataclass(frozen=True)
class Blocked:
    """Why requests must wait, and until when."""

    until: datetime
    reason: str


class Quota:
    """Thread-safe quota bookkeeping for one credential (see the module docstring)."""

    def __init__(
        self,
        *,
        provider: str,
        label: str,
        metrics: Metrics,
        clock: Callable[[], datetime],
        share: float = 1.0,
        reserve: int = 0,
        low_water: float = 0.0,
        max_pause: float = 60.0,
    ) -> None:
        self.provider = provider
        self.label = label
        self.share = share
        self.reserve = reserve
        self.low_water = low_water
        self.max_pause = max_pause
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._resources: dict[str, Figures] = {}
        self._blocked: Blocked | None = None
        self._paced_until: datetime | None = None

    def figures(self, resource: str = "core") -> Figures:
        """A copy of what is known about ``resource``."""
        with self._lock:
            return replace(self._resources.get(resource, Figures()))

    def observe(
        self,
        status: int,
        headers: Mapping[str, str],
        *,
        resource: str = "core",
        charged: bool = True,
    ) -> None:
        """Record one answer (``headers`` with lower-case names)."""
        now = self._clock()
        resource = headers.get("x-ratelimit-resource") or resource
        limit = _int(headers, "x-ratelimit-limit", "ratelimit-limit")
        remaining = _int(headers, "x-ratelimit-remaining", "ratelimit-remaining")
        epoch = _int(headers, "x-ratelimit-reset", "ratelimit-reset")
        said = server_time(headers)
        with self._lock:
            state = self._resources.setdefault(resource, Figures())
            if epoch is not None and epoch > 0:
                if state.window is not None and epoch > state.window:
                    state.spent = 0  # a new window
                state.window = epoch
                base = said.timestamp() if said is not None else now.timestamp()
                state.reset = now + timedelta(seconds=max(epoch - base, 0.0))
            if limit is not None:
                state.limit = limit
            if remaining is not None:
                state.remaining = remaining
            if charged:
                state.spent += 1
            if status < _ERRORS:
                self._blocked = None
            self._pace(state, now)
        if status == _TOO_MANY:
            self.hold(headers, resource=resource, reason="rate limited (429)")
        self._export(resource, limit, remaining)

    def _pace(self, state: Figures, now: datetime) -> None:
        """Below the low-water mark, spread what remains until the reset (lock held)."""
        self._paced_until = None
        if not self.low_water or state.limit is None or state.remaining is None:
            return
        if state.limit <= 0 or state.remaining > state.limit * self.low_water:
            return
        until_reset = (
            (state.reset - now).total_seconds() if state.reset is not None else self.max_pause
        )
        spread = max(until_reset, 0.0) / max(state.remaining, 1)
        self._paced_until = now + timedelta(seconds=min(self.max_pause, max(1.0, spread)))

    def _export(self, resource: str, limit: int | None, remaining: int | None) -> None:
        if remaining is None:
            return
        name = self.label if resource == "core" else f"{self.label}/{resource}"
        self._metrics.rate_limit(self.provider, name, remaining=remaining, limit=limit)

    def block(self, seconds: float, reason: str) -> datetime:
        """Stop every request of this credential for ``seconds``; returns until when."""
        until = self._clock() + timedelta(seconds=max(0.0, seconds))
        with self._lock:
            if self._blocked is None or until > self._blocked.until:
                self._blocked = Blocked(until, reason)
            return self._blocked.until

    def hold(
        self,
        headers: Mapping[str, str],
        *,
        resource: str = "core",
        reason: str = "rate limited",
        exhausted: str = "quota exhausted",
    ) -> datetime:
        """Block the credential as a rate-limited answer asks; returns until when.

        Its ``Retry-After`` when it sends one; else, when nothing remains, until the window
        resets; else :data:`DEFAULT_BLOCK` (GitHub's advice for a secondary limit).
        """
        wait = parse_retry_after(headers.get("retry-after"), now=self._clock())
        if wait is not None:
            return self.block(wait, f"{reason} (retry-after)")
        if _int(headers, "x-ratelimit-remaining", "ratelimit-remaining") == 0:
            until = self.block_until_reset(
                headers.get("x-ratelimit-resource") or resource, exhausted
            )
            if until is not None:
                return until
            return self.block(DEFAULT_BLOCK, exhausted)
        return self.block(DEFAULT_BLOCK, reason)

    def block_until_reset(self, resource: str, reason: str) -> datetime | None:
        """Stop requests until the window of ``resource`` resets (None when no reset is known)."""
        with self._lock:
            state = self._resources.setdefault(resource, Figures())
            if state.reset is None:
                return None
            state.remaining = 0
            if self._blocked is None or state.reset > self._blocked.until:
                self._blocked = Blocked(state.reset, reason)
            return state.reset

    def check(self, resource: str = "core") -> Blocked | None:  # noqa: PLR0911 - one exit per reason
        """Whether a request on ``resource`` may go now; a :class:`Blocked` says until when not."""
        now = self._clock()
        with self._lock:
            if self._blocked is not None:
                if self._blocked.until > now:
                    return self._blocked
                self._blocked = None
            if self._paced_until is not None and self._paced_until > now:
                return Blocked(self._paced_until, "rate limit low: pacing requests")
            state = self._resources.get(resource)
            if state is None or state.limit is None or state.reset is None:
                return None
            if state.reset <= now:
                # A new window began; the next answer tells its numbers.
                state.spent = 0
                state.remaining = state.limit
                return None
            if state.remaining is not None and state.remaining <= self.reserve:
                return Blocked(state.reset, f"{resource} quota exhausted")
            allowance = max(1, math.floor(state.limit * self.share))
            if self.share < 1 and state.spent >= allowance:
                share = f"{self.share:.0%}"
                return Blocked(
                    state.reset,
                    f"{resource} budget spent ({state.spent} of {share} of {state.limit})",
                )
        return None

    def problem(self, what: str) -> str | None:
        """A readiness problem while the credential is blocked; ``what`` names the credential."""
        blocked = self.check("core")
        if blocked is None or blocked.reason.startswith("rate limit low"):
            return None
        state = self.figures("core")
        quota = f"; remaining {state.remaining}/{state.limit}" if state.limit is not None else ""
        return f"{what}: {blocked.reason} until {format_rfc3339(blocked.until)}{quota}"


class RequestBudget:
    """At most ``limit`` requests in any ``window`` seconds (thread-safe, monotonic clock).

    An admin's own "do not take more than this" figure, shared by every source that reads one server.
    """

    def __init__(
        self, limit: int, window: float = 60.0, now: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1:
            msg = "a request budget needs at least one request"
            raise ValueError(msg)
        self.limit = limit
        self.window = window
        self._now = now
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a slot: 0.0 when one was free, else the seconds until one frees (nothing taken)."""
        with self._lock:
            now = self._now()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                self._sent.append(now)
                return 0.0
            return max(self._sent[0] + self.window - now, 0.001)

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

Besides waiting, a quota tells the scheduler how fast the credential may go, so intervals stretch
before a limit is hit rather than after: every answer (a free ``304`` too) is counted per resource,
and :meth:`Quota.allowance` gives the tightest per-minute limit known — one the provider declares
(GitHub's secondary limit of 900 REST points a minute, GitLab.com's 2 000 requests a minute per
user) or one the server's headers state — with its reason. Repeated secondary limits (a 403 or
429 while the quota is not spent) block for exponentially longer: one minute, then two, four …
up to :data:`MAX_BLOCK`, as GitHub asks of clients that keep hitting them.

Azure DevOps counts usage in TSTUs, which no formula turns into requests, so its headers state no
request limit (``counts_requests=False``); it says instead when it starts delaying a user's
requests (``X-RateLimit-Delay``). Such a credential is then held to half of what it asked in the
last minute (lowered again at most once a minute while delays go on), raised by half after each
quiet :data:`THROTTLE_WINDOW` (Azure DevOps' sliding window), and freed once back at the rate
that was delayed first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Final

from deploy_fetcher.model import format_rfc3339
from deploy_fetcher.retry_after import parse_retry_after

if TYPE_CHECKING:
    from deploy_fetcher.metrics import Metrics

__all__ = ["Allowance", "Blocked", "Figures", "Quota", "RequestBudget", "Tally", "tally"]

#: A 429 that names no wait blocks the credential this long (GitHub's advice for secondary limits).
DEFAULT_BLOCK: Final = 60.0
#: The longest block repeated secondary limits grow to.
MAX_BLOCK: Final = 900.0
#: A secondary limit this long after the previous block ended starts the back-off over.
STRIKES_FORGOTTEN_AFTER: Final = timedelta(minutes=10)
#: Azure DevOps' sliding window: delays stop this long after consumption falls.
THROTTLE_WINDOW: Final = timedelta(minutes=5)
#: A throttled credential is never held below this many requests a minute.
MIN_THROTTLED: Final = 6.0
_TOO_MANY: Final = 429
_ERRORS: Final = 400
#: Where the answers recorded by the code running now are also counted (:func:`tally`).
_TALLY: ContextVar[Tally | None] = ContextVar("quota_tally", default=None)


class Tally:
    """Answers counted per resource, from any number of threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, resource: str) -> None:
        """Count one answer."""
        with self._lock:
            self._counts[resource] += 1

    def counts(self) -> dict[str, int]:
        """The answers counted so far, per resource."""
        with self._lock:
            return dict(self._counts)


@contextmanager
def tally(into: Tally | None = None) -> Iterator[Tally]:
    """Count in ``into`` (or a new tally) the answers every :class:`Quota` records in this thread.

    What some polls cost, apart from the polls running beside them on the same credential (the
    scheduler keeps a target's first poll, which reads a whole lookback, out of its average).
    """
    counted = into if into is not None else Tally()
    token = _TALLY.set(counted)
    try:
        yield counted
    finally:
        _TALLY.reset(token)


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


def _delayed(headers: Mapping[str, str]) -> bool:
    """Whether the server says it delayed this request (``X-RateLimit-Delay`` above zero)."""
    value = headers.get("x-ratelimit-delay")
    if value is None:
        return False
    try:
        return float(value.strip()) > 0
    except ValueError:
        return False


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
class Allowance:
    """How many requests a minute a credential may make, and which limit says so."""

    per_minute: float
    reason: str
    #: The resource whose requests the limit counts (``core``, ``graphql``).
    resource: str = "core"
    #: What kind of limit, a short fixed word for metrics: ``declared`` (a provider's documented
    #: limit or the configuration's), ``headers`` (stated by the server), ``throttled`` (learnt
    #: from the server delaying requests).
    kind: str = "declared"


class _Throttle:
    """The requests a minute a credential is held to while its server delays it (lock held).

    Lowered to half of the last minute's answers when a delay is reported (at most once a minute),
    raised by half per quiet :data:`THROTTLE_WINDOW`, and gone once back at the rate that was
    delayed first: a probe, which the next delay, if any, lowers again.
    """

    def __init__(self) -> None:
        #: Answers per second over the last minute: (epoch second, count), oldest first.
        self.recent: deque[list[int]] = deque()
        self.per_minute: float | None = None
        #: Answers in the minute before the first delay: the rate the server found too much.
        self.delayed_at = 0.0
        self.lowered: datetime | None = None
        self.last_delay: datetime | None = None

    def count(self, now: datetime) -> None:
        second = int(now.timestamp())
        if self.recent and self.recent[-1][0] == second:
            self.recent[-1][1] += 1
        else:
            self.recent.append([second, 1])
        while self.recent and self.recent[0][0] <= second - 60:
            self.recent.popleft()

    def last_minute(self, now: datetime) -> int:
        since = int(now.timestamp()) - 60
        return sum(n for second, n in self.recent if second > since)

    def delayed(self, now: datetime) -> None:
        """The server delayed a request: lower the allowance, at most once a minute."""
        self.last_delay = now
        if self.lowered is not None and now - self.lowered < timedelta(minutes=1):
            return
        asked = self.last_minute(now)
        lower = max(MIN_THROTTLED, asked / 2)
        if self.per_minute is None:
            self.per_minute, self.delayed_at = lower, float(asked)
        else:
            self.per_minute = min(self.per_minute, lower)
        self.lowered = now

    def allowance(self, now: datetime) -> float | None:
        """The allowance now, raised by half for each quiet window since the last change."""
        if self.per_minute is None or self.last_delay is None or self.lowered is None:
            return None
        since = max(self.last_delay, self.lowered)
        windows = int((now - since) / THROTTLE_WINDOW)
        if windows > 0:
            self.per_minute *= 1.5**windows
            self.lowered = since + windows * THROTTLE_WINDOW
            if self.per_minute >= self.delayed_at:
                self.per_minute = self.lowered = self.last_delay = None
                return None
        return self.per_minute


@dataclass(frozen=True)
class Blocked:
    """Why requests must wait, and until when."""

    until: datetime
    reason: str
    #: Which block this is (see :attr:`Quota.epoch`): only a request sent under it may lift it.
    epoch: int = 0


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
        counts_requests: bool = True,
    ) -> None:
        self.provider = provider
        #: Whether the server's rate-limit headers count requests (Azure DevOps' count TSTUs).
        self.counts_requests = counts_requests
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
        self._epoch = 0
        #: Per-minute limits the provider knows of, by resource: (requests a minute, reason).
        self._declared: dict[str, tuple[float, str]] = {}
        #: Answers counted per resource since the start (free ones too).
        self._spent: dict[str, int] = {}
        self._strikes = 0
        self._last_strike_end: datetime | None = None
        self._throttle = _Throttle()

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
        sent_under: int | None = None,
    ) -> None:
        """Record one answer (``headers`` with lower-case names).

        An answer that is not an error lifts a block, unless its request was sent before the
        block began (``sent_under``: the :attr:`epoch` when it was sent). Requests of a credential
        run side by side: the late 200 of a request sent before a 429 must not lift the block
        that 429 set.
        """
        now = self._clock()
        resource = headers.get("x-ratelimit-resource") or resource
        limit = _int(headers, "x-ratelimit-limit", "ratelimit-limit")
        remaining = _int(headers, "x-ratelimit-remaining", "ratelimit-remaining")
        epoch = _int(headers, "x-ratelimit-reset", "ratelimit-reset")
        said = server_time(headers)
        delayed = _delayed(headers)
        counted = _TALLY.get()
        if counted is not None:
            counted.add(resource)
        with self._lock:
            self._spent[resource] = self._spent.get(resource, 0) + 1
            self._throttle.count(now)
            if delayed:
                self._throttle.delayed(now)
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
            if status < _ERRORS and (
                sent_under is None or self._blocked is None or sent_under >= self._blocked.epoch
            ):
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

    def declare(self, resource: str, per_minute: float, reason: str) -> None:
        """A per-minute limit the provider knows of (GitHub's secondary limit), even unannounced."""
        with self._lock:
            self._declared[resource] = (per_minute, reason)

    def requests_last_minute(self) -> int:
        """Answers counted in the last minute, every resource (a ``304`` too)."""
        now = self._clock()
        with self._lock:
            return self._throttle.last_minute(now)

    def spent(self) -> dict[str, int]:
        """Answers counted per resource so far (a ``304`` too): what limits per minute count."""
        with self._lock:
            return dict(self._spent)

    def allowance(self) -> list[Allowance]:
        """Every per-minute limit known, per resource: declared ones, and what headers state.

        A window's figures count when its window is a minute or so (GitLab's ``RateLimit-*``), or
        when little remains of it (the rest is spread over what is left of the window).
        """
        now = self._clock()
        out: dict[str, Allowance] = {
            resource: Allowance(limit, reason, resource)
            for resource, (limit, reason) in self._declared.items()
        }
        with self._lock:
            resources = {name: replace(state) for name, state in self._resources.items()}
            throttled = self._throttle.allowance(now)
        if throttled is not None:
            said = Allowance(
                throttled,
                f"{self.provider} delays requests (X-RateLimit-Delay): held to "
                f"{throttled:.0f} a minute",
                "core",
                "throttled",
            )
            known = out.get("core")
            if known is None or said.per_minute < known.per_minute:
                out["core"] = said
        for resource, state in resources.items():
            if not self.counts_requests:
                break
            if state.limit is None or state.remaining is None or state.reset is None:
                continue
            left = (state.reset - now).total_seconds()
            if left <= 0:
                continue
            if left <= 90:  # noqa: PLR2004 - a window of about a minute: its limit is per minute
                said = Allowance(
                    state.limit * 60 / max(left, 60.0),
                    f"{self.provider} states {state.limit} requests a minute",
                    resource,
                    "headers",
                )
            elif state.remaining < state.limit * 0.2:  # a window running low
                said = Allowance(
                    state.remaining * 60 / left,
                    f"{self.provider} has {state.remaining} of {state.limit} requests left "
                    f"for {round(left / 60)} min",
                    resource,
                    "headers",
                )
            else:
                continue
            known = out.get(resource)
            if known is None or said.per_minute < known.per_minute:
                out[resource] = said
        return sorted(out.values(), key=lambda a: a.resource)

    @property
    def epoch(self) -> int:
        """How many blocks were set so far: a request records it when it is sent."""
        return self._epoch

    def block(self, seconds: float, reason: str) -> datetime:
        """Stop every request of this credential for ``seconds``; returns until when."""
        until = self._clock() + timedelta(seconds=max(0.0, seconds))
        with self._lock:
            if self._blocked is None or until > self._blocked.until:
                self._epoch += 1
                self._blocked = Blocked(until, reason, self._epoch)
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

        When nothing remains and no ``Retry-After`` is sent, until the window resets. Otherwise
        its ``Retry-After``, else :data:`DEFAULT_BLOCK` (GitHub's advice for a secondary limit),
        doubled for each limit that follows soon after the last block ended (up to
        :data:`MAX_BLOCK`): GitHub asks for exponentially longer waits while they keep coming.
        """
        wait = parse_retry_after(headers.get("retry-after"), now=self._clock())
        if _int(headers, "x-ratelimit-remaining", "ratelimit-remaining") == 0:
            # The window is spent: that is the whole reason, and its end is known. Not a strike:
            # requests in flight when the last slot went (GitLab's 429s carry Retry-After) each
            # come back refused, and counted as strikes they doubled the wait up to 15 minutes
            # for a window that reopened within the minute. (GitLab documents RateLimit-Remaining,
            # RateLimit-Reset and Retry-After on throttled answers: "User and IP rate limits",
            # response headers; Rack::Attack counts fixed periods. A 429 without these headers,
            # as gitlab-org/gitlab#365728 reports, still takes the strike path below.)
            if wait is not None:
                return self.block(wait, exhausted)
            until = self.block_until_reset(
                headers.get("x-ratelimit-resource") or resource, exhausted
            )
            if until is not None:
                return until
            return self.block(DEFAULT_BLOCK, exhausted)
        strikes = self._strike()
        base = wait if wait is not None else DEFAULT_BLOCK
        seconds = max(min(MAX_BLOCK, base * 2 ** (strikes - 1)), wait or 0.0)
        if strikes > 1:
            until = self.block(seconds, f"{reason} again: backing off {seconds:g}s")
        else:
            until = self.block(seconds, f"{reason} (retry-after)" if wait is not None else reason)
        with self._lock:
            self._last_strike_end = until
        return until

    def _strike(self) -> int:
        """Count a limit: how many came one soon after another's block ended, this one included.

        A limit reported while the credential is still blocked for the last one is the same limit
        (the quota and the provider both read one answer), not another strike.
        """
        now = self._clock()
        with self._lock:
            ended = self._last_strike_end
            if not (self._strikes and ended is not None and now < ended):
                recent = ended is not None and now - ended < STRIKES_FORGOTTEN_AFTER
                self._strikes = self._strikes + 1 if recent else 1
            return self._strikes

    def block_until_reset(self, resource: str, reason: str) -> datetime | None:
        """Stop requests until the window of ``resource`` resets (None when no reset is known)."""
        with self._lock:
            state = self._resources.setdefault(resource, Figures())
            if state.reset is None:
                return None
            state.remaining = 0
            if self._blocked is None or state.reset > self._blocked.until:
                self._epoch += 1
                self._blocked = Blocked(state.reset, reason, self._epoch)
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

    def take(self, *, within: float | None = None) -> float:
        """Take a slot: 0.0 when one is free now, else the seconds until the slot taken for later.

        A slot for later is the caller's: it sends then without asking again. Handing out "wait
        until the oldest request expires" instead sent every waiter back at the same moment, for
        one slot; the others lost the race, waited again and, after a few rounds, gave up
        (at 3 000 sources, 880 polls in 210 s ended rate limited while the budget had room).
        With ``within``, no slot later than that many seconds is taken: the answer is then the
        wait, and nothing is held.
        """
        with self._lock:
            now = self._now()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                self._sent.append(now)
                return 0.0
            # Slots taken for later count too: a window never holds more than ``limit`` of them.
            slot = self._sent[-self.limit] + self.window
            wait = max(slot - now, 0.001)
            if within is None or wait <= within:
                self._sent.append(slot)
            return wait

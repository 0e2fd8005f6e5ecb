"""The request policy of one credential: limits, the quota gate, what answers teach, and retries.

One :class:`RequestPolicy` is shared by every source that uses a credential (through
:class:`~deploy_fetcher.providers.SharedResources`), so its quota, its pacing and its view of the
server's clock are shared too. Its parts, in the order a request meets them:

1. :meth:`RequestPolicy.before_send` — the **gate**: waits (through the daemon's interruptible
   sleep) while the quota or the request budget says so, or ends the cycle with
   :class:`~deploy_fetcher.errors.RateLimited` when the wait is longer than ``max_rate_limit_wait``;
2. the exchange itself, bounded by :attr:`RequestPolicy.limits` (deadline, byte cap, redirect rule)
   in the transport layers (:mod:`._requests`, :mod:`._httpx`);
3. :meth:`RequestPolicy.after_response` — counts the answer, feeds the quota, reads the ``Date``
   header (the server's clock, the ceiling of every cursor mark);
4. :meth:`RequestPolicy.call` — the **retry loop** (tenacity): an attempt that raises
   :class:`~deploy_fetcher.providers.kit.Retry` is tried again after a full-jitter back-off, or
   after the ``Retry-After`` the server sent, up to ``retries`` times.

A request that runs into its deadline is not tried again: a server that trickles its answers (or
says nothing) would hold a poll worker ``retries + 1`` times as long. Once :data:`SLOW_SERVER_CUTS`
requests in a row have been cut, with no answer in between, the server is **left alone** for
:data:`SLOW_SERVER_PAUSE`: every request of the credential fails at once with a
:class:`~deploy_fetcher.errors.TransientError` naming the request that was cut, until one request
(a single probe) is let through after the pause and the server answers it in time. One cut alone
does not pause it: a credential is shared by every source that uses it (every Azure DevOps project
of an organisation, a thousand repositories on one GitHub token), and one slow answer among
healthy ones must cost that one poll, not a minute of all of them.

Which answer is worth a retry is the provider's call (:func:`classify` is the common table); the
policy only knows that it was.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, TypeVar

import structlog
import tenacity

from deploy_fetcher.errors import (
    AuthError,
    RateLimited,
    SourceError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.model import format_rfc3339
from deploy_fetcher.netlimits import deadline
from deploy_fetcher.providers.kit._errors import (
    DeadlineExceeded,
    RedirectRefused,
    ResponseTooLarge,
    Retry,
)
from deploy_fetcher.providers.kit._limits import Limits
from deploy_fetcher.providers.kit._quota import Quota, RequestBudget, server_time
from deploy_fetcher.redaction import excerpt
from deploy_fetcher.retry_after import parse_retry_after

if TYPE_CHECKING:
    from deploy_fetcher.config import DefaultsConfig, HttpSourceConfig
    from deploy_fetcher.providers._base import ProviderContext

__all__ = [
    "CLOCK_SKEW",
    "SLOW_SERVER_CUTS",
    "SLOW_SERVER_PAUSE",
    "LimitHit",
    "RequestPolicy",
    "classify",
]

_log = structlog.get_logger(__name__)

T = TypeVar("T")

#: How far past the server's clock a cursor mark may go (clocks of replicas and of the server's
#: own workers differ by seconds; anything beyond this is a bad timestamp, not skew).
CLOCK_SKEW: Final = timedelta(minutes=5)
#: How long a server that let a request run into its deadline is left alone (see the module
#: docstring): long enough that its sources' polls stop taking workers, short enough to notice a fix.
SLOW_SERVER_PAUSE: Final = timedelta(minutes=1)
#: Requests cut by the deadline in a row, with no answer in between, before the server is left alone.
SLOW_SERVER_CUTS: Final = 3
#: Short waits slept through per request before the cycle gives up (a clock that does not move
#: must not spin forever).
_MAX_WAITS: Final = 3
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})
_GONE: Final = frozenset({403, 404, 410, 451})


@dataclass(frozen=True)
class LimitHit:
    """A request cut short by a limit: ``limit`` is ``deadline``, ``size`` or ``redirect``."""

    provider: str
    credential: str
    limit: str
    url: str


def classify(status: int, headers: Mapping[str, str], *, what: str, message: str = "") -> None:
    """The common reading of an answer's status: return for a usable one, raise for the rest.

    ========================  ===========================================================
    2xx, 304                  usable (returns)
    401                       :class:`AuthError`
    403, 404, 410, 451        :class:`TargetNotFound` (missing, or not visible)
    408, 425, 429, 5xx        :class:`Retry` with the ``Retry-After`` the server sent;
                              429 as :class:`RateLimited`, the rest as :class:`TransientError`
    other 4xx, 1xx, 3xx       :class:`SourceError` (a request this client should not make)
    ========================  ===========================================================

    ``headers`` have lower-case names; ``message`` is the server's own (already shortened) words.
    Providers read their special cases first (a 403 that is a rate limit, a sign-in page) and
    fall back on this table.
    """
    said = f": {excerpt(message)}" if message else ""
    if 200 <= status < 300 or status == 304:  # noqa: PLR2004 - the 2xx range, Not Modified
        return
    if status == 401:  # noqa: PLR2004
        raise AuthError(f"{what}: the credentials were rejected (HTTP 401){said}")
    if status in _GONE:
        raise TargetNotFound(
            f"{what}: HTTP {status}, missing or not visible to the credential{said}"
        )
    if status in _RETRYABLE_4XX or status >= 500:  # noqa: PLR2004 - the 5xx range
        after = parse_retry_after(headers.get("retry-after"))
        if status == 429:  # noqa: PLR2004
            raise Retry(RateLimited(f"{what}: rate limited (HTTP 429){said}"), after=after)
        raise Retry(TransientError(f"{what}: HTTP {status}{said}"), after=after)
    raise SourceError(f"{what}: unexpected HTTP {status}{said}")


class RequestPolicy:
    """How the requests of one credential are bounded, paced, observed and retried (thread-safe)."""

    def __init__(
        self,
        *,
        provider: str,
        label: str,
        context: ProviderContext,
        limits: Limits,
        retries: int = 3,
        max_wait: float = 60.0,
        quota: Quota | None = None,
        budget: RequestBudget | None = None,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        log_name: str | None = None,
    ) -> None:
        self.provider = provider
        self.label = label
        self.context = context
        self.limits = limits
        self.retries = retries
        self.max_wait = max_wait
        self.quota = quota
        self.budget = budget
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.log_name = log_name or provider.replace("-", "_")
        self._lock = threading.Lock()
        #: Per thread: the quota's epoch when this thread's request in hand was sent.
        self._sent = threading.local()
        self._offset = timedelta(0)
        #: The request that last ran into its deadline, and until when the server is left alone.
        self._slow: tuple[str, datetime] | None = None
        #: Requests cut by the deadline since the last answer.
        self._cuts = 0
        self._probing = False

    @classmethod
    def limits_of(cls, config: HttpSourceConfig, defaults: DefaultsConfig) -> Limits:
        """The limits a source's keys set (``timeout`` falling back on ``defaults.timeout``)."""
        timeout = (config.timeout or defaults.timeout).total_seconds()
        return Limits(timeout=timeout, max_bytes=int(config.max_response_size))

    # -- the gate --------------------------------------------------------------------------------
    def before_send(self, url: str, resource: str = "core") -> None:
        """Wait until the quota and the budget let a request go, or raise RateLimited.

        The budget's slot is taken once, for now or for later (see :meth:`RequestBudget.take`);
        the quota is asked again after a wait for it, since another request may have been
        refused meanwhile.
        """
        self._wait_for_quota(url, resource)
        if self.budget is None:
            return
        wait = self.budget.take(within=self.max_wait)
        if wait <= 0:
            return
        retry_at = self.context.clock() + timedelta(seconds=wait)
        if wait > self.max_wait:
            msg = (
                f"{self.provider} request budget for credential {self.label}; "
                f"next request at {retry_at.isoformat()}"
            )
            raise RateLimited(msg, retry_at=retry_at)
        self._sleep(wait, "request budget", url)
        self._wait_for_quota(url, resource)

    def _sleep(self, wait: float, reason: str, url: str) -> None:
        _log.info(
            f"{self.log_name}.rate_limit_wait",
            seconds=round(wait, 3),
            reason=reason,
            credential=self.label,
            url=url,
        )
        if not self.context.sleep(wait):
            msg = f"stopping while waiting for the {reason} of {self.provider}"
            raise TransientError(msg)

    def _wait_for_quota(self, url: str, resource: str) -> None:
        """Wait while the quota blocks the credential, or raise RateLimited."""
        for waited in range(_MAX_WAITS + 1):
            wait, reason = self._quota_wait(resource)
            if wait <= 0:
                return
            retry_at = self.context.clock() + timedelta(seconds=wait)
            if wait > self.max_wait or waited == _MAX_WAITS:
                still = "still blocked after waiting" if wait <= self.max_wait else "next request"
                msg = (
                    f"{self.provider} {reason} for credential {self.label}; "
                    f"{still} at {retry_at.isoformat()}"
                )
                raise RateLimited(msg, retry_at=retry_at)
            self._sleep(wait, reason, url)

    def _quota_wait(self, resource: str) -> tuple[float, str]:
        """Seconds the quota makes the next request wait, and why."""
        blocked = self.quota.check(resource) if self.quota is not None else None
        if blocked is not None:
            return (blocked.until - self.context.clock()).total_seconds(), blocked.reason
        return 0.0, ""

    # -- observation -----------------------------------------------------------------------------
    def after_response(
        self, status: int, headers: Mapping[str, str], *, url: str = "", resource: str = "core"
    ) -> None:
        """Count an answer, feed the quota, and read the server's clock (lower-case ``headers``).

        A server that says it already slowed the request down (``X-RateLimit-Delay``) is logged.
        """
        self.context.metrics.ci_request(self.provider, status)
        delay = headers.get("x-ratelimit-delay")
        if delay and delay.strip() not in {"0", "0.0", "0.000"}:
            _log.info(
                f"{self.log_name}.throttled",
                delay=delay.strip(),
                resource=headers.get("x-ratelimit-resource"),
                url=url,
            )
        said = server_time(headers)
        if said is not None:
            with self._lock:
                self._offset = said - self.context.clock()
        if self.quota is not None:
            self.quota.observe(
                status,
                headers,
                resource=resource,
                charged=status != 304,  # noqa: PLR2004 - a 304 is free
                sent_under=getattr(self._sent, "epoch", None),
            )

    def after_failure(self) -> None:
        """Count an exchange that got no answer (timeout, reset, refused)."""
        self.context.metrics.ci_request(self.provider, "error")

    def limit_hit(self, limit: str, url: str) -> None:
        """A request was cut short by a limit: counted, logged, and handed to the context's hook."""
        hit = LimitHit(self.provider, self.label, limit, url)
        self.context.metrics.ci_request_limit(self.provider, limit)
        _log.warning(f"{self.log_name}.request_limit", limit=limit, url=url, credential=self.label)
        self.context.on_limit(hit)

    @contextlib.contextmanager
    def exchange(
        self, url: str, failures: tuple[type[BaseException], ...], resource: str = "core"
    ) -> Iterator[None]:
        """One exchange of a transport: gated, under the deadline, its cut-offs counted and named.

        ``failures`` are the transport's own errors: one raised once the request's whole time is
        spent (the deadline cut it, or a read timed out at the same bound) is the deadline's
        :class:`DeadlineExceeded` (after :data:`SLOW_SERVER_CUTS` of them in a row the server is left
        alone for :data:`SLOW_SERVER_PAUSE`); any other is counted as an exchange without answer.
        """
        probe = self._pass_pause(url)
        cut = False
        try:
            self.before_send(url, resource)
            # The answer is read on this thread: it tells the quota which block it was sent under.
            self._sent.epoch = self.quota.epoch if self.quota is not None else None
            with deadline(self.limits.timeout) as watch:
                try:
                    yield
                except failures:
                    self.after_failure()
                    if watch.expired or watch.remaining() <= 0:
                        cut = True
                        self._cut(url, probe=probe)
                        self.limit_hit("deadline", url)
                        raise DeadlineExceeded(url, self.limits.timeout) from None
                    raise
                except RedirectRefused:
                    self.limit_hit("redirect", url)
                    raise
                except ResponseTooLarge:
                    self.limit_hit("size", url)
                    raise
            self._answered()
        finally:
            if probe and not cut:
                with self._lock:
                    self._probing = False

    def _pass_pause(self, url: str) -> bool:
        """Refuse a request while the server is left alone; True when this one is the probe."""
        with self._lock:
            if self._slow is None:
                return False
            cut, until = self._slow
            if self._probing or self.context.clock() < until:
                msg = (
                    f"{url}: not sent: {cut} ran into its {self.limits.timeout:g}s deadline, so "
                    f"{self.provider} credential {self.label} is left alone until "
                    f"{format_rfc3339(until)}"
                )
                raise TransientError(msg)
            self._probing = True
            return True

    def _cut(self, url: str, *, probe: bool) -> None:
        """Count a request the deadline cut; leave the server alone at the limit (or a failed probe)."""
        until = self.context.clock() + SLOW_SERVER_PAUSE
        with self._lock:
            self._cuts += 1
            if not probe and self._cuts < SLOW_SERVER_CUTS:
                return
            self._slow, self._probing = (url, until), False
        _log.warning(
            f"{self.log_name}.slow_server",
            url=url,
            timeout=self.limits.timeout,
            until=format_rfc3339(until),
            credential=self.label,
        )

    def _answered(self) -> None:
        with self._lock:
            self._cuts = 0
            if self._slow is None:
                return
            self._slow, self._probing = None, False
        _log.info(f"{self.log_name}.server_answers", credential=self.label)

    def future_item(self, *, url: str, item: object, at: datetime) -> None:
        """Log an item dated beyond :meth:`mark_ceiling` (once: when it is first stored)."""
        _log.warning(
            f"{self.log_name}.future_item",
            url=url,
            item=item,
            at=format_rfc3339(at),
            server_clock=format_rfc3339(self.server_now()),
        )

    def server_now(self) -> datetime:
        """The server's clock as its last ``Date`` header told (the local clock before any)."""
        with self._lock:
            offset = self._offset
        return self.context.clock() + offset

    def mark_ceiling(self) -> datetime:
        """The latest time a cursor mark may take: the server's clock plus :data:`CLOCK_SKEW`."""
        return self.server_now() + CLOCK_SKEW

    # -- the retry loop --------------------------------------------------------------------------
    def call(self, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it returns, retrying what it marks as worth another try.

        ``what`` names the request in logs (``GET https://host/path``). Raises the failure of the
        last attempt: the ``failure`` of its :class:`Retry`, or the error it raised.
        """
        retrying = tenacity.Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(Retry),
            sleep=self._sleeper(what),
            before_sleep=self._logger(what),
            reraise=True,
        )
        tried = 0

        def counted() -> T:
            nonlocal tried
            tried += 1
            return attempt()

        try:
            return retrying(counted)
        except Retry as exc:
            raise self._final(exc, tried) from None

    def _after(self, state: tenacity.RetryCallState) -> float | None:
        exc = state.outcome.exception() if state.outcome is not None else None
        return exc.after if isinstance(exc, Retry) else None

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        after = self._after(state)
        return state.attempt_number > self.retries or (after is not None and after > self.max_wait)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if (
            isinstance(exc, Retry)
            and isinstance(exc.failure, RateLimited)
            and self.quota is not None
        ):
            return 0.0  # the quota holds the block: the gate waits it out, for every source
        after = self._after(state)
        if after is not None:
            return after
        jitter = tenacity.wait_random_exponential(multiplier=self.backoff, max=self.backoff_max)
        return float(jitter(state))

    def _sleeper(self, what: str) -> Callable[[float], None]:
        def sleep(seconds: float) -> None:
            if seconds > 0 and not self.context.sleep(seconds):
                msg = f"{what}: stopping while waiting to retry"
                raise TransientError(msg)

        return sleep

    def _logger(self, what: str) -> Callable[[tenacity.RetryCallState], None]:
        def log(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            seconds = state.next_action.sleep if state.next_action is not None else 0.0
            _log.info(
                f"{self.log_name}.retry",
                request=what,
                attempt=state.attempt_number,
                seconds=round(seconds, 3),
                reason=str(exc),
            )

        return log

    def _final(self, exc: Retry, tried: int) -> SourceError:
        """The error to raise when no attempt is left (or the asked wait is too long)."""
        failure = exc.failure
        if exc.after is None or exc.after <= self.max_wait:
            said = f"{failure} (failed after {tried} attempts)" if tried > 1 else str(failure)
            if isinstance(failure, RateLimited):
                retry_at = failure.retry_at
                if retry_at is None and self.quota is not None:
                    blocked = self.quota.check()
                    retry_at = blocked.until if blocked else None
                return RateLimited(said, retry_at=retry_at)
            if tried > 1 and type(failure) in {TransientError, SourceError}:
                return type(failure)(said)
            return failure
        retry_at = self.context.clock() + timedelta(seconds=exc.after)
        if isinstance(failure, RateLimited):
            return RateLimited(str(failure), retry_at=retry_at)
        return TransientError(
            f"{failure}; the server asked to retry in {exc.after:.0f}s, beyond max_rate_limit_wait"
        )

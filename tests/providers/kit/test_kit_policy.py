"""The request policy: the status table, the retry loop (tenacity) and the quota gate."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from structlog.testing import capture_logs
from tests.providers.kit.conftest import START, FakeTime, TestContext, make_policy

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.errors import (
    AuthError,
    RateLimited,
    SourceError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.kit import (
    CLOCK_SKEW,
    DeadlineExceeded,
    Quota,
    RequestBudget,
    Retry,
    classify,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (204, None),
        (304, None),
        (401, AuthError),
        (403, TargetNotFound),
        (404, TargetNotFound),
        (410, TargetNotFound),
        (400, SourceError),
        (422, SourceError),
        (302, SourceError),
    ],
)
def test_the_status_table(status: int, expected: type[Exception] | None) -> None:
    """2xx and 304 are usable; 401, gone and other 4xx map to the taxonomy at once."""
    if expected is None:
        classify(status, {}, what="GET /x")
        return
    with pytest.raises(expected) as caught:
        classify(status, {}, what="GET /x")
    assert not isinstance(caught.value, Retry)


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (408, TransientError),
        (425, TransientError),
        (429, RateLimited),
        (500, TransientError),
        (503, TransientError),
    ],
)
def test_retryable_statuses_carry_the_servers_retry_after(
    status: int, failure: type[Exception]
) -> None:
    """408, 425, 429 and 5xx ask for another attempt, with the Retry-After the server sent."""
    with pytest.raises(Retry) as caught:
        classify(status, {"retry-after": "7"}, what="GET /x")
    assert (failure, 7.0) == (type(caught.value.failure), caught.value.after)


def test_a_failing_request_is_retried_with_full_jitter_then_fails(
    context: TestContext, fake_time: FakeTime
) -> None:
    """Each retry waits a random back-off under the cap; after ``retries`` the failure is raised."""
    policy = make_policy(context, retries=3, backoff=0.5, backoff_max=8.0)
    calls = []

    def attempt() -> str:
        calls.append(1)
        raise Retry(TransientError("HTTP 503 from /x"))

    with capture_logs() as logs, pytest.raises(TransientError, match="HTTP 503"):
        policy.call("GET /x", attempt)
    assert 4 == len(calls)
    assert 3 == len(fake_time.sleeps)
    assert all(0 <= s <= cap for s, cap in zip(fake_time.sleeps, (0.5, 1.0, 2.0), strict=True))
    assert [1, 2, 3] == [e["attempt"] for e in logs if e["event"] == "test.retry"]


def test_a_retry_after_is_waited_exactly(context: TestContext, fake_time: FakeTime) -> None:
    """A Retry-After within max_rate_limit_wait is slept through, then the next attempt succeeds."""
    policy = make_policy(context, retries=2, max_wait=60)
    answers = iter([Retry(TransientError("HTTP 503"), after=12.0), "ok"])

    def attempt() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert "ok" == policy.call("GET /x", attempt)
    assert [12.0] == fake_time.sleeps


def test_a_retry_after_beyond_the_longest_wait_ends_at_once(
    context: TestContext, fake_time: FakeTime
) -> None:
    """A 429 asking for longer than max_rate_limit_wait is RateLimited until then, no sleep."""
    policy = make_policy(context, retries=5, max_wait=60)

    def attempt() -> str:
        raise Retry(RateLimited("HTTP 429"), after=600.0)

    with pytest.raises(RateLimited) as caught:
        policy.call("GET /x", attempt)
    assert (START + timedelta(seconds=600), []) == (caught.value.retry_at, fake_time.sleeps)


def test_a_5xx_asking_for_a_long_wait_says_so(context: TestContext) -> None:
    """A 503 whose Retry-After exceeds max_rate_limit_wait fails the cycle as transient."""
    policy = make_policy(context, max_wait=60)

    def attempt() -> str:
        raise Retry(TransientError("HTTP 503 from /x"), after=900.0)

    with pytest.raises(TransientError, match="retry in 900s, beyond max_rate_limit_wait"):
        policy.call("GET /x", attempt)


def test_a_deadline_hit_is_not_retried(context: TestContext) -> None:
    """A request cut at its deadline already took the whole ``timeout``: it is not tried again."""
    policy = make_policy(context, retries=3)
    calls = []

    def attempt() -> str:
        calls.append(1)
        raise DeadlineExceeded("http://ci/x", 1.0)

    with pytest.raises(DeadlineExceeded):
        policy.call("GET /x", attempt)
    assert 1 == len(calls)


def test_a_permanent_error_is_not_retried(context: TestContext) -> None:
    """An error that is not a Retry leaves the loop at once."""
    policy = make_policy(context, retries=5)
    calls = []

    def attempt() -> str:
        calls.append(1)
        raise AuthError("401")

    with pytest.raises(AuthError):
        policy.call("GET /x", attempt)
    assert 1 == len(calls)


def test_stopping_the_daemon_interrupts_the_back_off(context: TestContext) -> None:
    """A sleep refused because the daemon stops ends the request as transient."""
    context.stop.set()
    policy = make_policy(context, retries=3)

    def attempt() -> str:
        raise Retry(TransientError("HTTP 502"))

    with pytest.raises(TransientError, match="stopping"):
        policy.call("GET /x", attempt)


def _quota(context: TestContext, **kwargs) -> Quota:
    return Quota(
        provider="test", label="cred", metrics=context.metrics, clock=context.clock, **kwargs
    )


def test_the_gate_waits_out_a_short_block_and_refuses_a_long_one(
    context: TestContext, fake_time: FakeTime
) -> None:
    """A credential blocked 20 s waits before its next request; blocked 2 h, it is RateLimited."""
    quota = _quota(context)
    policy = make_policy(context, quota=quota, max_wait=60)
    quota.block(20, "secondary rate limit")
    policy.before_send("https://ci/x")
    assert 1 == len(fake_time.sleeps)
    assert [20.0] == fake_time.sleeps
    quota.block(7200, "secondary rate limit")
    with pytest.raises(RateLimited) as caught:
        policy.before_send("https://ci/x")
    assert fake_time.now + timedelta(seconds=7200) == caught.value.retry_at


def test_the_request_budget_paces_requests(context: TestContext, fake_time: FakeTime) -> None:
    """Beyond the budget the gate waits for a slot (on the budget's clock)."""
    ticks = [0.0]
    budget = RequestBudget(2, window=60, now=lambda: ticks[0])
    policy = make_policy(context, budget=budget, max_wait=120)
    policy.before_send("x")
    policy.before_send("x")
    fake_time.sleeps.clear()

    def sleep(seconds: float) -> bool:
        fake_time.sleeps.append(seconds)
        ticks[0] += seconds
        return True

    context.time.sleep = sleep  # type: ignore[method-assign]
    policy.before_send("x")
    assert 1 == len(fake_time.sleeps)
    assert 60 <= fake_time.sleeps[0] < 61


def test_the_server_clock_comes_from_the_date_header(context: TestContext) -> None:
    """A server two hours ahead moves the mark ceiling with it; before any answer it is local."""
    policy = make_policy(context)
    assert START + CLOCK_SKEW == policy.mark_ceiling()
    policy.after_response(200, {"date": "Mon, 02 Mar 2026 14:00:00 GMT"})
    assert START + timedelta(hours=2) + CLOCK_SKEW == policy.mark_ceiling()
    assert 1.0 == context.metrics.ci_requests.labels("test", "200")._value.get()


def test_requests_waiting_for_the_budget_together_each_get_through() -> None:
    """Eight requests of one credential at a full budget (two a 0.3 s window): each waits its turn.

    None gives up: every waiter holds a slot of its own, where all used to come back for the one
    that freed first and, beaten three times, end the poll rate limited. No window carries more
    than the budget's two.
    """
    context = ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())
    budget = RequestBudget(2, window=0.3)
    policy = make_policy(context, budget=budget, max_wait=10)
    sent: list[float] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def send() -> None:
        try:
            policy.before_send("https://ci/x")
        except RateLimited as exc:
            failures.append(exc)
            return
        with lock:
            sent.append(time.monotonic())

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    sent.sort()
    crowded = [sent[i + 2] - sent[i] for i in range(len(sent) - 2) if sent[i + 2] - sent[i] < 0.25]
    assert ([], 8, []) == (failures, len(sent), crowded)

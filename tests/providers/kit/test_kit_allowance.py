"""What a credential may spend a minute, and how repeated secondary limits back off."""

from __future__ import annotations

from datetime import timedelta

from tests.providers.kit.conftest import START, TestContext

from deploy_fetcher.providers.kit import Allowance, Quota

EPOCH = int(START.timestamp())
DATE = "Mon, 02 Mar 2026 12:00:00 GMT"
SECONDARY = {"x-ratelimit-remaining": "4000"}


def _quota(context: TestContext) -> Quota:
    return Quota(provider="github", label="cred", metrics=context.metrics, clock=context.clock)


def test_repeated_secondary_limits_block_for_longer_each_time(context: TestContext) -> None:
    """Secondary limits without retry-after: 60 s, then 120 s, 240 s … while they keep coming."""
    quota = _quota(context)
    blocks = []
    for _ in range(4):
        until = quota.hold(SECONDARY, reason="secondary rate limit")
        blocks.append((until - context.clock()).total_seconds())
        context.time.now = until + timedelta(seconds=5)  # the next one soon after the block
    assert [60.0, 120.0, 240.0, 480.0] == blocks


def test_the_back_off_starts_over_after_a_quiet_while(context: TestContext) -> None:
    """A secondary limit ten minutes after the last block ended is a first one again."""
    quota = _quota(context)
    until = quota.hold(SECONDARY, reason="secondary rate limit")
    context.time.now = until + timedelta(minutes=11)
    again = quota.hold(SECONDARY, reason="secondary rate limit")
    assert 60.0 == (again - context.clock()).total_seconds()


def test_one_answer_read_twice_is_one_strike(context: TestContext) -> None:
    """The quota and the provider both report one 429: the block is not doubled for it."""
    quota = _quota(context)
    first = quota.hold(SECONDARY, reason="secondary rate limit")
    second = quota.hold(SECONDARY, reason="secondary rate limit")
    assert first == second == START + timedelta(seconds=60)


def test_a_first_retry_after_is_honoured_as_sent(context: TestContext) -> None:
    """A retry-after of 7 s blocks 7 s the first time (GitHub asks for exactly that)."""
    quota = _quota(context)
    until = quota.hold({**SECONDARY, "retry-after": "7"}, reason="secondary rate limit")
    assert START + timedelta(seconds=7) == until


def test_a_retry_after_that_keeps_coming_is_doubled(context: TestContext) -> None:
    """Retry-after 7 s three times in a row: 7 s, 14 s, 28 s (the server's wait, backed off)."""
    quota = _quota(context)
    blocks = []
    for _ in range(3):
        until = quota.hold({**SECONDARY, "retry-after": "7"}, reason="secondary rate limit")
        blocks.append((until - context.clock()).total_seconds())
        context.time.now = until + timedelta(seconds=1)
    assert [7.0, 14.0, 28.0] == blocks


def test_a_declared_limit_and_answers_counted_free_or_not(context: TestContext) -> None:
    """A declared 900 a minute is the allowance; a 304 counts like any answer toward it."""
    quota = _quota(context)
    quota.declare("core", 900, "GitHub's secondary limit")
    quota.observe(200, {})
    quota.observe(304, {}, charged=False)
    assert ([Allowance(900, "GitHub's secondary limit", "core")], {"core": 2}) == (
        quota.allowance(),
        quota.spent(),
    )


def test_a_per_minute_window_from_headers_is_an_allowance(context: TestContext) -> None:
    """GitLab's RateLimit-* over a one-minute window give its requests a minute."""
    quota = _quota(context)
    quota.observe(
        200,
        {
            "ratelimit-limit": "2000",
            "ratelimit-remaining": "1990",
            "ratelimit-reset": str(EPOCH + 60),
            "date": DATE,
        },
    )
    [allowance] = quota.allowance()
    assert (2000.0, "core") == (allowance.per_minute, allowance.resource)


def _azure(context: TestContext) -> Quota:
    return Quota(
        provider="azure-devops",
        label="cred",
        metrics=context.metrics,
        clock=context.clock,
        counts_requests=False,
    )


def _steady(context: TestContext, quota: Quota, seconds: int, every: float, delay: str) -> None:
    """An answer every ``every`` seconds for ``seconds``, each saying it was delayed ``delay``."""
    for _ in range(round(seconds / every)):
        quota.observe(200, {"x-ratelimit-delay": delay})
        context.time.now += timedelta(seconds=every)


def test_delays_hold_the_credential_to_half_its_last_minute_until_they_stop(
    context: TestContext,
) -> None:
    """120 a minute, delayed: ~60; still delayed at 30 a minute: 15; ×1.5 per quiet 5 min; free."""
    quota = _azure(context)
    _steady(context, quota, 60, 0.5, "0")
    _steady(context, quota, 60, 0.5, "0.250")  # lowered once, at the first delayed answer
    first = quota.allowance()
    _steady(context, quota, 90, 2.0, "1.5")  # slower, still delayed: lowered again a minute later
    second = quota.allowance()
    context.time.now += timedelta(minutes=5)
    third = quota.allowance()
    context.time.now += timedelta(minutes=5 * 4)  # 22.5 × 1.5⁴ = 114: not yet back at 119
    fourth = quota.allowance()
    context.time.now += timedelta(minutes=5)
    assert ([59.5, 15.0, 22.5, 113.9], "throttled", []) == (
        [round(a.per_minute, 1) for a in (*first, *second, *third, *fourth)],
        first[0].kind,
        quota.allowance(),
    )


def test_azure_devops_headers_count_tstus_not_requests(context: TestContext) -> None:
    """X-RateLimit-Limit 200 (TSTUs) over a short window states no request limit."""
    quota = _azure(context)
    quota.observe(
        200,
        {
            "x-ratelimit-limit": "200",
            "x-ratelimit-remaining": "10",
            "x-ratelimit-reset": str(EPOCH + 40),
            "date": DATE,
        },
    )
    assert [] == quota.allowance()

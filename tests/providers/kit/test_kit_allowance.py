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

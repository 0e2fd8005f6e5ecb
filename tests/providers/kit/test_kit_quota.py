"""The quota of one credential, read from the three providers' rate-limit headers."""

from __future__ import annotations

from datetime import timedelta

from tests.providers.kit.conftest import START, FakeTime, TestContext

from deploy_fetcher.providers.kit import Quota, RequestBudget

EPOCH = int(START.timestamp())
DATE = "Mon, 02 Mar 2026 12:00:00 GMT"


def _quota(context: TestContext, **kwargs) -> Quota:
    return Quota(
        provider="test", label="cred", metrics=context.metrics, clock=context.clock, **kwargs
    )


def test_unknown_figures_never_block(context: TestContext) -> None:
    """A server that sends no rate-limit headers is not throttled by the fetcher."""
    quota = _quota(context)
    quota.observe(200, {})
    assert None is quota.check()


def test_an_exhausted_quota_blocks_until_the_reset(context: TestContext) -> None:
    """Remaining 0 (GitHub's x-ratelimit-*) blocks the credential until its reset."""
    quota = _quota(context)
    quota.observe(
        200,
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(EPOCH + 900),
        },
    )
    blocked = quota.check()
    assert blocked is not None
    assert (START + timedelta(seconds=900), "core quota exhausted") == (
        blocked.until,
        blocked.reason,
    )


def test_the_reset_is_read_against_the_servers_own_clock(context: TestContext) -> None:
    """A server whose Date is an hour ahead of ours: its reset in 10 minutes is 10 minutes here too."""
    quota = _quota(context, reserve=10)
    quota.observe(
        200,
        {
            "ratelimit-limit": "600",
            "ratelimit-remaining": "10",
            "ratelimit-reset": str(EPOCH + 3600 + 600),
            "date": "Mon, 02 Mar 2026 13:00:00 GMT",
        },
    )
    blocked = quota.check()
    assert blocked is not None
    assert START + timedelta(seconds=600) == blocked.until


def test_a_share_of_the_quota_is_a_budget(context: TestContext) -> None:
    """With share 0.5 of a 10-request window, the sixth charged request waits for the reset."""
    quota = _quota(context, share=0.5)
    headers = {
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": "9",
        "x-ratelimit-reset": str(EPOCH + 60),
    }
    for _ in range(4):
        quota.observe(200, headers)
        assert None is quota.check()
    quota.observe(304, headers, charged=False)
    assert None is quota.check()
    quota.observe(200, headers)
    blocked = quota.check()
    assert blocked is not None
    assert "core budget spent (5 of 50% of 10)" == blocked.reason


def test_a_new_window_resets_what_was_spent(context: TestContext, fake_time: FakeTime) -> None:
    """Once the reset time passes, the budget is whole again."""
    quota = _quota(context, share=0.1)
    quota.observe(
        200,
        {
            "x-ratelimit-limit": "10",
            "x-ratelimit-remaining": "9",
            "x-ratelimit-reset": str(EPOCH + 60),
        },
    )
    assert quota.check() is not None
    fake_time.now += timedelta(seconds=61)
    assert None is quota.check()


def test_a_429_blocks_for_its_retry_after_until_a_good_answer(context: TestContext) -> None:
    """GitLab's 429 with Retry-After 30 blocks; the next successful answer lifts the block."""
    quota = _quota(context)
    quota.observe(429, {"retry-after": "30"})
    blocked = quota.check()
    assert blocked is not None
    assert START + timedelta(seconds=30) == blocked.until
    quota.observe(200, {})
    assert None is quota.check()


def test_below_the_low_water_mark_requests_are_paced(
    context: TestContext, fake_time: FakeTime
) -> None:
    """Azure DevOps: 10 of 200 left with 100 s to the reset spreads requests 10 s apart."""
    quota = _quota(context, low_water=0.1, max_pause=60)
    quota.observe(
        200,
        {
            "x-ratelimit-limit": "200",
            "x-ratelimit-remaining": "10",
            "x-ratelimit-reset": str(EPOCH + 100),
            "date": DATE,
        },
    )
    blocked = quota.check()
    assert blocked is not None
    assert START + timedelta(seconds=10) == blocked.until
    fake_time.now += timedelta(seconds=10)
    assert None is quota.check()


def test_the_figures_reach_the_gauges(context: TestContext) -> None:
    """Remaining and limit are exported per credential (non-core resources by name)."""
    quota = _quota(context)
    quota.observe(
        200,
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-resource": "graphql",
        },
    )
    assert 4999 == context.metrics.rate_limit_remaining.labels("test", "cred/graphql")._value.get()


def test_the_budget_allows_its_limit_then_says_how_long_to_wait() -> None:
    """Within a window the budget hands out ``limit`` slots, then the wait until the oldest expires."""
    ticks = [1000.0]
    budget = RequestBudget(2, window=60, now=lambda: ticks[0])
    first, second = budget.take(), budget.take()
    ticks[0] += 15
    assert (0.0, 0.0, 45.0) == (first, second, budget.take())


def test_waiters_get_slots_of_their_own_one_after_another() -> None:
    """A full budget hands each waiter the next free slot, taken: no two wait for the same one.

    Told only "the oldest expires in 45 s", three waiters would all come back then for one slot.
    """
    ticks = [1000.0]
    budget = RequestBudget(2, window=60, now=lambda: ticks[0])
    budget.take()
    ticks[0] += 10
    budget.take()
    ticks[0] += 5
    waits = [budget.take() for _ in range(3)]
    ticks[0] += 45  # the first waiter's slot: it sends without asking again
    ticks[0] += 10  # the second's; the third's slot is the first waiter's, a window on
    assert ([45.0, 55.0, 105.0], 0.0 < budget.take()) == (waits, True)


def test_no_slot_is_held_beyond_the_wait_a_caller_accepts() -> None:
    """``within``: a slot later than that is not taken, so one who gives up holds nothing."""
    ticks = [1000.0]
    budget = RequestBudget(1, window=60, now=lambda: ticks[0])
    budget.take()
    refused = budget.take(within=30)
    accepted = budget.take(within=90)
    assert (60.0, 60.0) == (refused, accepted)


def test_the_budget_frees_slots_as_the_window_slides() -> None:
    """A slot is free again once its request is older than the window."""
    ticks = [1000.0]
    budget = RequestBudget(1, window=60, now=lambda: ticks[0])
    budget.take()
    ticks[0] += 60
    assert 0.0 == budget.take()


def test_a_reserve_stops_before_the_quota_is_spent(context: TestContext) -> None:
    """GitLab's min_remaining: at or below the reserve the credential waits for the reset."""
    headers = {
        "ratelimit-remaining": "5",
        "ratelimit-limit": "600",
        "ratelimit-reset": str(EPOCH + 10),
        "date": DATE,
    }
    four, five = _quota(context, reserve=4), _quota(context, reserve=5)
    four.observe(200, headers)
    five.observe(200, headers)
    blocked = five.check()
    assert (None, START + timedelta(seconds=10)) == (
        four.check(),
        blocked.until if blocked else None,
    )


def test_a_block_covers_every_resource_and_is_reported_for_readiness(
    context: TestContext, fake_time: FakeTime
) -> None:
    """GitHub's secondary limit: without figures nothing is enforced, a block stops everything."""
    quota = _quota(context, share=0.5)
    for _ in range(1000):
        quota.observe(200, {})
    assert None is quota.check()
    until = quota.block(30, "secondary rate limit")
    blocked = quota.check("graphql")
    assert until == (blocked.until if blocked else None)
    assert "GitHub credential gh: secondary rate limit until 2026-03-02T12:00:30Z" == quota.problem(
        "GitHub credential gh"
    )
    fake_time.now = until
    assert (None, None) == (quota.check(), quota.problem("GitHub credential gh"))


def test_a_late_answer_to_a_request_sent_before_a_block_does_not_lift_it(
    context: TestContext,
) -> None:
    """Requests run side by side: a 200 sent before a 429 arrives after it and must not lift its block.

    The next answer to a request sent once the block began does lift it, as before.
    """
    quota = _quota(context)
    before = quota.epoch
    quota.block(60, "rate limited (retry-after)")
    quota.observe(200, {}, sent_under=before)
    still = quota.check()
    quota.observe(200, {}, sent_under=quota.epoch)
    assert ("rate limited (retry-after)", None) == (still.reason if still else None, quota.check())


def test_a_spent_window_refused_again_and_again_waits_for_its_reset_only(
    context: TestContext, fake_time: FakeTime
) -> None:
    """A 429 with nothing remaining is the window's end, not a strike: no doubling of the wait.

    GitLab answers requests in flight when the last slot went with 429, ``RateLimit-Remaining: 0``
    and ``Retry-After`` up to the window's end; three such windows in a row each wait 30 s.
    """
    quota = _quota(context)
    waits = []
    for _ in range(3):
        until = quota.hold({"ratelimit-remaining": "0", "retry-after": "30"})
        waits.append((until - fake_time.now).total_seconds())
        fake_time.now = until + timedelta(seconds=1)
    assert [30.0, 30.0, 30.0] == waits

"""Request budget and rate-limit state, on a fake monotonic clock."""

from __future__ import annotations

from email.utils import formatdate

from deploy_fetcher.providers.gitlab.ratelimit import QuotaState, RequestBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_allows_its_limit_then_says_how_long_to_wait():
    """Within a window the budget hands out `limit` slots, then the wait until the oldest expires."""
    clock = Clock()
    budget = RequestBudget(2, window=60, now=clock)
    first, second = budget.take(), budget.take()
    clock.now += 15
    assert (0.0, 0.0, 45.0) == (first, second, budget.take())


def test_budget_frees_slots_as_the_window_slides():
    """A slot is free again once its request is older than the window."""
    clock = Clock()
    budget = RequestBudget(1, window=60, now=clock)
    budget.take()
    clock.now += 60
    assert 0.0 == budget.take()


def test_quota_waits_for_reset_when_remaining_is_spent_measured_on_the_server_clock():
    """Remaining at the floor: wait RateLimit-Reset minus the response's Date, not the local clock."""
    clock = Clock()
    quota = QuotaState(now=clock)
    server_now = 1_900_000_000
    quota.observe(
        200,
        {
            "RateLimit-Limit": "2000",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(server_now + 42),
            "Date": formatdate(server_now, usegmt=True),
        },
    )
    assert (42.0, 0.0, 2000) == (
        quota.wait_needed(0),
        QuotaState(now=clock).wait_needed(0),
        quota.limit,
    )


def test_quota_honours_retry_after_of_a_429_until_a_success():
    """A 429 blocks for Retry-After seconds; a later success lifts the block."""
    clock = Clock()
    quota = QuotaState(now=clock)
    quota.observe(429, {"Retry-After": "7"})
    blocked = quota.wait_needed(0)
    quota.observe(200, {})
    assert (7.0, 0.0) == (blocked, quota.wait_needed(0))


def test_missing_rate_limit_headers_mean_no_limit_known():
    """Instances without RateLimit headers never make the adapter wait."""
    quota = QuotaState(now=Clock())
    quota.observe(200, {"Content-Type": "application/json"})
    assert (0.0, None) == (quota.wait_needed(10), quota.remaining)


def test_reserve_stops_before_the_quota_is_spent():
    """min_remaining leaves room: at or below it the adapter waits for the reset."""
    clock = Clock()
    quota = QuotaState(now=clock)
    server_now = 1_900_000_000
    quota.observe(
        200,
        {
            "RateLimit-Remaining": "5",
            "RateLimit-Reset": str(server_now + 10),
            "Date": formatdate(server_now, usegmt=True),
        },
    )
    assert (0.0, 10.0) == (quota.wait_needed(4), quota.wait_needed(5))

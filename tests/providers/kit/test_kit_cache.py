"""Caches bounded by memory and shared by a credential's sources."""

from __future__ import annotations

from deploy_fetcher.providers.kit import BoundedCache, ByteBudget, json_size


def test_entries_beyond_the_budget_go_oldest_first_across_caches() -> None:
    """Two caches on one 100-byte budget: a new entry evicts the least recently used, anywhere."""
    budget = ByteBudget(100)
    first: BoundedCache[str, str] = BoundedCache(budget)
    second: BoundedCache[str, str] = BoundedCache(budget)
    first.put("a", "x" * 38)  # 40 bytes as JSON
    second.put("b", "y" * 38)
    first.get("a")  # a is now the most recently used
    second.put("c", "z" * 38)
    assert (True, None, True, 80) == (
        "a" in first,
        second.get("b"),
        "c" in second,
        budget.used,
    )


def test_a_replaced_entry_is_counted_once() -> None:
    """Storing a key again replaces its size instead of adding to it."""
    budget = ByteBudget(1000)
    cache: BoundedCache[str, list[int]] = BoundedCache(budget)
    cache.put("k", [1, 2, 3])
    cache.put("k", [1])
    assert (json_size([1]), 1) == (budget.used, len(cache))


def test_one_entry_larger_than_the_budget_is_still_kept_alone() -> None:
    """The newest entry is never evicted by itself: a cache always holds what it just read."""
    budget = ByteBudget(10)
    cache: BoundedCache[str, str] = BoundedCache(budget)
    cache.put("small", "s")
    cache.put("big", "b" * 100)
    assert (None, "b" * 100) == (cache.get("small"), cache.get("big"))

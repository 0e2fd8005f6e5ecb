"""Caches bounded by memory, shared by the sources of one credential.

A count is no bound on memory: 2 000 workflow runs are 2 MB or 20 MB depending on the runs, and a
bound per source multiplies by the number of sources. A :class:`ByteBudget` belongs to a credential
(created once through :class:`~deploy_fetcher.providers.SharedResources`); every
:class:`BoundedCache` charged to it counts each entry's size (its JSON length, a stable stand-in for
what it holds), and when the total passes the budget the least recently used entries go, whichever
cache holds them. So ten thousand sources on one token cost one budget, not ten thousand.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["BoundedCache", "ByteBudget", "json_size"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def json_size(value: Any) -> int:
    """The size of ``value`` as compact JSON (``repr`` for what JSON cannot carry)."""
    try:
        return len(json.dumps(value, separators=(",", ":"), default=repr))
    except (TypeError, ValueError):
        return len(repr(value))


class ByteBudget:
    """At most ``limit`` bytes over every cache charged to it; least recently used entries go first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.lock = threading.RLock()
        self._entries: OrderedDict[tuple[int, Hashable], tuple[BoundedCache[Any, Any], int]] = (
            OrderedDict()
        )

    def charge(self, cache: BoundedCache[Any, Any], key: Hashable, size: int) -> None:
        """Record an entry (the lock held), evicting the oldest entries beyond the limit."""
        slot = (id(cache), key)
        old = self._entries.pop(slot, None)
        if old is not None:
            self.used -= old[1]
        self._entries[slot] = (cache, size)
        self.used += size
        while self.used > self.limit and len(self._entries) > 1:
            (_, old_key), (owner, old_size) = self._entries.popitem(last=False)
            self.used -= old_size
            owner.drop_locked(old_key)

    def touch(self, cache: BoundedCache[Any, Any], key: Hashable) -> None:
        """An entry was read: it is the most recently used (the lock held)."""
        slot = (id(cache), key)
        if slot in self._entries:
            self._entries.move_to_end(slot)


class BoundedCache(Generic[K, V]):
    """A map whose entries count against a shared :class:`ByteBudget` (thread-safe)."""

    def __init__(self, budget: ByteBudget, *, size_of: Callable[[V], int] = json_size) -> None:
        self.budget = budget
        self._size_of = size_of
        self._items: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        """The value under ``key`` (now the most recently used), None when absent or evicted."""
        with self.budget.lock:
            value = self._items.get(key)
            if value is not None:
                self.budget.touch(self, key)
            return value

    def __contains__(self, key: object) -> bool:
        with self.budget.lock:
            return key in self._items

    def __len__(self) -> int:
        with self.budget.lock:
            return len(self._items)

    def put(self, key: K, value: V) -> None:
        """Store ``value``; older entries of any cache on the budget may go to make room."""
        size = self._size_of(value)
        with self.budget.lock:
            self._items[key] = value
            self.budget.charge(self, key, size)

    def drop_locked(self, key: Hashable) -> None:
        """Forget an entry the budget evicted (its lock held)."""
        if key in self._items:
            del self._items[key]  # the budget only holds keys of this cache

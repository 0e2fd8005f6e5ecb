"""The watermark cursor every provider keeps, as plain JSON, testable without any HTTP.

The shape that works for every CI API (see the architecture's "Cursors"):

* a **mark** on the provider's "last changed" (or "created") timestamp: each poll re-reads an
  ``overlap`` behind it (replicas lag, clocks differ), and the store's dedup ledger makes that free;
* an **open set**: items last seen in a non-terminal state, re-checked every cycle until they end,
  bounded in count (``open_max``) and age (``open_max_age``), each with the provider's own small
  payload (an ETag, a snapshot);
* a **done set**: items inside the overlap window already seen to their end (or in their current
  version), so re-reading the window neither re-emits nor re-fetches them, bounded the same way;
* a **ceiling**: the mark never moves past the server's clock plus :data:`CLOCK_SKEW`, so one item
  dated in 2099 cannot make every later item look old. Such an item is still delivered once (the
  done set remembers it) and logged once; the mark stays where the clock says.

A cursor is sealed with a version, the provider's mode and a digest of the source's selection
(:class:`~deploy_fetcher.providers.kit.Sealed`): one written for another mode, selection or
version is refused with :class:`CursorMismatch`, and the target starts again at
``now − lookback`` (re-read events are deduplicated).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from deploy_fetcher.model import format_rfc3339, parse_timestamp
from deploy_fetcher.providers.kit._record import CursorMismatch, Record

__all__ = ["DoneSet", "OpenItem", "OpenSet", "Watermark", "millis", "scope_digest", "timestamp"]


def scope_digest(selection: Any) -> str:
    """A short, stable digest of the settings that decide what a target yields."""
    text = json.dumps(selection, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def millis(value: datetime) -> datetime:
    """Millisecond precision: what a cursor stores, so comparisons survive a round trip."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def timestamp(value: Any) -> datetime:
    """A stored timestamp; CursorMismatch when it is not one."""
    if not isinstance(value, str):
        msg = f"not a timestamp: {value!r}"
        raise CursorMismatch(msg)
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        msg = f"not a timestamp: {value!r} ({exc})"
        raise CursorMismatch(msg) from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        msg = f"{what} is not an object"
        raise CursorMismatch(msg)
    return dict(value)


@dataclass
class OpenItem:
    """An item not seen to its end: since when it is tracked, and the provider's payload."""

    since: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class OpenSet:
    """Items last seen in a non-terminal state, each with its first-seen time and a payload."""

    items: dict[str, OpenItem] = field(default_factory=dict)

    def add(self, key: str, since: datetime, data: Mapping[str, Any] | None = None) -> None:
        """Track ``key`` (keeping the time it was first tracked); ``data`` replaces its payload."""
        item = self.items.get(key)
        if item is None:
            self.items[key] = OpenItem(millis(since), dict(data or {}))
        elif data is not None:
            item.data = dict(data)

    def get(self, key: str) -> OpenItem | None:
        """The tracked item, or None."""
        return self.items.get(key)

    def discard(self, key: str) -> None:
        """Stop tracking ``key`` (it ended, or is gone)."""
        self.items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self.items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.items))

    def oldest_first(self) -> list[str]:
        """The keys, oldest first."""
        return sorted(self.items, key=lambda k: (self.items[k].since, k))

    def prune(self, now: datetime, *, max_size: int, max_age: timedelta) -> list[str]:
        """Drop items tracked longer than ``max_age``, then the oldest beyond ``max_size``."""
        dropped = [k for k, item in self.items.items() if now - item.since > max_age]
        for key in dropped:
            del self.items[key]
        overflow = len(self.items) - max_size
        if overflow > 0:
            for key in self.oldest_first()[:overflow]:
                del self.items[key]
                dropped.append(key)
        return dropped

    def to_json(self) -> dict[str, Any]:
        """``{key: since}``, or ``{key: [since, payload]}`` for an item with a payload."""
        out: dict[str, Any] = {}
        for key, item in sorted(self.items.items()):
            since = format_rfc3339(item.since)
            out[key] = [since, item.data] if item.data else since
        return out

    @classmethod
    def from_json(cls, data: Any) -> OpenSet:
        """Inverse of :meth:`to_json`."""
        items: dict[str, OpenItem] = {}
        for key, value in _object(data, "open set").items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict):  # noqa: PLR2004 - [since, payload]
                items[str(key)] = OpenItem(timestamp(value[0]), value[1])
            else:
                items[str(key)] = OpenItem(timestamp(value))
        return cls(items)


@dataclass
class DoneSet:
    """Items inside the overlap window already handled: key → (time, a small number).

    The time is the item's own (created, queued, updated); the number is the provider's (a run's
    attempt), 0 when it has none.
    """

    items: dict[str, tuple[datetime, int]] = field(default_factory=dict)

    def add(self, key: str, at: datetime, number: int = 0) -> None:
        """Remember that ``key`` was handled as of ``at``."""
        self.items[key] = (millis(at), number)

    def get(self, key: str) -> tuple[datetime, int] | None:
        """When (and with which number) ``key`` was handled, or None."""
        return self.items.get(key)

    def has(self, key: str, at: datetime) -> bool:
        """Whether this version (``at``) of ``key`` was already handled."""
        entry = self.items.get(key)
        return entry is not None and entry[0] == millis(at)

    def __contains__(self, key: object) -> bool:
        return key in self.items

    def __len__(self) -> int:
        return len(self.items)

    def discard(self, key: str) -> None:
        """Forget ``key``."""
        self.items.pop(key, None)

    def prune(self, floor: datetime, *, max_size: int) -> None:
        """Forget items older than ``floor`` (the window cannot return them), then the oldest."""
        kept = {k: v for k, v in self.items.items() if v[0] >= floor}
        if len(kept) > max_size:
            kept = dict(sorted(kept.items(), key=lambda kv: (kv[1][0], kv[0]))[-max_size:])
        self.items = kept

    def to_json(self) -> dict[str, Any]:
        """``{key: at}``, or ``{key: [at, number]}`` when the number is not 0."""
        return {
            k: [format_rfc3339(at), n] if n else format_rfc3339(at)
            for k, (at, n) in sorted(self.items.items())
        }

    @classmethod
    def from_json(cls, data: Any) -> DoneSet:
        """Inverse of :meth:`to_json`."""
        items: dict[str, tuple[datetime, int]] = {}
        for key, value in _object(data, "done set").items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):  # noqa: PLR2004 - [at, number]
                items[str(key)] = (timestamp(value[0]), value[1])
            else:
                items[str(key)] = (timestamp(value), 0)
        return cls(items)


@dataclass
class Watermark(Record):
    """A mark, the open items and the done items of one target (see the module docstring)."""

    mark: datetime
    open: OpenSet = field(default_factory=OpenSet)
    done: DoneSet = field(default_factory=DoneSet)

    def advance(self, when: datetime, *, ceiling: datetime) -> bool:
        """Move the mark forward (never back) to ``when``, but not past ``ceiling``.

        Returns False, and leaves the mark alone, when ``when`` lies beyond the ceiling: such an
        item says nothing about where the next read may start (the caller logs it once).
        """
        if when > ceiling:
            return False
        self.mark = max(self.mark, millis(when))
        return True

    def floor(self, overlap: timedelta) -> datetime:
        """Where the next read starts: ``overlap`` behind the mark."""
        return self.mark - overlap

    def prune(
        self,
        *,
        now: datetime,
        overlap: timedelta,
        open_max: int = 500,
        open_max_age: timedelta = timedelta(days=3),
        done_max: int = 2000,
    ) -> list[str]:
        """Forget done items behind the window, and open items too old or too many (returned)."""
        self.done.prune(self.floor(overlap), max_size=done_max)
        return self.open.prune(now, max_size=open_max, max_age=open_max_age)

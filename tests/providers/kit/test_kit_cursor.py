"""The watermark cursor: mark and ceiling, open and done sets, sealing, JSON round trip."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from deploy_fetcher.providers.kit import (
    CursorMismatch,
    DoneSet,
    OpenSet,
    Sealed,
    Watermark,
    scope_digest,
    short,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CEILING = T0 + timedelta(minutes=5)


def test_the_mark_only_moves_forward() -> None:
    """An older item never moves the mark back."""
    mark = Watermark(T0)
    assert mark.advance(T0 + timedelta(minutes=1), ceiling=CEILING)
    assert mark.advance(T0 - timedelta(days=1), ceiling=CEILING)
    assert T0 + timedelta(minutes=1) == mark.mark


def test_an_item_dated_beyond_the_servers_clock_leaves_the_mark_alone() -> None:
    """An item dated 2099 does not move the mark, so later items are still read."""
    mark = Watermark(T0)
    assert not mark.advance(datetime(2099, 1, 1, tzinfo=UTC), ceiling=CEILING)
    assert T0 == mark.mark
    assert T0 - timedelta(minutes=5) == mark.floor(timedelta(minutes=5))


def test_open_items_are_bounded_in_age_and_count() -> None:
    """Items older than the age limit go first, then the oldest beyond the size limit."""
    open_set = OpenSet()
    for minutes, key in [(0, "a"), (10, "b"), (20, "c"), (30, "d")]:
        open_set.add(key, T0 + timedelta(minutes=minutes))
    dropped = open_set.prune(T0 + timedelta(minutes=45), max_size=2, max_age=timedelta(minutes=40))
    assert (["a", "b"], ["c", "d"]) == (dropped, open_set.oldest_first())


def test_an_open_item_keeps_its_first_time_and_takes_a_new_payload() -> None:
    """Re-adding an item updates its payload, not the time it was first tracked."""
    open_set = OpenSet()
    open_set.add("7", T0, {"e": "etag-1"})
    open_set.add("7", T0 + timedelta(hours=1), {"e": "etag-2"})
    item = open_set.get("7")
    assert item is not None
    assert (T0, {"e": "etag-2"}) == (item.since, item.data)


def test_done_items_behind_the_window_are_forgotten() -> None:
    """The done set keeps what the overlap window can still return, the newest first."""
    done = DoneSet()
    done.add("old", T0 - timedelta(hours=1))
    for i in range(5):
        done.add(str(i), T0 + timedelta(seconds=i))
    done.prune(T0, max_size=3)
    assert ["2", "3", "4"] == sorted(done.items)


def test_a_done_version_is_compared_at_millisecond_precision() -> None:
    """Azure DevOps' 7 fractional digits survive a round trip as the same version."""
    done = DoneSet()
    at = T0.replace(microsecond=123456)
    done.add("9", at, 2)
    again = DoneSet.from_json(json.loads(json.dumps(done.to_json())))
    assert again.has("9", at)
    assert (T0.replace(microsecond=123000), 2) == again.get("9")


def test_a_watermark_survives_a_json_round_trip() -> None:
    """Mark, open payloads and done numbers come back equal from plain JSON."""
    mark = Watermark(T0)
    mark.open.add("1", T0, {"etag": "W/1", "n": 2})
    mark.open.add("2", T0)
    mark.done.add("3", T0, 4)
    mark.done.add("4", T0)
    assert mark == Watermark.from_json(json.loads(json.dumps(mark.to_json())))


@dataclass
class _Target(Watermark, Sealed):
    """A target's cursor as a provider would declare one."""

    scope: str = field(default="", metadata=short(None))
    etag: str | None = field(default=None, metadata=short("e"))
    pages: dict[int, str] = field(default_factory=dict)

    MODE: ClassVar[str] = "m"


NOON = "2026-03-02T12:00:00Z"


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ([], "not an object"),
        ({"v": 0, "mode": "m", "scope": "s"}, "version"),
        ({"v": 1, "mode": "other", "scope": "s"}, "mode"),
        ({"v": 1, "mode": "m", "scope": "t"}, "selection changed"),
        ({"v": 1, "mode": "m", "scope": "s"}, "mark missing"),
        ({"v": 1, "mode": "m", "scope": "s", "mark": NOON, "e": 7}, "not a str"),
        ({"v": 1, "mode": "m", "scope": "s", "mark": NOON, "pages": {"x": "a"}}, "not ids"),
    ],
)
def test_a_foreign_or_damaged_cursor_is_refused(stored: object, reason: str) -> None:
    """Loading names why a stored cursor cannot be continued."""
    with pytest.raises(CursorMismatch, match=reason):
        _Target.load(stored, scope="s")


def test_a_record_is_written_compactly_and_read_back_equal() -> None:
    """Defaults are left out, short keys used, the scope kept out of the body; it reads back."""
    cursor = _Target(T0, scope=scope_digest({"branches": ["main"]}), etag="W/1", pages={3: "p"})
    cursor.done.add("9", T0, 2)
    stored = json.loads(json.dumps(cursor.sealed()))
    assert {"v", "mode", "scope", "mark", "done", "e", "pages"} == set(stored)
    assert cursor == _Target.load(stored, scope=cursor.scope)


def test_a_damaged_watermark_is_a_mismatch() -> None:
    """A mark that is not a timestamp is refused, not guessed at."""
    with pytest.raises(CursorMismatch, match="not a timestamp"):
        Watermark.from_json({"mark": 17})

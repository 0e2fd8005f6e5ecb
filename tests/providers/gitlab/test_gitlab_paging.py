"""The keyset walk over updated_at (the kit's KeysetPaginator, with GitLab's list semantics): every item once, even when items change during the walk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deploy_fetcher.providers.gitlab.mapping import list_key
from deploy_fetcher.providers.kit import KeysetPaginator, PaginationLoop

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class FakeList:
    """A server-side list with GitLab's semantics: updated_after inclusive, id desc tie-break."""

    def __init__(self, items: dict[int, datetime]) -> None:
        self.items = dict(items)
        self.calls: list[tuple[datetime, int]] = []
        self.on_fetch: list[Any] = []

    def fetch(self, after: datetime, page: int, per_page: int) -> list[dict[str, Any]]:
        self.calls.append((after, page))
        if self.on_fetch:
            self.on_fetch.pop(0)(self)
        rows = sorted(
            ((i, at) for i, at in self.items.items() if at >= after), key=lambda r: (r[1], -r[0])
        )
        chunk = rows[(page - 1) * per_page : page * per_page]
        return [
            {"id": i, "updated_at": at.isoformat(), "created_at": at.isoformat()} for i, at in chunk
        ]


def walk(server: FakeList, start: datetime, per_page: int = 3, **kw: Any) -> list[int]:
    walker = KeysetPaginator(
        fetch=lambda after, page: server.fetch(after, page, per_page),
        key=list_key,
        start=start,
        per_page=per_page,
        **kw,
    )
    return [item["id"] for page in walker for item in page]


def test_each_item_is_yielded_once_across_pages_sharing_boundary_times():
    """Items whose updated_at equals a page boundary are not repeated."""
    times = {1: T0, 2: T0 + timedelta(seconds=1), 3: T0 + timedelta(seconds=1)}
    times |= {
        4: T0 + timedelta(seconds=1),
        5: T0 + timedelta(seconds=2),
        6: T0 + timedelta(seconds=3),
    }
    assert [1, 4, 3, 2, 5, 6] == walk(FakeList(times), T0)


def test_an_item_updated_during_the_walk_is_not_lost_and_its_neighbour_neither():
    """Offsets would skip the item that slides back a page; walking by time sees all of them."""
    server = FakeList({i: T0 + timedelta(seconds=i) for i in range(1, 8)})

    def touch_item_2(s: FakeList) -> None:
        s.items[2] = T0 + timedelta(seconds=100)

    server.on_fetch = [lambda _s: None, touch_item_2]
    assert {1, 2, 3, 4, 5, 6, 7} == set(walk(server, T0))


def test_a_full_page_of_one_timestamp_is_stepped_through_by_page():
    """When a whole page shares one updated_at, the walker asks for page 2 of that instant."""
    server = FakeList(dict.fromkeys(range(1, 8), T0))
    assert (sorted(range(1, 8)), [(T0, 1), (T0, 2), (T0, 3)]) == (
        sorted(walk(server, T0)),
        server.calls,
    )


def test_a_server_that_ignores_page_is_refused():
    """Getting the same page back for page=2 raises instead of looping."""
    server = FakeList(dict.fromkeys(range(1, 8), T0))
    server.fetch = lambda after, _page, per_page: FakeList.fetch(server, after, 1, per_page)  # type: ignore[method-assign]
    with pytest.raises(PaginationLoop, match="ignored page"):
        walk(server, T0)


def test_the_walk_is_bounded_in_pages():
    """More pages than max_pages raises rather than walking forever."""
    server = FakeList({i: T0 + timedelta(seconds=i) for i in range(1, 50)})
    with pytest.raises(PaginationLoop, match="more than 3 pages"):
        walk(server, T0, max_pages=3)


def test_an_idle_list_costs_one_request():
    """Nothing updated since the start: one request, no pages."""
    server = FakeList({1: T0 - timedelta(days=1)})
    assert ([], 1) == (walk(server, T0), len(server.calls))

"""Paginators walk to the end, stop at their page limit, and refuse to go round in circles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deploy_fetcher.providers.kit import (
    ContinuationPaginator,
    KeysetPaginator,
    LinkPaginator,
    OffsetPaginator,
    PaginationLoop,
    parse_link_header,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def test_the_link_header_is_parsed_per_rel() -> None:
    """Each rel of an RFC 8288 header maps to its URL."""
    header = '<https://api/x?page=2>; rel="next", <https://api/x?page=9>; rel="last"'
    assert {"next": "https://api/x?page=2", "last": "https://api/x?page=9"} == parse_link_header(
        header
    )


def test_link_pages_are_followed_to_the_end() -> None:
    """The next links are followed until a page has none."""
    pages = {
        "u1": ("a", '<u2>; rel="next"'),
        "u2": ("b", '<u3>; rel="next"'),
        "u3": ("c", None),
    }
    walk = LinkPaginator(lambda url: pages[url or "u1"], lambda page: page[1], max_pages=10)
    assert ["a", "b", "c"] == [page[0] for page in walk]


def test_a_next_link_seen_before_is_a_loop() -> None:
    """A server pointing back at a page already read fails the walk instead of spinning."""
    pages = {"u1": '<u2>; rel="next"', "u2": '<u1>; rel="next"'}
    walk = LinkPaginator(lambda url: pages[url or "u1"], lambda page: page, max_pages=10, what="/x")
    walk._start = "u1"
    with pytest.raises(PaginationLoop, match="repeated a next link after 2 pages of /x"):
        list(walk)


def test_continuation_tokens_stop_at_the_page_limit_and_say_where_to_resume() -> None:
    """max_pages truncates the walk; ``resume`` is the token of the first page not read."""
    walk = ContinuationPaginator(
        lambda token: int(token or 0), lambda page: str(page + 1), max_pages=3
    )
    assert ([0, 1, 2], True, "3") == (list(walk), walk.truncated, walk.resume)


def test_a_repeated_continuation_token_is_a_loop() -> None:
    """The same token twice means the server goes round in circles."""
    walk = ContinuationPaginator(lambda token: token, lambda _page: "same", max_pages=10)
    with pytest.raises(PaginationLoop, match="repeated a continuation token"):
        list(walk)


def test_offset_pages_end_at_a_short_page() -> None:
    """Page numbers count up until a page is shorter than per_page."""
    data = list(range(7))
    walk = OffsetPaginator(
        lambda n: data[(n - 1) * 3 : n * 3], per_page=3, max_pages=10, key=lambda i: i
    )
    assert [[0, 1, 2], [3, 4, 5], [6]] == list(walk)


def test_a_server_ignoring_the_page_number_is_a_loop() -> None:
    """Page 2 answered with page 1 again fails the walk."""
    walk = OffsetPaginator(lambda _n: [1, 2, 3], per_page=3, max_pages=10, key=lambda i: i)
    with pytest.raises(PaginationLoop, match="page 2"):
        list(walk)


def test_a_keyset_walk_reads_each_item_once_through_ties() -> None:
    """Items sharing one timestamp across pages are stepped through by offset, none twice."""
    items = [(i, T0 + timedelta(seconds=i // 4)) for i in range(10)]

    def fetch(after: datetime, page: int) -> list[tuple[int, datetime]]:
        kept = [item for item in items if item[1] >= after]
        return kept[(page - 1) * 3 : page * 3]

    walk = KeysetPaginator(fetch=fetch, key=lambda item: item, start=T0, per_page=3)
    seen = [item[0] for page in walk for item in page]
    assert list(range(10)) == seen

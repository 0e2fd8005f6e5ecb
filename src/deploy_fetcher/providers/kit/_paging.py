"""Paginators: small classes that walk a list page by page and refuse to go round in circles.

Every one is driven the same way (:class:`Paginator`): ``fetch(token)`` reads the page a token names,
``next_token(page)`` reads the next token from it, None ends the walk. The driver never reads more
than ``max_pages`` (``truncated`` then says so, and ``resume`` is where to pick up) and raises
:class:`PaginationLoop` — a transient error: the cycle fails and is retried, rather than spinning on
the API budget — when a server hands out a token it already gave, or answers a new page with the
last one again.

* :class:`LinkPaginator`: RFC 8288 ``Link: <…>; rel="next"`` (GitHub, GitLab);
* :class:`ContinuationPaginator`: a token in a header or the body (Azure DevOps
  ``x-ms-continuationtoken``);
* :class:`OffsetPaginator`: page numbers (``page=2, 3…``), stopping at a short page;
* :class:`KeysetPaginator`: a list ordered by a timestamp and filtered with "at or after", paged by
  the last timestamp seen — an offset walk over a list that changes while it is read loses items,
  a keyset walk does not (offsets are used only while a whole page shares one timestamp).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

from deploy_fetcher.errors import TransientError

__all__ = [
    "ContinuationPaginator",
    "KeysetPaginator",
    "LinkPaginator",
    "OffsetPaginator",
    "PaginationLoop",
    "Paginator",
    "parse_link_header",
]

T = TypeVar("T")
P = TypeVar("P")

_LINK: Final = re.compile(r'<([^>]+)>\s*;\s*rel="?([^",;]+)"?')


class PaginationLoop(TransientError):
    """The server's pages would make the walk loop or never end."""


def parse_link_header(value: str | None) -> dict[str, str]:
    """Map each ``rel`` of a ``Link`` header to its URL (``{"next": …, "last": …}``)."""
    if not value:
        return {}
    return {rel: url for url, rel in _LINK.findall(value)}


class Paginator(Generic[T, P]):
    """Walk the pages of one list (see the module docstring); iterate it once.

    ``what`` names the list in messages (its URL); ``kind`` names the token (``next link`` …).
    """

    kind = "page token"

    def __init__(
        self,
        fetch: Callable[[T | None], P],
        *,
        max_pages: int,
        start: T | None = None,
        what: str = "the list",
        fingerprint: Callable[[P], Hashable] | None = None,
    ) -> None:
        self._fetch = fetch
        self._max_pages = max_pages
        self._start = start
        self._fingerprint = fingerprint
        self.what = what
        self.pages = 0
        self.truncated = False
        #: When truncated: the token of the first page not read (where to resume).
        self.resume: T | None = None

    def next_token(self, page: P) -> T | None:
        """The token of the page after ``page``; None at the end."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[P]:
        seen: set[Any] = set()
        previous: Hashable | None = None
        token = self._start
        if token is not None:
            seen.add(token)
        while True:
            if self.pages >= self._max_pages:
                self.truncated = True
                self.resume = token
                return
            page = self._fetch(token)
            self.pages += 1
            if self._fingerprint is not None:
                current = self._fingerprint(page)
                if self.pages > 1 and current and current == previous:
                    msg = f"the server answered page {self.pages} of {self.what} with the page before it again"
                    raise PaginationLoop(msg)
                previous = current
            yield page
            token = self.next_token(page)
            if token is None or token == "":
                return
            if token in seen:
                msg = f"the server repeated a {self.kind} after {self.pages} pages of {self.what}"
                raise PaginationLoop(msg)
            seen.add(token)


class LinkPaginator(Paginator[str, P]):
    """Follows ``rel="next"`` of the ``Link`` header that ``link_of(page)`` returns."""

    kind = "next link"

    def __init__(
        self,
        fetch: Callable[[str | None], P],
        link_of: Callable[[P], str | None],
        *,
        max_pages: int,
        what: str = "the list",
    ) -> None:
        super().__init__(fetch, max_pages=max_pages, what=what)
        self._link_of = link_of

    def next_token(self, page: P) -> str | None:
        """The ``next`` URL, None on the last page."""
        return parse_link_header(self._link_of(page)).get("next")


class ContinuationPaginator(Paginator[str, P]):
    """Follows continuation tokens that ``token_of(page)`` reads (from ``start``, when given)."""

    kind = "continuation token"

    def __init__(
        self,
        fetch: Callable[[str | None], P],
        token_of: Callable[[P], str | None],
        *,
        max_pages: int,
        start: str | None = None,
        what: str = "the list",
    ) -> None:
        super().__init__(fetch, max_pages=max_pages, start=start, what=what)
        self._token_of = token_of

    def next_token(self, page: P) -> str | None:
        """The continuation token, None on the last page."""
        return self._token_of(page)


class OffsetPaginator(Paginator[int, Sequence[Any]]):
    """Page numbers from 1; a page shorter than ``per_page`` is the last one.

    ``key`` gives an item's identity: a page that repeats the one before it is a loop.
    """

    kind = "page number"

    def __init__(
        self,
        fetch: Callable[[int], Sequence[Any]],
        *,
        per_page: int,
        max_pages: int,
        key: Callable[[Any], Hashable],
        what: str = "the list",
    ) -> None:
        super().__init__(
            lambda page: fetch(page or 1),
            max_pages=max_pages,
            start=1,
            what=what,
            fingerprint=lambda items: tuple(key(item) for item in items),
        )
        self._per_page = per_page
        self._page = 1

    def next_token(self, page: Sequence[Any]) -> int | None:
        """The next page number, None after a short page."""
        if len(page) < self._per_page:
            return None
        self._page += 1
        return self._page


@dataclass
class KeysetPaginator:
    """Yield the pages of a list ordered by a timestamp ascending, each item once.

    ``fetch(after, page)`` lists items at or after ``after`` (page 1, 2… of that filter);
    ``key(item)`` gives (id, timestamp), None for an item that cannot be placed (still yielded).
    Every request asks for the last timestamp seen; an item updated while the walk runs simply shows
    up again later with its new time. Items already yielded at the boundary are dropped.
    """

    fetch: Callable[[datetime, int], list[Any]]
    key: Callable[[Any], tuple[int, datetime] | None]
    start: datetime
    per_page: int
    max_pages: int = 1000
    what: str = "the list"
    pages: int = field(default=0, init=False)

    def __iter__(self) -> Iterator[list[Any]]:
        after = self.start
        page = 1
        at_boundary: set[int] = set()  # ids already yielded whose timestamp == after
        previous: list[int] = []
        for _ in range(self.max_pages):
            items = self.fetch(after, page)
            self.pages += 1
            keys = [self.key(item) for item in items]
            ids = [k[0] for k in keys if k is not None]
            if page > 1 and ids and ids == previous:
                msg = f"the server ignored page={page} of {self.what} and repeated the page before"
                raise PaginationLoop(msg)
            previous = ids
            fresh = [
                item
                for item, k in zip(items, keys, strict=True)
                if k is None or not (k[1] == after and k[0] in at_boundary)
            ]
            if fresh:
                yield fresh
            if len(items) < self.per_page:
                return
            placed = [k for k in keys if k is not None]
            if not placed:
                msg = f"a full page of {self.what} without a single readable timestamp"
                raise PaginationLoop(msg)
            last = max(k[1] for k in placed)
            if last > after:
                after, page = last, 1
                at_boundary = {k[0] for k in placed if k[1] == last}
            else:
                # The whole page shares one timestamp: step through it by offset.
                page += 1
                at_boundary |= {k[0] for k in placed}
        msg = f"more than {self.max_pages} pages of {self.what}; narrow the window"
        raise PaginationLoop(msg)

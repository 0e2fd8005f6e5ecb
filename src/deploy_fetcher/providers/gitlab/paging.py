"""Walking a list ordered by ``updated_at`` without losing items that change while it is read.

GitLab's deployments and pipelines endpoints offer offset paging only. Offsets over a list ordered by
``updated_at`` shift whenever an item is updated during the walk: the item jumps to the end and the one
after it slides onto a page already read, so it is never seen. This walker pages by time instead
("keyset by hand"): every request asks for ``updated_after`` = the last timestamp seen (GitLab's filter
is inclusive), drops the items it already yielded, and only falls back to ``page=2, 3…`` while a whole
page shares one timestamp. An item updated mid-walk simply shows up again later with its new time.

It refuses to loop: a server that answers ``page=N`` with the previous page again, or a walk longer than
``max_pages``, raises :class:`PagingError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["PagingError", "UpdatedAtWalker"]

#: (updated_after, page) -> the raw items of that page.
Fetch = Callable[[datetime, int], list[Any]]
#: raw item -> (id, updated_at), or None when the item cannot be placed (it is still yielded).
Key = Callable[[Any], tuple[int, datetime] | None]


class PagingError(Exception):
    """The server answered pages that would make the walk loop or never end."""


@dataclass
class UpdatedAtWalker:
    """Yield the pages of a list ordered by ``updated_at`` asc, each item once."""

    fetch: Fetch
    key: Key
    start: datetime
    per_page: int
    max_pages: int = 1000

    def __iter__(self) -> Iterator[list[Any]]:
        after = self.start
        page = 1
        at_boundary: set[int] = set()  # ids already yielded whose updated_at == after
        previous: list[int] = []
        for _ in range(self.max_pages):
            items = self.fetch(after, page)
            keys = [self.key(item) for item in items]
            ids = [k[0] for k in keys if k is not None]
            if page > 1 and ids and ids == previous:
                msg = f"the server ignored page={page} and repeated the previous page"
                raise PagingError(msg)
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
                msg = "a full page without a single readable updated_at"
                raise PagingError(msg)
            last = max(k[1] for k in placed)
            if last > after:
                after = last
                page = 1
                at_boundary = {k[0] for k in placed if k[1] == last}
            else:
                # The whole page shares one timestamp: step through it by offset.
                page += 1
                at_boundary |= {k[0] for k in placed}
        msg = f"more than {self.max_pages} pages; narrow the window"
        raise PagingError(msg)

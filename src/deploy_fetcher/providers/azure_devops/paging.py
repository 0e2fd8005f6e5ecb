"""Continuation-token paging, the one paging scheme every Azure DevOps list here uses.

A list answers ``{count, value}`` and, when more follows, an ``x-ms-continuationtoken`` header whose
value goes back as the ``continuationToken`` query parameter. The paginator follows tokens to the end,
but never forever: a token the server already handed out means it is going round in circles (the
cycle fails and is retried, rather than spinning on the API budget), and a walk stops after
``max_pages`` with ``truncated`` set and the unread page's token in ``next_token``, so the caller
can say so and resume there later (``start``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploy_fetcher.errors import TransientError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["ContinuationPaginator", "ListPage"]


@dataclass(frozen=True)
class ListPage:
    """One page of a list: its items, the token for the next page (None at the end) and its URL."""

    items: list[dict[str, Any]]
    token: str | None
    url: str


class ContinuationPaginator:
    """Iterate the pages of one list, following continuation tokens.

    ``fetch(token)`` returns the page for a token (None for the first page); ``start`` is the
    token of the page to begin with (a ``next_token`` of an earlier walk), None for the first.
    """

    def __init__(
        self,
        fetch: Callable[[str | None], ListPage],
        *,
        max_pages: int,
        start: str | None = None,
    ) -> None:
        self._fetch = fetch
        self._max_pages = max_pages
        self._start = start
        self.pages = 0
        self.truncated = False
        #: When truncated: the token of the first page not read.
        self.next_token: str | None = None

    def __iter__(self) -> Iterator[ListPage]:
        seen: set[str] = set()
        token = self._start
        while True:
            if self.pages >= self._max_pages:
                self.truncated = True
                self.next_token = token
                return
            page = self._fetch(token)
            self.pages += 1
            yield page
            token = page.token
            if not token:
                return
            if token in seen:
                msg = f"the server repeated a continuation token after {self.pages} pages of {page.url}"
                raise TransientError(msg)
            seen.add(token)

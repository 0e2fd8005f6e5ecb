"""GitHub's ``Link`` header pagination, with a guard against pages that point back at themselves."""

from __future__ import annotations

import re

__all__ = ["LinkPaginator", "PaginationLoop", "parse_link_header"]

_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?([^",;]+)"?')


def parse_link_header(value: str | None) -> dict[str, str]:
    """Map each ``rel`` of a ``Link`` header to its URL (``{"next": ..., "last": ...}``)."""
    if not value:
        return {}
    return {rel: url for url, rel in _LINK.findall(value)}


class PaginationLoop(RuntimeError):
    """A ``next`` link named a page that was already read, or the walk went past its page limit."""


class LinkPaginator:
    """Follows ``rel="next"`` links, refusing to read a URL twice or more than ``max_pages`` pages."""

    def __init__(self, first_url: str, *, max_pages: int = 1000) -> None:
        self.max_pages = max_pages
        self._seen = {first_url}
        self.pages = 1

    def next_url(self, link_header: str | None) -> str | None:
        """The URL of the next page, None at the end; raises :class:`PaginationLoop` on a cycle."""
        url = parse_link_header(link_header).get("next")
        if url is None:
            return None
        if url in self._seen:
            msg = f"pagination loop: next page {url} was already read"
            raise PaginationLoop(msg)
        if self.pages >= self.max_pages:
            msg = f"pagination stopped after {self.max_pages} pages at {url}"
            raise PaginationLoop(msg)
        self._seen.add(url)
        self.pages += 1
        return url

"""Pages whose cursor covers exactly what was stored: how every provider commits page by page."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from deploy_fetcher.providers._base import Cursor, Page

if TYPE_CHECKING:
    from deploy_fetcher.model import DeployEvent

__all__ = ["backfill_pages", "cursor_pages"]


def cursor_pages(
    batches: Iterable[Sequence[DeployEvent]],
    cursor: Callable[[], Cursor],
    previous: Cursor | None,
    *,
    order: Callable[[Sequence[DeployEvent]], Sequence[DeployEvent]] = list,
) -> Iterator[Page]:
    """One page per batch, carrying the cursor as it stands right after the batch.

    ``batches`` is a walk that updates the cursor in place and yields at points where the cursor
    covers exactly the events yielded so far; ``cursor()`` serialises it. A batch without events
    that leaves the cursor as stored is not a page at all (an idle cycle stores nothing), and a
    walk that ends with a changed cursor gets one last page for it (a fresh target always stores
    its cursor).
    """
    last = previous
    for events in batches:
        current = cursor()
        if events or current != last:
            yield Page(order(events), current)
            last = current
    current = cursor()
    if current != last:
        yield Page([], current)


def backfill_pages(
    batches: Iterable[Sequence[DeployEvent]],
    *,
    order: Callable[[Sequence[DeployEvent]], Sequence[DeployEvent]] = list,
) -> Iterator[Page]:
    """One page per batch that has events, without a cursor: a backfill stores no cursor."""
    for events in batches:
        if events:
            yield Page(order(events))

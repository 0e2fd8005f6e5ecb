"""The lifecycle ledger's part both SQL stores share: the rank as SQL, and what gets logged.

Each store keeps, per ``(sink, deployment_id)``, what the deployment reached in that sink's outbox
(:class:`~deploy_fetcher.lifecycle.Reached`), reads the page's entries inside its commit
transaction, lets :func:`~deploy_fetcher.lifecycle.gate` judge the page's rows against them, and
writes the rows kept and the entries that moved in that same transaction. A crash therefore never
separates the ledger from the outbox, and the cursor moves with both.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from deploy_fetcher.lifecycle import RANK, Gated, log_clamped, log_dropped

__all__ = ["RANK_SQL", "report"]

#: A ``status`` column's place in the lifecycle, as an SQL expression.
RANK_SQL: Final = (
    "CASE status "
    + " ".join(f"WHEN '{status.value}' THEN {place}" for status, place in RANK.items())
    + " END"
)


def report(gated: Gated, repeated: Collection[int]) -> None:
    """Log what the gate changed, once the transaction that applied it committed.

    ``repeated`` are the indexes in ``gated.dropped`` of rows whose state the sink's outbox already
    holds at or after their time: a re-read of an overlap window (or of an event re-dated before),
    not news, so not logged — every poll cycle re-reads a few minutes of older states.
    """
    for index, dropped in enumerate(gated.dropped):
        if index not in repeated:
            log_dropped(dropped.event, dropped.after, why="behind_stored", sink=dropped.sink)
    for clamped in gated.clamped:
        log_clamped(clamped)

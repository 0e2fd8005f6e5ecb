"""What the copy into PostgreSQL says about its counts: in words, each noun in the right number."""

from __future__ import annotations

from deploy_fetcher.store.postgres._copy import CopyReport


def test_counts_of_one_are_singular() -> None:
    """One of each reads "1 cursor", "1 outbox row", "1 promotion ledger entry", never "1 cursors"."""
    report = CopyReport(cursors=1, successes=1, values=1, outbox={"pending": 1}, lifecycle=1)

    assert (
        "1 cursor, 1 outbox row (1 pending, 0 delivered, 0 dead), 1 promotion ledger entry,"
        " 1 lifecycle ledger entry, 1 stored value"
    ) == report.describe()


def test_other_counts_are_plural() -> None:
    """Zero and several take the plural; every row state is named, those without rows as 0."""
    report = CopyReport(
        cursors=0, successes=2, values=3, outbox={"delivered": 2, "dead": 1}, lifecycle=0
    )

    assert (
        "0 cursors, 3 outbox rows (0 pending, 2 delivered, 1 dead), 2 promotion ledger entries,"
        " 0 lifecycle ledger entries, 3 stored values"
    ) == report.describe()

"""Durable state: cursors, outbox, dedup ledger, dead letters."""

from __future__ import annotations

from deploy_fetcher.config import StateConfig
from deploy_fetcher.store._base import CursorRecord, OutboxRow, OutboxStats, RowState, StateStore
from deploy_fetcher.store.sqlite import SqliteStore

__all__ = [
    "CursorRecord",
    "OutboxRow",
    "OutboxStats",
    "RowState",
    "SqliteStore",
    "StateStore",
    "open_store",
]


def open_store(config: StateConfig) -> StateStore:
    """Open the configured state store (SQLite is the only backend so far).

    Raises StoreError (ForeignStateError for a file that is not ours) with a message naming the file.
    """
    return SqliteStore(config.path.expanduser())

"""Durable state: cursors, outbox, dedup ledger, dead letters."""

from deploy_fetcher.store._base import CursorRecord, OutboxRow, OutboxStats, RowState, StateStore

__all__ = ["CursorRecord", "OutboxRow", "OutboxStats", "RowState", "StateStore"]

"""Durable state: cursors, outbox, dedup ledger, dead letters."""

from __future__ import annotations

from deploy_fetcher.config import FetcherConfig, StateConfig
from deploy_fetcher.errors import StoreError
from deploy_fetcher.store._base import CursorRecord, OutboxRow, OutboxStats, RowState, StateStore
from deploy_fetcher.store.dashboard import DashboardStore
from deploy_fetcher.store.sqlite import SqliteStore

__all__ = [
    "CursorRecord",
    "DashboardStore",
    "OutboxRow",
    "OutboxStats",
    "RowState",
    "SqliteStore",
    "StateStore",
    "open_store",
]


def open_store(config: FetcherConfig | StateConfig) -> StateStore:
    """Open the configured state store: a SQLite file, or cursors kept in the dashboard.

    The ``dashboard`` backend needs the whole configuration (its sink holds the dashboard's URL and
    key); a bare :class:`StateConfig` is enough for ``sqlite``. Raises StoreError (ForeignStateError
    for a file that is not ours) with a message naming the file.
    """
    state = config.state if isinstance(config, FetcherConfig) else config
    if state.backend == "sqlite":
        return SqliteStore(state.path.expanduser())
    if not isinstance(config, FetcherConfig):
        msg = (
            "the dashboard state backend needs the whole configuration, not only its state section"
        )
        raise StoreError(msg)
    # Imported here: the control package builds on the store, not the other way round.
    from deploy_fetcher.control import HttpStateSlot

    sink = next(s for s in config.sinks if s.name == state.dashboard_sink)
    return DashboardStore(HttpStateSlot(sink, state.dashboard_slot))

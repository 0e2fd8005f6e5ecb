"""Durable state: cursors, outbox, dedup ledger, dead letters."""

from __future__ import annotations

from deploy_fetcher.config import FetcherConfig, StateConfig
from deploy_fetcher.errors import StoreError
from deploy_fetcher.plugins import load_sink
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


def open_store(config: FetcherConfig | StateConfig) -> StateStore:
    """Open the configured state store: a SQLite file, or cursors kept in the dashboard.

    The ``dashboard`` backend needs the whole configuration (its sink holds the dashboard's URL and
    key); a bare :class:`StateConfig` is enough for ``sqlite``. The sink's plugin opens that backend
    (:meth:`~deploy_fetcher.sinks.Sink.open_state_store`): the store knows no destination by name.
    Raises StoreError (ForeignStateError for a file that is not ours) with a message naming the file.
    """
    state = config.state if isinstance(config, FetcherConfig) else config
    if state.backend == "sqlite":
        return SqliteStore(state.path.expanduser())
    if not isinstance(config, FetcherConfig):
        msg = (
            "the dashboard state backend needs the whole configuration, not only its state section"
        )
        raise StoreError(msg)
    sink = next(s for s in config.sinks if s.name == state.dashboard_sink)
    opened = load_sink(sink.type).open_state_store(sink, state.dashboard_slot)
    if opened is None:
        msg = f"sinks of type {sink.type!r} cannot keep the cursors (state.dashboard_sink)"
        raise StoreError(msg)
    return opened

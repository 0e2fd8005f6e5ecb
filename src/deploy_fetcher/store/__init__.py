"""Durable state: cursors, outbox, dedup ledger, dead letters."""

from __future__ import annotations

from deploy_fetcher.config import FetcherConfig, StateConfig
from deploy_fetcher.errors import StoreError
from deploy_fetcher.plugins import load_sink
from deploy_fetcher.store._base import (
    CursorRecord,
    Fence,
    LeaseBoard,
    OutboxRow,
    OutboxStats,
    RowState,
    StateStore,
)
from deploy_fetcher.store._settle import Settlement
from deploy_fetcher.store.sqlite import SqliteStore

__all__ = [
    "CursorRecord",
    "Fence",
    "LeaseBoard",
    "OutboxRow",
    "OutboxStats",
    "RowState",
    "Settlement",
    "SqliteStore",
    "StateStore",
    "open_postgres",
    "open_store",
]


def open_store(config: FetcherConfig | StateConfig) -> StateStore:
    """Open the configured state store: a SQLite file, a PostgreSQL database, or the dashboard.

    The ``dashboard`` backend needs the whole configuration (its sink holds the dashboard's URL and
    key); a bare :class:`StateConfig` is enough for ``sqlite`` and ``postgres``. The sink's plugin
    opens that backend (:meth:`~deploy_fetcher.sinks.Sink.open_state_store`): the store knows no
    destination by name. Raises StoreError (ForeignStateError for a file or database that is not
    ours) with a message naming the file or the database (never its password).
    """
    state = config.state if isinstance(config, FetcherConfig) else config
    if state.backend == "sqlite":
        return SqliteStore(state.path.expanduser())
    if state.backend == "postgres":
        return open_postgres(state)
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


def open_postgres(state: StateConfig) -> StateStore:
    """The PostgreSQL store of ``state``; a clear StoreError when psycopg is not installed."""
    if state.url is None:
        raise StoreError("state.backend postgres needs state.url")
    try:
        from deploy_fetcher.store.postgres import PostgresStore
    except ImportError as exc:
        msg = (
            f"state.backend postgres needs psycopg 3 and psycopg-pool ({exc.name} is missing):"
            " pip install 'deploy-fetcher[postgres]'"
        )
        raise StoreError(msg) from None
    return PostgresStore(state.url.get_secret_value(), pool_size=state.pool_size)

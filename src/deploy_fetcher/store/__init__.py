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
    "open_postgres",
    "open_store",
]


def open_store(config: FetcherConfig | StateConfig) -> StateStore:
    """Open the configured state store: a SQLite file, a PostgreSQL database, or the dashboard.

    The ``dashboard`` backend needs the whole configuration (its sink holds the dashboard's URL and
    key); a bare :class:`StateConfig` is enough for ``sqlite`` and ``postgres``. Raises StoreError
    (ForeignStateError for a file or database that is not ours) with a message naming the file or
    the database (never its password).
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
    # Imported here: the control package builds on the store, not the other way round.
    from deploy_fetcher.control import HttpStateSlot

    sink = next(s for s in config.sinks if s.name == state.dashboard_sink)
    return DashboardStore(HttpStateSlot(sink, state.dashboard_slot))


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

"""One cycle through the real engine and SQLite store: events queued, cursor stored, replay free."""

from __future__ import annotations

from tests.providers.gitlab.support import make_provider

from deploy_fetcher.config import FetcherConfig, SinkConfig
from deploy_fetcher.engine import Health, Poller
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.store.sqlite import SqliteStore


def test_engine_cycle_queues_events_stores_the_cursor_and_replays_nothing(emulator, tmp_path):
    """The engine commits the adapter's pages; a second cycle over the overlap queues nothing."""
    emulator.add_pipeline("acme/api", ago=3600)
    provider = make_provider(emulator)
    config = FetcherConfig(
        sinks=[SinkConfig(name="dash", type="stdout")], sources=[provider.config]
    )
    store = SqliteStore(tmp_path / "state.db")
    try:
        poller = Poller(config, store, Metrics(), Health())
        first = poller.run_target(provider, "acme/api")
        cursor = store.get_cursor("gl/acme/api")
        second = poller.run_target(provider, "acme/api")
        pending = store.pending_count("dash")
    finally:
        store.close()
    assert cursor is not None
    assert (("ok", 6, 6), ("ok", 0), "deployments", 6) == (
        (first.outcome, first.events, first.queued),
        (second.outcome, second.queued),
        cursor["mode"],
        pending,
    )

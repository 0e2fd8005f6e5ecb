"""One real cycle through the engine: the poller commits the adapter's pages into a SQLite store."""

from __future__ import annotations

from datetime import timedelta

from tests.providers.github.support import expected_deployment_keys
from tests.providers.github.test_github_deployments import START, scenario

from deploy_fetcher.config import FetcherConfig, SinkConfig
from deploy_fetcher.engine import Health, Poller
from deploy_fetcher.store.sqlite import SqliteStore


def test_poller_stores_events_and_cursor_and_an_idle_cycle_queues_nothing(
    make_emulator, make_provider, tmp_path
):
    """The engine queues every transition once, keeps the cursor, and a second cycle adds nothing."""
    emulator = make_emulator(scenario=scenario(), start=START)
    provider, context = make_provider(emulator, repos=["octo/api"])
    config = FetcherConfig(
        sinks=[SinkConfig(name="dash", type="capture")], sources=[provider.config]
    )
    store = SqliteStore(tmp_path / "state.db")
    try:
        poller = Poller(config, store, context.metrics, Health())
        first = poller.run_target(provider, "octo/api")
        expected = expected_deployment_keys(emulator, "octo/api", START - timedelta(days=7))
        rows = store.list_rows(sink="dash", limit=1000)
        assert ("ok", len(expected)) == (first.outcome, first.queued)
        assert expected == {row.event.dedup_key for row in rows}
        assert store.get_cursor("gh/octo/api") is not None
        emulator.reset_log()
        second = poller.run_target(provider, "octo/api")
        assert ("ok", 0, []) == (second.outcome, second.queued, emulator.charged())
    finally:
        store.close()

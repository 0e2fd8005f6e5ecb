"""The adapter inside the real poller with a real SQLite store: cursor and outbox in one transaction."""

from __future__ import annotations

from structlog.testing import capture_logs
from tests.providers.azure_devops.support import make_config

from deploy_fetcher.config import FetcherConfig, SinkConfig
from deploy_fetcher.engine import Health, Poller
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.store.sqlite import SqliteStore


def test_cycles_through_the_poller_store_each_event_once(emulator, providers, tmp_path):
    """Two cycles and a restart queue every transition once; the stored cursor is the adapter's."""
    source = make_config(emulator)
    config = FetcherConfig(sinks=[SinkConfig(name="dash", type="programmed")], sources=[source])
    run = emulator.add_run("web", ago=3600)
    store = SqliteStore(tmp_path / "state.db")
    try:
        poller = Poller(config, store, Metrics(), Health())
        with capture_logs() as logs:
            first = poller.run_target(providers(), "shop")
        emulator.advance(120)
        second = poller.run_target(providers(), "shop")
        cursor = store.get_cursor("ado/shop")
        pending = store.pending_count("dash")
    finally:
        store.close()
    # dev, staging and prod: queued, in-progress, success. Prod's approval (its waiting) comes in a
    # page after prod's success, which the outbox already holds: behind it, it is left out.
    assert (("ok", 9), ("ok", 0), "environments", [str(run.id)], 9) == (
        (first.outcome, first.queued),
        (second.outcome, second.queued),
        cursor["mode"],
        list(cursor["runs"]["done"]),
        pending,
    )
    dropped = [log for log in logs if log["event"] == "lifecycle.event_dropped"]
    assert [("waiting", "success", "behind_stored")] == [
        (log["status"], log["after"], log["why"]) for log in dropped
    ]


def test_an_expired_pat_fails_the_target_as_an_auth_error(emulator, providers, tmp_path):
    """The poller classifies the adapter's AuthError; nothing is stored."""
    source = make_config(emulator)
    config = FetcherConfig(sinks=[SinkConfig(name="dash", type="programmed")], sources=[source])
    emulator.expire_token()
    store = SqliteStore(tmp_path / "state.db")
    try:
        result = Poller(config, store, Metrics(), Health()).run_target(providers(), "shop")
        stored = store.get_cursor("ado/shop")
    finally:
        store.close()
    assert ("auth_error", None) == (result.outcome, stored)

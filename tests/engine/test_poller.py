"""The poller: the transaction rule, dedup, fan-out, failure classification."""

from __future__ import annotations

from structlog.testing import capture_logs
from tests.engine.builders import ListProvider, make_config, make_event

from deploy_fetcher.config import Filter, SinkConfig, SourceConfig
from deploy_fetcher.engine import Health, Poller
from deploy_fetcher.errors import AuthError, TransientError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import Page


def _poller(config, store, metrics=None, health=None, woken=None):
    return Poller(
        config,
        store,
        metrics or Metrics(),
        health or Health(),
        on_commit=(woken.extend if woken is not None else lambda _s: None),
    )


def test_each_page_commits_rows_and_cursor_together(store, context):
    """A failure after page 1 keeps page 1's rows and cursor; nothing of page 2 is stored."""
    config = make_config()
    pages = [
        Page([make_event(1), make_event(2)], {"mark": 2}),
        TransientError("boom"),
        Page([make_event(3)], {"mark": 3}),
    ]
    provider = ListProvider(config.sources[0], context, pages)
    result = _poller(config, store).run_target(provider, "src")
    assert result.outcome == "transient_error"
    assert store.get_cursor("src") == {"mark": 2}
    assert store.pending_count("dash") == 2


def test_overlap_rereads_are_deduplicated(store, context):
    """Re-reading the same events in the next cycle queues nothing new."""
    config = make_config()
    page = Page([make_event(1), make_event(2)], {"mark": 2})
    provider = ListProvider(config.sources[0], context, [page])
    poller = _poller(config, store)
    assert poller.run_target(provider, "src").queued == 2
    assert poller.run_target(provider, "src").queued == 0
    assert store.pending_count("dash") == 2


def test_stored_cursor_is_handed_back_to_the_adapter(store, context):
    """The next cycle starts from the cursor the last page stored."""
    config = make_config()
    provider = ListProvider(config.sources[0], context, [Page([make_event(1)], {"mark": 1})])
    poller = _poller(config, store)
    poller.run_target(provider, "src")
    poller.run_target(provider, "src")
    assert provider.cursors_seen == [None, {"mark": 1}]


def test_fan_out_respects_source_sinks_and_sink_filters(store, context):
    """A source feeds only its sinks; a sink's include filter keeps what it wants."""
    cloud = SinkConfig(name="cloud", type="x", include=Filter(statuses=["success"]))
    dash = SinkConfig(name="dash", type="x")
    other = SinkConfig(name="other", type="x")
    source = SourceConfig(name="src", provider="list", sinks=["dash", "cloud"])
    config = make_config(dash, cloud, other, sources=[source])
    page = Page([make_event(1, status="in-progress"), make_event(2)], {"m": 1})
    woken: list[str] = []
    _poller(config, store, woken=woken).run_target(ListProvider(source, context, [page]), "src")
    assert tuple(store.pending_count(s) for s in ("dash", "cloud", "other")) == (2, 1, 0)
    assert woken == ["cloud", "dash"]


def test_failures_are_logged_once_and_recovery_once(store, context):
    """Three failing cycles log one warning; the next good cycle logs one recovery."""
    config = make_config()
    health = Health()
    failing = ListProvider(config.sources[0], context, [AuthError("bad token")])
    good = ListProvider(config.sources[0], context, [Page([], {"m": 0})])
    poller = _poller(config, store, health=health)
    with capture_logs() as logs:
        for _ in range(3):
            poller.run_target(failing, "src")
        assert [p for p in health.problems() if "credentials" in p] == [
            "source src: credentials rejected"
        ]
        poller.run_target(good, "src")
    events = [log["event"] for log in logs if log["event"].startswith("source.")]
    assert events == ["source.failing", "source.recovered"]
    assert health.problems() == []


def test_unexpected_adapter_errors_do_not_escape(store, context):
    """An adapter bug ends the cycle as `error` with the exception logged, never a crash."""
    config = make_config()
    metrics = Metrics()
    provider = ListProvider(config.sources[0], context, [KeyError("oops")])
    with capture_logs() as logs:
        result = _poller(config, store, metrics=metrics).run_target(provider, "src")
    assert result.outcome == "error"
    assert "poll.unexpected_error" in [log["event"] for log in logs]
    assert metrics.poll_cycles.labels("src", "src", "error")._value.get() == 1.0


def test_promotion_ledger_uses_canonical_names_even_when_a_sink_renames(store, context):
    """A dev success renamed by a sink still links the later prod deployment of the same sha."""
    from deploy_fetcher.config import RulesConfig

    sink = SinkConfig(name="dash", type="x", rename={"environments": {"dev": "development"}})
    config = make_config(sink).model_copy(
        update={"rules": RulesConfig(promotion={"*": ["dev", "prod"]})}
    )
    poller = _poller(config, store)
    dev = make_event(1, env="dev", sha="abc")
    prod = make_event(2, env="prod", sha="abc", status="in-progress")
    poller.run_target(ListProvider(config.sources[0], context, [Page([dev], {"m": 1})]), "src")
    poller.run_target(ListProvider(config.sources[0], context, [Page([prod], {"m": 2})]), "src")
    [row] = [r for r in store.list_rows(sink="dash") if r.event.deployment_id == "d2"]
    assert ("d1",) == row.event.parent_deployments


class _BrokenBackfill(ListProvider):
    """A ListProvider whose backfill raises the exceptions in its list, as its poll does."""

    def backfill(self, target, since, until):
        yield from self.poll(target, None)


def test_unexpected_adapter_errors_in_a_backfill_do_not_escape(store, context):
    """An adapter bug in a backfill keeps the pages before it and ends as `error`, logged."""
    config = make_config()
    pages = [Page([make_event(1)], None), KeyError(0), Page([make_event(2)], None)]
    provider = _BrokenBackfill(config.sources[0], context, pages)
    since = make_event(0).happened_at
    with capture_logs() as logs:
        result = _poller(config, store).backfill_target(provider, "src", since, since)
    unexpected = [log for log in logs if log["event"] == "backfill.unexpected_error"]
    assert ("error", 1, 1, 1, True) == (
        result.outcome,
        result.pages,
        store.pending_count("dash"),
        len(unexpected),
        "KeyError" in result.error,
    )


def test_a_backfill_page_is_committed_oldest_first(store, context):
    """A newest-first backfill page still links prod to the dev success that came before it."""
    from deploy_fetcher.config import RulesConfig

    config = make_config().model_copy(
        update={"rules": RulesConfig(promotion={"*": ["dev", "prod"]})}
    )
    prod = make_event(2, env="prod", sha="abc", status="in-progress")
    dev = make_event(1, env="dev", sha="abc")
    provider = ListProvider(config.sources[0], context, [Page([prod, dev])])
    poller = _poller(config, store)
    result = poller.backfill_target(provider, "src", dev.happened_at, prod.happened_at)
    assert "ok" == result.outcome
    [row] = [r for r in store.list_rows(sink="dash") if r.event.deployment_id == "d2"]
    assert ("d1",) == row.event.parent_deployments

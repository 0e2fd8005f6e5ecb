"""What a poll records in metrics: per-target counters, and a duration histogram per CI system."""

from __future__ import annotations

from tests.engine.builders import ListProvider, make_config, make_event

from deploy_fetcher.config import SourceConfig
from deploy_fetcher.engine import Health, Poller
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import Page


def test_the_duration_histogram_is_per_provider_not_per_source(store, context) -> None:
    """A hundred sources of one CI system share one duration histogram; cycles stay per target."""
    sources = [SourceConfig(name=f"s{i}", provider="list") for i in range(100)]
    config = make_config(sources=sources)
    metrics = Metrics()
    poller = Poller(config, store, metrics, Health())
    for source in sources:
        provider = ListProvider(source, context, [Page([make_event(1)], {"n": 1})])
        poller.run_target(provider, source.name)
    families = {f.name: f for f in metrics.registry.collect()}
    histograms = {
        tuple(sorted(s.labels.items()))
        for s in families["fetcher_poll_cycle_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    cycles = [s for s in families["fetcher_poll_cycles"].samples if s.name.endswith("_total")]
    assert ({(("provider", "list"),)}, 100) == (histograms, len(cycles))

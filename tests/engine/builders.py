"""Builders for engine tests: events, in-memory providers and sinks, configs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from deploy_fetcher.config import FetcherConfig, SinkConfig, SourceConfig
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers import Page, Provider
from deploy_fetcher.sinks import Delivered, Sink, SinkContext

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def make_event(n: int, *, status: str = "success", service: str = "api", env: str = "prod", **kw):
    return DeployEvent(
        deployment_id=f"d{n}",
        service=service,
        environment=env,
        status=status,
        happened_at=T0 + timedelta(seconds=n),
        provider="test",
        source="src",
        **kw,
    )


class ListProvider(Provider):
    """Yields pre-built pages; an Exception instance in the list is raised at that point."""

    name = "list"
    config_model = SourceConfig

    def __init__(self, config, context, pages=()):
        super().__init__(config, context)
        self.pages = list(pages)
        self.cursors_seen: list[object] = []

    def poll(self, target, cursor) -> Iterator[Page]:
        self.cursors_seen.append(cursor)
        for item in self.pages:
            if isinstance(item, BaseException):
                raise item
            yield item

    def backfill(self, target, since, until):
        yield from (p for p in self.pages if isinstance(p, Page))


class ProgrammedSink(Sink):
    """Returns queued outcomes in order (Delivered once they run out) and records what it got."""

    name = "programmed"
    config_model = SinkConfig

    def __init__(self, config, outcomes=()):
        super().__init__(config, SinkContext(metrics=Metrics(), user_agent="test"))
        self.outcomes = list(outcomes)
        self.received: list[DeployEvent] = []

    def send(self, event):
        self.received.append(event)
        outcome = self.outcomes.pop(0) if self.outcomes else Delivered(201)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def make_config(
    *sinks: SinkConfig, sources: list[SourceConfig] | None = None, **kw
) -> FetcherConfig:
    return FetcherConfig(
        sinks=list(sinks) or [SinkConfig(name="dash", type="programmed")],
        sources=sources or [SourceConfig(name="src", provider="list")],
        **kw,
    )

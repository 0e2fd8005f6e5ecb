"""Fixtures for the provider kit's tests: a context whose clock and sleeps the test controls."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.kit import LimitHit, Limits, RequestPolicy

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class FakeTime:
    """A clock that moves only when slept on; every sleep is recorded."""

    now: datetime = START
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=max(seconds, 0.0))
        return True


class TestContext(ProviderContext):
    """The daemon's context on a fake clock; ``hits`` collects the limits the policy reports."""

    __test__ = False

    def __init__(self, time: FakeTime) -> None:
        self.hits: list[LimitHit] = []
        super().__init__(
            metrics=Metrics(),
            defaults=DefaultsConfig(),
            clock=time.clock,
            on_limit=self.hits.append,
        )
        self.time = time

    def sleep(self, seconds: float) -> bool:
        return self.time.sleep(seconds) and not self.stop.is_set()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def context(fake_time: FakeTime) -> TestContext:
    return TestContext(fake_time)


def make_policy(context: ProviderContext, **kwargs) -> RequestPolicy:
    """A policy with a 1 s deadline and a 64 KiB cap unless told otherwise."""
    kwargs.setdefault("limits", Limits(timeout=1.0, max_bytes=64 * 1024))
    return RequestPolicy(provider="test", label="cred", context=context, **kwargs)

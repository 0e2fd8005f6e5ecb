"""Fixtures of the sink tests: a sink context and a catch-all receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy_fetcher.emulators.receiver import ReceiverEmulator
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.sinks import SinkContext

USER_AGENT = "deploy-fetcher/test"


@pytest.fixture
def context() -> SinkContext:
    return SinkContext(metrics=Metrics(), user_agent=USER_AGENT)


@pytest.fixture
def receiver() -> Iterator[ReceiverEmulator]:
    emulator = ReceiverEmulator(status=201)
    emulator.start()
    yield emulator
    emulator.stop()

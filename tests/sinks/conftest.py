from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.emulators.receiver import ReceiverEmulator
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks import SinkContext

API_KEY = "dash-key-0123456789"
USER_AGENT = "deploy-fetcher/test"


@pytest.fixture
def context() -> SinkContext:
    return SinkContext(metrics=Metrics(), user_agent=USER_AGENT)


@pytest.fixture
def make_event() -> Callable[..., DeployEvent]:
    def make(**overrides: Any) -> DeployEvent:
        fields: dict[str, Any] = {
            "deployment_id": "gh-1001",
            "service": "checkout",
            "environment": "prod",
            "status": "success",
            "happened_at": "2026-01-31T12:00:00Z",
            "version": "v1.2.3",
            "run_url": "https://github.com/octo/checkout/actions/runs/1001",
            "run_number": 42,
            "actor": "octocat",
            "ref": "refs/heads/main",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "provider": "github",
            "source": "octo-github",
            "metadata": {"repo": "octo/checkout", "repo_name": "checkout", "branch": "main"},
        }
        fields.update(overrides)
        return DeployEvent(**fields)

    return make


@pytest.fixture
def dashboard() -> Iterator[DashboardEmulator]:
    emulator = DashboardEmulator(api_key=API_KEY)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def receiver() -> Iterator[ReceiverEmulator]:
    emulator = ReceiverEmulator(status=201)
    emulator.start()
    yield emulator
    emulator.stop()

"""Fixtures for the dashboard integration's tests: an emulator with a control key, its sinks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.sinks.dashboard import DashboardConfig

API_KEY = "ctl-ingest-key-1234"
CONTROL_KEY = "ctl-control-key-5678"


@pytest.fixture
def dashboard() -> Iterator[DashboardEmulator]:
    emulator = DashboardEmulator(api_key=API_KEY, control_api_key=CONTROL_KEY, ping_interval=0.2)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def sink_config(dashboard: DashboardEmulator) -> Callable[..., DashboardConfig]:
    """A dashboard sink config for the emulator; keyword arguments go into its control section."""

    def _make(*, api_key: str = API_KEY, **control: Any) -> DashboardConfig:
        section = {
            "api_key": CONTROL_KEY,
            "reconnect_initial": "50ms",
            "reconnect_max": "500ms",
            "idle_timeout": "5s",
            "report_interval": "0s",
        } | control
        return DashboardConfig.model_validate(
            {
                "name": "dash",
                "type": "deployment-dashboard",
                "url": dashboard.url(),
                "api_key": api_key,
                "timeout": "2s",
                "control": section,
            }
        )

    return _make

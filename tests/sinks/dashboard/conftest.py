"""Fixtures for the dashboard integration's tests: sink configs for the suite's dashboard emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tests.support import DASHBOARD_CONTROL_KEY, DASHBOARD_KEY

from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.sinks.dashboard import DashboardConfig


@pytest.fixture
def sink_config(dashboard: DashboardEmulator) -> Callable[..., DashboardConfig]:
    """A dashboard sink config for the emulator; keyword arguments go into its control section."""

    def _make(*, api_key: str = DASHBOARD_KEY, **control: Any) -> DashboardConfig:
        section = {
            "api_key": DASHBOARD_CONTROL_KEY,
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

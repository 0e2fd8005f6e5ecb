"""Fixtures of the emulator tests: a client of the suite's dashboard emulator."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from deploy_fetcher.emulators.dashboard import DashboardEmulator


@pytest.fixture
def client(dashboard: DashboardEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard.url(), timeout=5.0) as client:
        yield client

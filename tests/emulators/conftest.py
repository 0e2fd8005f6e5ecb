from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from deploy_fetcher.emulators.dashboard import DashboardEmulator

KEY = "emu-ingest-key-1234"
CONTROL_KEY = "emu-control-key-5678"


@pytest.fixture
def dashboard() -> Iterator[DashboardEmulator]:
    emulator = DashboardEmulator(api_key=KEY, control_api_key=CONTROL_KEY, ping_interval=0.2)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def client(dashboard: DashboardEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard.url(), timeout=5.0) as client:
        yield client

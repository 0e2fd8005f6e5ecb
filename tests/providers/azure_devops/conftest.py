"""Fixtures for the Azure DevOps adapter tests: an emulator on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.providers.azure_devops.support import START, TOKEN, make_provider

from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator
from deploy_fetcher.providers.azure_devops import AzureDevOpsProvider


@pytest.fixture
def emulator() -> Iterator[AzureDevOpsEmulator]:
    """An emulator with environments and one pipeline, no history, nothing happening by itself."""
    server = AzureDevOpsEmulator(token=TOKEN, scenario="empty", seed=7, start=START)
    with server:
        yield server


@pytest.fixture
def providers(emulator: AzureDevOpsEmulator) -> Iterator[Callable[..., AzureDevOpsProvider]]:
    """Build providers pointed at the emulator; their HTTP sessions are closed after the test."""
    made: list[AzureDevOpsProvider] = []

    def make(**overrides: Any) -> AzureDevOpsProvider:
        provider = make_provider(emulator, **overrides)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()
        provider.context.shared.close()

"""Helpers for the Azure DevOps tests: fixtures on disk, provider builders, a poll harness."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support import SleepRecorder

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.azure_devops import AzureDevOpsConfig, AzureDevOpsProvider
from deploy_fetcher.providers.azure_devops.mapping import Naming

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TOKEN = "ado-pat-0123456789abcdefghijklmnop"
FIXTURES = Path(__file__).parent / "fixtures"

NAMING = Naming(
    source="ado",
    organization="contoso",
    organization_url="https://dev.azure.com/contoso",
    project="shop",
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def summary(event: DeployEvent) -> tuple[Any, ...]:
    """The fields a snapshot compares, in a readable order."""
    return (
        event.deployment_id,
        event.service,
        event.environment,
        event.status.value,
        event.happened_at.strftime("%H:%M:%S.%f")[:-3],
    )


def make_context(
    emulator: AzureDevOpsEmulator, sleeps: SleepRecorder | None = None
) -> ProviderContext:
    sleeps = sleeps or SleepRecorder()
    context = ProviderContext(
        metrics=Metrics(),
        defaults=DefaultsConfig(lookback=timedelta(days=2), overlap=timedelta(minutes=5)),
        clock=sleeps.clock(emulator.now),
    )
    context.sleep = sleeps  # type: ignore[method-assign]
    return context


def make_config(emulator: AzureDevOpsEmulator, **overrides: Any) -> AzureDevOpsConfig:
    data: dict[str, Any] = {
        "name": "ado",
        "provider": "azure-devops",
        "organization_url": emulator.organization_url,
        "release_url": emulator.release_url,
        "projects": ["shop"],
        "pat": TOKEN,
    }
    data.update(overrides)
    return AzureDevOpsConfig.model_validate(data)


def make_provider(
    emulator: AzureDevOpsEmulator, *, context: ProviderContext | None = None, **overrides: Any
) -> AzureDevOpsProvider:
    return AzureDevOpsProvider(
        make_config(emulator, **overrides), context or make_context(emulator)
    )


class Harness:
    """Drives polls like the engine does: the last cursor per target, dedup like the store."""

    def __init__(self, provider: AzureDevOpsProvider, target: str = "shop") -> None:
        self.provider = provider
        self.target = target
        self.cursor: dict[str, Any] | None = None
        self.seen: dict[tuple[str, str, str], DeployEvent] = {}
        self.emitted = 0
        self.last_raw: list[DeployEvent] = []

    def cycle(self) -> list[DeployEvent]:
        """One poll; returns the events not seen before."""
        new: list[DeployEvent] = []
        self.last_raw = []
        for page in self.provider.poll(self.target, self.cursor):
            self.last_raw += page.events
            for event in page.events:
                self.emitted += 1
                if event.dedup_key not in self.seen:
                    self.seen[event.dedup_key] = event
                    new.append(event)
            if page.cursor is not None:
                self.cursor = page.cursor
        return new

    def restart(self, provider: AzureDevOpsProvider) -> None:
        """A new provider instance continuing from the stored cursor (the daemon restarted)."""
        self.provider = provider

    def statuses(self, deployment_id: str) -> list[str]:
        """The statuses one deployment went through, in time order."""
        events = sorted(
            (e for e in self.seen.values() if e.deployment_id == deployment_id),
            key=lambda e: e.happened_at,
        )
        return [e.status.value for e in events]


def busy(emulator: AzureDevOpsEmulator) -> None:
    """New runs and releases every few minutes, with failures, rejections and cancellations."""
    scenario = emulator.scenario
    scenario.cadence = 400.0
    scenario.release_cadence = 700.0
    scenario.reject_rate = 0.3
    scenario.failure_rate = 0.2
    scenario.cancel_rate = 0.1
    emulator.advance(0)

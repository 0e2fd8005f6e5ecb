"""Helpers for the GitLab tests: provider builders and a poll harness that dedups like the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import SleepRecorder

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.gitlab import GitLabProvider, GitLabSourceConfig

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TOKEN = "glpat-test-token-0123456789"


def make_context(emulator: GitLabEmulator, sleeps: SleepRecorder | None = None) -> ProviderContext:
    slept = sleeps or SleepRecorder()
    context = ProviderContext(
        metrics=Metrics(),
        defaults=DefaultsConfig(lookback=timedelta(days=7), overlap=timedelta(minutes=5)),
        clock=lambda: emulator.now + slept.elapsed(),
    )
    if sleeps is not None:
        context.sleep = sleeps  # type: ignore[method-assign]
    return context


def make_provider(
    emulator: GitLabEmulator,
    *,
    context: ProviderContext | None = None,
    prefix: str = "",
    **overrides: Any,
) -> GitLabProvider:
    data: dict[str, Any] = {
        "name": "gl",
        "provider": "gitlab",
        "url": emulator.url(prefix),
        "token": TOKEN,
        "projects": ["acme/api"],
        "max_rate_limit_wait": "5s",
    }
    data.update(overrides)
    config = GitLabSourceConfig.model_validate(data)
    return GitLabProvider(config, context or make_context(emulator, SleepRecorder()))


class Harness:
    """Drives polls like the engine does: stored cursor per target, dedup like the store."""

    def __init__(self, provider: GitLabProvider) -> None:
        self.provider = provider
        self.cursors: dict[str, Any] = {}
        self.seen: dict[tuple[str, str, str], DeployEvent] = {}
        #: Every event the last cycle yielded, repeats included.
        self.emitted: list[DeployEvent] = []

    def cycle(self, *targets: str) -> list[DeployEvent]:
        """One poll of each target; returns the events not seen before."""
        new: list[DeployEvent] = []
        self.emitted = []
        for target in targets or tuple(self.provider.targets()):
            for page in self.provider.poll(target, self.cursors.get(target)):
                self.emitted.extend(page.events)
                for event in page.events:
                    if event.dedup_key not in self.seen:
                        self.seen[event.dedup_key] = event
                        new.append(event)
                if page.cursor is not None:
                    self.cursors[target] = page.cursor
        return new

    def statuses(self, deployment_id: str) -> list[str]:
        """The statuses seen for one deployment, in time order."""
        events = sorted(
            (e for e in self.seen.values() if e.deployment_id == deployment_id),
            key=lambda e: (e.happened_at, e.status.value),
        )
        return [e.status.value for e in events]

"""Fixtures for the GitHub adapter tests: emulators on 127.0.0.1 and providers wired to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.providers.github.support import EmulatorContext

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.github import GitHubConfig, GitHubProvider


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., GitHubEmulator]]:
    """Start emulators (scenario ``empty`` unless told otherwise); all stopped at the end."""
    started: list[GitHubEmulator] = []

    def make(**kwargs: Any) -> GitHubEmulator:
        kwargs.setdefault("scenario", "empty")
        emulator = GitHubEmulator(**kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., GitHubEmulator]) -> GitHubEmulator:
    """An empty emulator."""
    return make_emulator()


@pytest.fixture
def make_provider() -> Iterator[Callable[..., tuple[GitHubProvider, EmulatorContext]]]:
    """Build a provider against an emulator; its clock is the emulator's, its sleeps advance it."""
    contexts: list[ProviderContext] = []

    def make(
        emulator: GitHubEmulator,
        *,
        context: EmulatorContext | None = None,
        base_url: str | None = None,
        **config: Any,
    ) -> tuple[GitHubProvider, EmulatorContext]:
        config.setdefault("name", "gh")
        config.setdefault("provider", "github")
        if "app" not in config:
            config.setdefault("token", "emulator-token")
        config.setdefault("base_url", base_url or emulator.url())
        config.setdefault("repos", ["octo/api"])
        ctx = context or EmulatorContext(emulator, metrics=Metrics(), defaults=DefaultsConfig())
        contexts.append(ctx)
        return GitHubProvider(GitHubConfig.model_validate(config), ctx), ctx

    yield make
    for ctx in contexts:
        ctx.shared.close()

"""Small plugin models and resolvers, so the loader is tested without the real provider packages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy_fetcher.config import (
    FetcherConfig,
    SecretStr,
    Section,
    SinkConfig,
    SourceConfig,
    Url,
    load_config,
)
from deploy_fetcher.errors import ConfigError, PluginError


class App(Section):
    """A nested section holding a secret, like a GitHub App's credentials."""

    app_id: int
    private_key: SecretStr


class RepoSource(SourceConfig):
    """A provider entry shaped like the GitHub one."""

    repos: list[str]
    token: SecretStr | None = None
    app: App | None = None
    url: Url = "https://api.example.test"


class HookSink(SinkConfig):
    """A sink entry shaped like the webhook one."""

    url: Url
    token: SecretStr | None = None


@dataclass(frozen=True)
class Plugin:
    config_model: Any


PROVIDERS = {"repo": Plugin(RepoSource)}
SINKS = {"hook": Plugin(HookSink)}


def provider_resolver(name: str) -> Plugin:
    if name not in PROVIDERS:
        raise PluginError(f"unknown provider {name!r} (installed: {', '.join(PROVIDERS)})")
    return PROVIDERS[name]


def sink_resolver(name: str) -> Plugin:
    if name not in SINKS:
        raise PluginError(f"unknown sink type {name!r} (installed: {', '.join(SINKS)})")
    return SINKS[name]


class Loader:
    """Writes a configuration file and loads it with the test plugins and a given environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.path = tmp_path / "fetcher.yaml"

    def write(self, text: str) -> Path:
        self.path.write_text(text, encoding="utf-8")
        return self.path

    def __call__(self, text: str, **environ: str) -> FetcherConfig:
        return load_config(
            self.write(text),
            environ=environ,
            provider_resolver=provider_resolver,
            sink_resolver=sink_resolver,
        )

    def error(self, text: str, **environ: str) -> ConfigError:
        with pytest.raises(ConfigError) as caught:
            self(text, **environ)
        return caught.value


@pytest.fixture
def load(tmp_path: Path) -> Loader:
    return Loader(tmp_path)


@pytest.fixture
def plugin_models() -> tuple[type[RepoSource], type[HookSink]]:
    """The source and sink models the test resolvers hand out."""
    return RepoSource, HookSink


@pytest.fixture(scope="session")
def resolvers() -> dict[str, Any]:
    """The test resolvers as keyword arguments of load_config / parse_config."""
    return {"provider_resolver": provider_resolver, "sink_resolver": sink_resolver}

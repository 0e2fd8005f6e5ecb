"""Loading provider and sink plugins through entry points.

A third party adds a provider by publishing a package with an entry point in the
``deploy_fetcher.providers`` group (``deploy_fetcher.sinks`` for a sink) naming its class; nothing in
the core changes.

The configuration loader validates each ``sources[]`` / ``sinks[]`` entry with its plugin's model,
but sits below the plugins: it takes resolvers. :func:`load_config` and :func:`parse_config` here
are the loader with the installed plugins, the way the CLI and the daemon read their file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from deploy_fetcher import config
from deploy_fetcher.errors import PluginError
from deploy_fetcher.providers import Provider
from deploy_fetcher.sinks import Sink

__all__ = [
    "available_providers",
    "available_sinks",
    "load_config",
    "load_provider",
    "load_sink",
    "parse_config",
]

PROVIDER_GROUP = "deploy_fetcher.providers"
SINK_GROUP = "deploy_fetcher.sinks"

T = TypeVar("T", bound=type)


def _names(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=group)})


def available_providers() -> list[str]:
    """Names of every installed provider."""
    return _names(PROVIDER_GROUP)


def available_sinks() -> list[str]:
    """Names of every installed sink type."""
    return _names(SINK_GROUP)


def _load(group: str, name: str, base: T, what: str) -> T:
    matches = [ep for ep in entry_points(group=group) if ep.name == name]
    if not matches:
        known = ", ".join(_names(group)) or "none"
        raise PluginError(f"unknown {what} {name!r} (installed: {known})")
    try:
        loaded = matches[0].load()
    except Exception as exc:
        raise PluginError(f"{what} {name!r} failed to load: {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, base)):
        raise PluginError(f"{what} {name!r} is not a {base.__name__} subclass")
    return loaded  # type: ignore[return-value]


@cache
def load_provider(name: str) -> type[Provider]:
    """The provider class registered under ``name``."""
    return _load(PROVIDER_GROUP, name, Provider, "provider")


@cache
def load_sink(name: str) -> type[Sink]:
    """The sink class registered under ``name``."""
    return _load(SINK_GROUP, name, Sink, "sink type")


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    sources: Collection[str] | None = None,
) -> config.FetcherConfig:
    """:func:`deploy_fetcher.config.load_config` with the installed plugins' models."""
    return config.load_config(
        path,
        environ=environ,
        provider_resolver=load_provider,
        sink_resolver=load_sink,
        sources=sources,
    )


def parse_config(
    text: str, *, file: str = "<string>", environ: Mapping[str, str] | None = None
) -> config.FetcherConfig:
    """:func:`deploy_fetcher.config.parse_config` with the installed plugins' models."""
    return config.parse_config(
        text, file=file, environ=environ, provider_resolver=load_provider, sink_resolver=load_sink
    )


def config_schema() -> dict[str, Any]:
    """The configuration's JSON Schema with the installed providers' and sinks' models."""
    return config.json_schema(
        {name: load_provider(name).config_model for name in available_providers()},
        {name: load_sink(name).config_model for name in available_sinks()},
    )

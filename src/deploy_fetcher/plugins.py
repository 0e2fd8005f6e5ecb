"""Loading provider and sink plugins through entry points.

A third party adds a provider by publishing a package with an entry point in the
``deploy_fetcher.providers`` group (``deploy_fetcher.sinks`` for a sink) naming its class; nothing in
the core changes.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TypeVar

from deploy_fetcher.errors import PluginError
from deploy_fetcher.providers import Provider
from deploy_fetcher.sinks import Sink

__all__ = ["available_providers", "available_sinks", "load_provider", "load_sink"]

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

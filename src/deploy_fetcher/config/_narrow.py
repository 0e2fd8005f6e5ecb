"""A plugin's own config model, from the entry the core hands it."""

from __future__ import annotations

from typing import TypeVar

from deploy_fetcher.config._models import SinkConfig, SourceConfig
from deploy_fetcher.errors import PluginError

__all__ = ["settings_of"]

C = TypeVar("C", bound=SourceConfig | SinkConfig)


def settings_of(config: SourceConfig | SinkConfig, model: type[C]) -> C:
    """``config`` as ``model``; PluginError naming both models when it is another one.

    The loader validates each entry with its plugin's model, so a mismatch is a wiring mistake (a
    plugin built by hand with another plugin's entry): every provider and sink fails the same way.
    """
    if not isinstance(config, model):
        kind = "sink" if isinstance(config, SinkConfig) else "source"
        msg = f"a {model.__name__} is needed, got {type(config).__name__} ({kind} {config.name!r})"
        raise PluginError(msg)
    return config

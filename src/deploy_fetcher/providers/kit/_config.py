"""The keys of sources that keep an open set (items re-checked every cycle until they end)."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from pydantic import Field

from deploy_fetcher.config import Duration, Section, SourceConfig
from deploy_fetcher.errors import PluginError

__all__ = ["OpenSetKeys", "settings_of"]

C = TypeVar("C", bound=SourceConfig)


class OpenSetKeys(Section):
    """Bounds of the open set: a provider mixes these keys into its config model."""

    open_max: int = Field(default=500, ge=1)
    """Most non-terminal items re-checked per target; the oldest are dropped (and logged) beyond it."""
    open_max_age: Duration = timedelta(days=3)
    """A non-terminal item tracked longer than this is dropped from the open set (and logged)."""


def settings_of(config: SourceConfig, model: type[C]) -> C:
    """``config`` as the provider's own model; PluginError when the core handed it another one."""
    if not isinstance(config, model):
        msg = f"a {model.__name__} is needed, got {type(config).__name__} (source {config.name!r})"
        raise PluginError(msg)
    return config

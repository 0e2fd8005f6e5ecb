"""The keys of sources that keep an open set (items re-checked every cycle until they end)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from deploy_fetcher.config import Duration, Section, settings_of

__all__ = ["OpenSetKeys", "settings_of"]


class OpenSetKeys(Section):
    """Bounds of the open set: a provider mixes these keys into its config model."""

    open_max: int = Field(default=500, ge=1)
    """Most non-terminal items re-checked per target; the oldest are dropped (and logged) beyond it."""
    open_max_age: Duration = timedelta(days=3)
    """A non-terminal item tracked longer than this is dropped from the open set (and logged)."""

"""A provider for tests only: the ``scripted`` replay, plus lines that make a poll fail.

A line ``{"raise": "auth" | "transient" | "not_found" | "rate_limited"}`` makes the poll that
reaches it fail with that error class, once per process: how the tests make a source fail and
recover. It is registered (``scripted-faults``) by the suite's own distribution in
``tests/plugins/registry``, which the ``test_plugins`` fixture puts on the path for the tests that
use it: the production entry points never offer it.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from deploy_fetcher.config import SourceConfig
from deploy_fetcher.errors import (
    AuthError,
    RateLimited,
    SourceError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers.scripted import ScriptedProvider, ScriptedSource

ERRORS: dict[str, type[SourceError]] = {
    "auth": AuthError,
    "transient": TransientError,
    "not_found": TargetNotFound,
    "rate_limited": RateLimited,
}


class ScriptedFaultsSource(ScriptedSource):
    """A scripted source whose script may hold fault lines."""

    provider: Literal["scripted-faults"] = "scripted-faults"  # type: ignore[assignment]


class ScriptedFaultsProvider(ScriptedProvider):
    """The scripted provider, failing where its script says so."""

    name: ClassVar[str] = "scripted-faults"
    config_model: ClassVar[type[SourceConfig]] = ScriptedFaultsSource

    def __init__(self, config: SourceConfig, context: Any) -> None:
        super().__init__(config, context)
        self._raised: set[int] = set()

    def _parse(self, index: int, line: str) -> DeployEvent | None:
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "raise" in data:
            if index in self._raised:
                return None
            self._raised.add(index)
            kind = ERRORS.get(str(data["raise"]), TransientError)
            raise kind(f"scripted failure at line {index + 1}")
        return super()._parse(index, line)

"""Which events a sink wants, under which names: its ``include`` / ``exclude`` filters and renames.

The engine calls :func:`select` when it fans a page out to the sinks, so an event a sink does not want
never enters that sink's outbox, and the outbox holds each event exactly as that sink will send it.

Filters see the canonical names (what the global rules produced); renames come last and translate into
the destination's vocabulary (Cloudlink wants ``Amazon ECS``, not ``checkout``). The filter semantics
are those of the global rules: ``include`` keeps an event when every criterion it sets matches,
``exclude`` drops an event when every criterion it sets matches; an empty criterion matches anything.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Final

import structlog

from deploy_fetcher.config import SinkConfig
from deploy_fetcher.model import DeployEvent

__all__ = ["rename", "select"]

_log = structlog.get_logger(__name__)
_GLOB_CHARS: Final = frozenset("*?[")
_LIMITS: Final = {"service": 128, "environment": 64}


def rename(table: Mapping[str, str], value: str) -> str:
    """Look a name up: an exact key first, then the first glob key (in file order) that matches it."""
    if value in table:
        return table[value]
    for pattern, target in table.items():
        if _GLOB_CHARS.intersection(pattern) and fnmatch.fnmatchcase(value, pattern):
            return target
    return value


def _renamed(field: str, table: Mapping[str, str], value: str) -> str:
    target = rename(table, value).strip()
    if not target:
        _log.warning("sink.rename_empty", field=field, name=value)
        return value
    limit = _LIMITS[field]
    if len(target) > limit:
        _log.warning("sink.rename_truncated", field=field, name=target, limit=limit)
        target = target[:limit]
    return target


def select(config: SinkConfig, event: DeployEvent) -> DeployEvent | None:
    """The event as this sink should receive it, or None when its filters leave it out."""
    if config.include is not None and not config.include.matches(event):
        return None
    if config.exclude is not None and config.exclude.excludes(event):
        return None
    service = _renamed("service", config.rename.get("services", {}), event.service)
    environment = _renamed("environment", config.rename.get("environments", {}), event.environment)
    if (service, environment) == (event.service, event.environment):
        return event
    return event.model_copy(update={"service": service, "environment": environment})

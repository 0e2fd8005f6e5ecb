"""A short fingerprint of what a source reads, for adapters to keep in their cursor.

When an admin widens a source (a new environment filter, another workflow), the stored cursor no
longer covers the new scope: deployments older than the high-water mark would never be read. An
adapter that stores :func:`config_digest` in its cursor notices the change on the next poll and starts
that target again from ``now - lookback``. Keys that do not change what is read (interval, jitter,
the sinks fed, …: ``SourceConfig.unscoped_keys``) and secrets (a rotated token is the same scope)
are left out, so editing them does not cost a re-read.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from pydantic import BaseModel

from deploy_fetcher.config._models import SourceConfig
from deploy_fetcher.config._types import is_secret_annotation

__all__ = ["DIGEST_LENGTH", "config_digest"]

#: Hex characters kept: collisions between two configurations of one source are what matters.
DIGEST_LENGTH: Final = 12


def _scope(model: BaseModel, skip: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        if name in skip or is_secret_annotation(field.annotation):
            continue
        out[name] = _plain(getattr(model, name))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _scope(value, frozenset())
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def config_digest(source: SourceConfig) -> str:
    """A short stable hash of the scope-relevant keys of ``source``.

    Stable across processes and versions of this function's callers: the keys are serialised as
    sorted JSON, values the JSON cannot hold (paths, durations, enums) as their text.
    """
    scope = _scope(source, type(source).unscoped_keys)
    text = json.dumps(scope, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]

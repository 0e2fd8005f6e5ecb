"""The validated configuration tree.

Every section forbids unknown keys (a typo must fail at start-up, not be ignored for months). Sources
and sinks are polymorphic: the core models below hold what every source or sink shares, and each
provider/sink plugin subclasses them with its own keys (``repos`` for GitHub, ``url`` for a webhook…).
The loader picks the subclass from the entry's ``provider`` / ``type`` key.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    field_validator,
    model_validator,
)

from deploy_fetcher.config._types import Duration
from deploy_fetcher.model import Status

__all__ = [
    "Defaults",
    "FetcherConfig",
    "Filter",
    "LogConfig",
    "NameRule",
    "RulesConfig",
    "Section",
    "ServerConfig",
    "SinkConfig",
    "SourceConfig",
    "StateConfig",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Section(BaseModel):
    """Base of every config model: strict keys, immutable, and ``<secret>_file`` support.

    A ``SecretStr`` field ``token`` may instead be given as ``token_file: /run/secrets/gh`` (Docker and
    Kubernetes secrets); the file's content, stripped of surrounding whitespace, becomes the value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key in list(out):
            if not (isinstance(key, str) and key.endswith("_file")):
                continue
            target = key.removesuffix("_file")
            field = cls.model_fields.get(target)
            if field is None or "SecretStr" not in repr(field.annotation):
                continue
            if out.get(target) not in (None, ""):
                msg = f"give either {target} or {key}, not both"
                raise ValueError(msg)
            raw = out.pop(key)
            try:
                out[target] = Path(str(raw)).read_text(encoding="utf-8").strip()
            except OSError as exc:
                msg = f"cannot read {key} {raw!r}: {exc.strerror or exc}"
                raise ValueError(msg) from None
        return out


class StateConfig(Section):
    """Where cursors and the outbox live."""

    backend: Literal["sqlite"] = "sqlite"
    path: Path = Path("fetcher-state.db")
    #: How long delivered rows are kept as the dedup ledger before they are pruned.
    delivered_retention: Duration = timedelta(days=30)


class ServerConfig(Section):
    """The health and metrics HTTP server."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class LogConfig(Section):
    """Logging: JSON lines when not on a TTY, human-readable otherwise."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Defaults(Section):
    """Polling defaults every source inherits unless it sets its own."""

    interval: Duration = timedelta(seconds=60)
    jitter: Duration = timedelta(seconds=10)
    #: Where the very first poll of a source starts (never at the repository's genesis).
    lookback: Duration = timedelta(days=7)
    #: How far behind its high-water mark each poll re-reads (clock skew, eventual consistency).
    overlap: Duration = timedelta(minutes=5)
    #: How often wildcard targets (``owner/*``, ``group/*``) are listed again.
    discovery_interval: Duration = timedelta(hours=1)
    #: HTTP timeout for calls to CI systems.
    timeout: Duration = timedelta(seconds=30)

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            msg = "interval must be at least 1s"
            raise ValueError(msg)
        return value


class Filter(Section):
    """Glob patterns (``fnmatch``, case-sensitive); an empty list matches everything."""

    services: list[str] = []
    environments: list[str] = []
    statuses: list[Status] = []


class NameRule(Section):
    """How a service or environment name is rewritten.

    ``rename`` maps exact names; ``template`` (applied after the rename) is a ``str.format`` string
    over the event's fields and metadata, e.g. ``"{repo_name}-{service}"``.
    """

    rename: dict[str, str] = {}
    template: str | None = None


class RulesConfig(Section):
    """Provider-agnostic mapping rules, applied to every event before it reaches the outbox."""

    service: NameRule = NameRule()
    environment: NameRule = NameRule()
    include: Filter | None = None
    exclude: Filter | None = None
    #: Promotion order per service pattern, e.g. ``{"*": ["dev", "staging", "prod"]}``: when an
    #: adapter gives no parents, the latest successful deployment of the same service and sha in the
    #: previous environment becomes the parent.
    promotion: dict[str, list[str]] = {}


class SourceConfig(Section):
    """What every configured source shares; providers subclass it with their own keys."""

    name: str
    provider: str
    enabled: bool = True
    interval: Duration | None = None
    jitter: Duration | None = None
    lookback: Duration | None = None
    overlap: Duration | None = None
    #: Names of the sinks this source feeds; all sinks when absent.
    sinks: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            msg = "must be 1-64 characters of letters, digits, '_', '.', '-'"
            raise ValueError(msg)
        return value


class SinkConfig(Section):
    """What every configured sink shares; sinks subclass it with their own keys."""

    name: str
    type: str
    enabled: bool = True
    include: Filter | None = None
    exclude: Filter | None = None
    #: Per-sink renames of service / environment names.
    rename: dict[Literal["services", "environments"], dict[str, str]] = {}
    timeout: Duration = timedelta(seconds=10)
    #: Attempts before a retryable failure is dead-lettered; absent = retry until it succeeds.
    max_attempts: int | None = Field(default=None, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            msg = "must be 1-64 characters of letters, digits, '_', '.', '-'"
            raise ValueError(msg)
        return value


class FetcherConfig(Section):
    """The whole validated configuration."""

    state: StateConfig = StateConfig()
    server: ServerConfig = ServerConfig()
    log: LogConfig = LogConfig()
    defaults: Defaults = Defaults()
    rules: RulesConfig = RulesConfig()
    sinks: list[SerializeAsAny[SinkConfig]] = []
    sources: list[SerializeAsAny[SourceConfig]] = []

    def source(self, name: str) -> SourceConfig:
        """Return the source called ``name`` (KeyError when there is none)."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def sink_names_for(self, source: SourceConfig) -> list[str]:
        """Names of the enabled sinks a source feeds."""
        enabled = [sink.name for sink in self.sinks if sink.enabled]
        if source.sinks is None:
            return enabled
        return [name for name in source.sinks if name in enabled]

    def effective(self, source: SourceConfig, key: str) -> timedelta:
        """A source's own interval/jitter/lookback/overlap, or the default."""
        value = getattr(source, key)
        return value if value is not None else getattr(self.defaults, key)  # type: ignore[no-any-return]

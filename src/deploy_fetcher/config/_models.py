"""The validated configuration tree.

Every section forbids unknown keys (a typo must fail at start-up, not be ignored for months). Sources
and sinks are polymorphic: the core models below hold what every source or sink shares, and each
provider/sink plugin subclasses them with its own keys (``repos`` for GitHub, ``url`` for a webhook…).
The loader picks the subclass from the entry's ``provider`` / ``type`` key.

Field docstrings are the field descriptions (``use_attribute_docstrings``): the configuration
reference in ``docs/configuration.md`` is generated from them.

Validators that find problems below their own level (a duplicate name in ``sources[3].name``) raise a
``config_problems`` error whose context carries each problem's location relative to the model, so the
loader can report every one of them at its own YAML path.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import string
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    SerializeAsAny,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from deploy_fetcher.config._problems import Loc, Problem, format_path
from deploy_fetcher.config._types import Duration, check_postgres_url, is_secret_annotation
from deploy_fetcher.model import DeployEvent, Status

__all__ = [
    "DASHBOARD_SINK_TYPE",
    "MAX_SECRET_FILE_BYTES",
    "DefaultsConfig",
    "FetcherConfig",
    "Filter",
    "HttpSourceConfig",
    "LogConfig",
    "NameRule",
    "NudgesConfig",
    "RulesConfig",
    "Section",
    "ServerConfig",
    "SinkConfig",
    "SourceConfig",
    "StateConfig",
    "config_problems",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: The sink type whose dashboard can hold the cursors (``state.backend: dashboard``).
DASHBOARD_SINK_TYPE: Final = "deployment-dashboard"

#: A secret file larger than this is certainly not a token or a key: most likely a wrong path.
MAX_SECRET_FILE_BYTES: Final = 64 * 1024


def config_problems(problems: list[tuple[Loc, str]]) -> PydanticCustomError:
    """An error carrying several problems, each at a location relative to the validated model."""
    summary = "; ".join(f"{format_path(loc)}: {message}" for loc, message in problems)
    return PydanticCustomError(
        "config_problems", "{summary}", {"summary": summary, "problems": tuple(problems)}
    )


def _secret_file_error(key: str, message: str, **context: str) -> PydanticCustomError:
    # The loader reports ``secret_file`` errors at ``<model path>.<key>``, i.e. at the ``_file`` key.
    return PydanticCustomError("secret_file", message, {"key": key, **context})


def _read_secret_file(key: str, raw: object) -> str:
    if not isinstance(raw, str | Path) or not str(raw).strip():
        raise _secret_file_error(key, "must be the path of a file holding the secret")
    path = str(raw)
    try:
        # Non-blocking open, then a regular file only: a FIFO (or a device) would block the read
        # until some writer shows up, and ``fetcher check`` would hang with it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            regular = stat.S_ISREG(os.fstat(handle.fileno()).st_mode)
            data = handle.read(MAX_SECRET_FILE_BYTES + 1) if regular else b""
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _secret_file_error(
            key, "cannot read {file}: {reason}", file=path, reason=reason
        ) from None
    except ValueError:  # an embedded NUL byte in the path
        raise _secret_file_error(key, "not a usable file path") from None
    if not regular:
        raise _secret_file_error(
            key, "{file} is not a regular file (a pipe or a device?)", file=path
        )
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise _secret_file_error(
            key,
            "{file} is larger than {limit} KiB, which no token or key is",
            file=path,
            limit=str(MAX_SECRET_FILE_BYTES // 1024),
        )
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise _secret_file_error(key, "{file} is not UTF-8 text", file=path) from None
    if not text:
        raise _secret_file_error(key, "{file} is empty", file=path)
    return text


class Section(BaseModel):
    """Base of every config model: strict keys, immutable, and ``<secret>_file`` support.

    A ``SecretStr`` field ``token`` may instead be given as ``token_file: /run/secrets/gh`` (Docker and
    Kubernetes secrets); the file's content, stripped of surrounding whitespace, becomes the value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    #: Old key → the key that replaced it, still taken for now: its value moves to the new key
    #: (the loader warns, naming the new key); an old key set to null is ignored; both keys at
    #: once is an error at the old key's path.
    deprecated_keys: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _deprecated_keys(cls, data: Any) -> Any:
        if not cls.deprecated_keys or not isinstance(data, dict):
            return data
        out = dict(data)
        problems: list[tuple[Loc, str]] = []
        for old, new in cls.deprecated_keys.items():
            if old not in out:
                continue
            if new in out:
                problems.append(((old,), f"give {new} only ({old} is its deprecated old name)"))
                continue
            value = out.pop(old)
            if value is not None:
                out[new] = value
        if problems:
            raise config_problems(problems)
        return out

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
            if field is None or not is_secret_annotation(field.annotation):
                continue
            if out.get(target) not in (None, ""):
                raise _secret_file_error(
                    key, "give either {target} or {key}, not both", target=target
                )
            out[target] = _read_secret_file(key, out.pop(key))
        return out


class StateConfig(Section):
    """Where cursors and the outbox live.

    ``backend: postgres`` keeps them in a PostgreSQL database, which several replicas can share.
    ``backend: dashboard`` keeps the cursors in the Deployment Dashboard itself, for a fetcher run
    without a volume: the outbox then lives in a temporary file for the life of the process, and a
    cursor is written to the dashboard only once every event it covers has been delivered.
    """

    backend: Literal["sqlite", "postgres", "dashboard"] = "sqlite"
    """Storage engine of the state store: ``sqlite`` (a file at ``path``), ``postgres`` (the database at ``url``) or ``dashboard``."""
    path: Path = Path("fetcher-state.db")
    """The SQLite file (created on first start); a relative path is resolved against the configuration file's directory (against the working directory when it comes from ``FETCHER_STATE__PATH``); only used by the ``sqlite`` backend."""
    url: SecretStr | None = None
    """With ``backend: postgres``: the database's URL, ``postgresql://user:password@host:5432/dbname`` (a secret: use ``${VAR}`` or ``url_file``; the password may instead come from ``PGPASSWORD`` or ``~/.pgpass``). Several hosts, tried in turn as libpq does, are written ``host-1:5432,host-2:5432`` (add ``?target_session_attrs=read-write`` to reach the primary)."""
    pool_size: int = Field(default=10, ge=2, le=100)
    """With ``backend: postgres``: the most connections one process opens (polls, deliveries and housekeeping share them)."""
    lease_ttl: Duration = timedelta(seconds=30)
    """With ``backend: postgres``: how long a replica's hold on a target or sink lasts unless renewed (every third of it); a replica that dies or hangs has its work taken over within about this time."""
    delivered_retention: Duration = timedelta(days=30)
    """How long delivered rows are kept as the dedup ledger before they are pruned."""
    dashboard_sink: str | None = None
    """With ``backend: dashboard``: the name of the ``deployment-dashboard`` sink whose dashboard (URL, API key) stores the cursors."""
    dashboard_slot: str = "deploy-fetcher"
    """With ``backend: dashboard``: the name of the dashboard's state slot (``/api/fetcher/state/<slot>``); give each fetcher sharing one dashboard its own."""

    @field_validator("lease_ttl")
    @classmethod
    def _lease_ttl_bounds(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            msg = "must be between 1s and 1h"
            raise ValueError(msg)
        return value

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_postgres_url(value.get_secret_value())
        return value

    @field_validator("dashboard_slot")
    @classmethod
    def _slot_name(cls, value: str) -> str:
        if not _NAME.match(value):
            msg = "must be 1-64 characters of letters, digits, '_', '.', '-'"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _dashboard_sink_matches_backend(self) -> StateConfig:
        if self.backend == "dashboard" and self.dashboard_sink is None:
            raise config_problems(
                [
                    (
                        ("dashboard_sink",),
                        "backend dashboard needs the name of a deployment-dashboard sink",
                    )
                ]
            )
        if self.backend == "postgres" and self.url is None:
            raise config_problems(
                [(("url",), "backend postgres needs the database URL (url or url_file)")]
            )
        if self.backend != "postgres" and self.url is not None:
            raise config_problems(
                [(("url",), f"only used with backend postgres (backend is {self.backend})")]
            )
        if self.backend != "dashboard" and self.dashboard_sink is not None:
            raise config_problems(
                [
                    (
                        ("dashboard_sink",),
                        f"only used with backend dashboard (backend is {self.backend})",
                    )
                ]
            )
        return self


class ServerConfig(Section):
    """The health and metrics HTTP server (``/healthz``, ``/readyz``, ``/metrics``)."""

    enabled: bool = True
    """Serve the endpoints at all."""
    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` in a container)."""
    port: int = Field(default=8080, ge=0, le=65535)
    """TCP port to listen on (0 picks a free one)."""


class GitHubNudges(Section):
    """How nudges from GitHub prove where they come from: the webhook's secret."""

    secret: SecretStr
    """The webhook's secret: each delivery's ``X-Hub-Signature-256`` is its HMAC-SHA256 of the body (or ``secret_file``)."""
    previous_secret: SecretStr | None = None
    """While a secret is being rotated, deliveries signed with this one are accepted too (or ``previous_secret_file``)."""


class GitLabNudges(Section):
    """How nudges from GitLab prove where they come from: the webhook's secret token."""

    token: SecretStr
    """The webhook's secret token, sent as ``X-Gitlab-Token`` with each event (or ``token_file``)."""
    previous_token: SecretStr | None = None
    """While a token is being rotated, events with this one are accepted too (or ``previous_token_file``)."""


class AzureDevOpsNudges(Section):
    """How nudges from Azure DevOps prove where they come from: the service hook's basic authentication."""

    username: str = Field(min_length=1)
    """The user name set in the service hook subscription's basic authentication."""
    password: SecretStr
    """The password set in the subscription's basic authentication (or ``password_file``)."""
    previous_password: SecretStr | None = None
    """While a password is being rotated, requests with this one are accepted too (or ``previous_password_file``)."""


class NudgesConfig(Section):
    """Webhook nudges: a CI system tells the fetcher that a repository, project or pipeline changed.

    A nudge only makes the fetcher poll that one target now; the poll, not the nudge, says what
    happened. Served at ``/hooks/github``, ``/hooks/gitlab`` and ``/hooks/azure-devops`` on the
    ``server``'s address, for the providers configured here (see ``docs/nudges.md`` on exposing it).
    """

    enabled: bool = False
    """Accept nudges at all (off by default: polling alone loses nothing, nudges only make it sooner)."""
    min_gap: Duration = timedelta(seconds=2)
    """A target is polled for a nudge at most once in this time, however many nudges name it."""
    max_body: int = Field(default=1024 * 1024, ge=1024, le=25 * 1024 * 1024)
    """Largest request body accepted, in bytes (GitHub's own limit is 25 MiB; its deployment and workflow events are tens of KiB)."""
    read_timeout: Duration = timedelta(seconds=10)
    """Time allowed to receive a whole request body."""
    github: GitHubNudges | None = None
    """Nudges from GitHub webhooks (``deployment``, ``deployment_status``, ``workflow_run``, ``workflow_job``)."""
    gitlab: GitLabNudges | None = None
    """Nudges from GitLab webhooks (deployment and pipeline events)."""
    azure_devops: AzureDevOpsNudges | None = None
    """Nudges from Azure DevOps service hooks (pipeline run, stage and job, approval, build and release deployment events)."""

    @model_validator(mode="after")
    def _some_provider(self) -> NudgesConfig:
        if self.enabled and not (self.github or self.gitlab or self.azure_devops):
            msg = (
                "nudges are enabled but no provider is configured (github, gitlab or azure_devops)"
            )
            raise ValueError(msg)
        return self


class LogConfig(Section):
    """Logging: JSON lines when not on a TTY, human-readable otherwise."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe level written."""
    format: Literal["auto", "json", "console"] = "auto"
    """``auto`` writes JSON lines unless standard error is a terminal."""


class DefaultsConfig(Section):
    """Polling defaults every source inherits unless it sets its own."""

    interval: Duration = timedelta(seconds=60)
    """Time between two polls of a source (at least 1s)."""
    jitter: Duration = timedelta(seconds=10)
    """Random delay added to each poll so sources do not all hit an API at the same instant (drawn afresh each time: gaps average ``interval``)."""
    hot_interval: Duration = timedelta(seconds=15)
    """Interval of a target with work in flight (a deployment not finished yet, or something new in the last ``cooldown``), paid for by idle targets polled less often: the same number of polls in all. ``0s`` polls every target at its ``interval``."""
    cooldown: Duration = timedelta(minutes=2)
    """How long a target stays hot after a poll found something new."""
    max_stretch: float = Field(default=4.0, ge=1.0, le=100.0)
    """How many times its ``interval`` an idle target may wait so that hot targets can be polled every ``hot_interval`` (1 turns adaptive intervals off)."""
    lookback: Duration = timedelta(days=7)
    """Where the very first poll of a source starts (never at the repository's genesis)."""
    overlap: Duration = timedelta(minutes=5)
    """How far behind its high-water mark each poll re-reads (clock skew, eventual consistency)."""
    discovery_interval: Duration = timedelta(hours=1)
    """How often wildcard targets (``owner/*``, ``group/*``) are listed again."""
    timeout: Duration = timedelta(seconds=30)
    """HTTP timeout for calls to CI systems."""
    poll_workers: int = Field(default=16, ge=1, le=64)
    """Polls run at once. A poll mostly waits on its CI server, so at a 60 s interval each worker keeps up with roughly 60 targets answering in one second; raise it for more targets or slower servers (a poll past ``timeout`` frees its worker, up to four times this many threads in all)."""
    poll_deadline: Duration = timedelta(minutes=10)
    """A poll running longer than this is reported as overdue (``/readyz``, ``fetcher_polls_overdue``); a poll running longer than ``timeout`` (one request's deadline) already stops holding a worker from the other sources."""

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
    """Service name patterns, e.g. ``["api", "web-*"]``."""
    environments: list[str] = []
    """Environment name patterns, e.g. ``["prod*"]``."""
    statuses: list[Status] = []
    """Statuses, e.g. ``["success", "failure"]``."""

    def matches(self, event: DeployEvent) -> bool:
        """Whether an event meets every criterion this filter sets (an empty filter matches all).

        The one definition of filter semantics, shared by the global rules and every sink.
        """
        if self.services and not _any_glob(self.services, event.service):
            return False
        if self.environments and not _any_glob(self.environments, event.environment):
            return False
        return not (self.statuses and event.status not in self.statuses)

    def excludes(self, event: DeployEvent) -> bool:
        """Used as ``exclude``: drop an event when this filter sets criteria and it meets them all."""
        return bool(self.services or self.environments or self.statuses) and self.matches(event)


def _any_glob(patterns: list[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


class NameRule(Section):
    """How a service or environment name is rewritten.

    ``rename`` maps names (an exact key first, then the first matching glob key); ``template``
    (applied after the rename) is a ``str.format`` string over the event's fields and metadata, e.g.
    ``"{repo_name}-{service}"``.
    """

    rename: dict[str, str] = {}
    """Old name → new name; exact keys first, then glob keys such as ``"prod-*"``."""
    template: str | None = None
    """A ``str.format`` template over the event's fields and metadata, applied after ``rename``."""

    @field_validator("rename")
    @classmethod
    def _no_empty_names(cls, value: dict[str, str]) -> dict[str, str]:
        for old, new in value.items():
            if not new.strip():
                msg = f"{old!r} would be renamed to an empty name"
                raise ValueError(msg)
        return value

    @field_validator("template")
    @classmethod
    def _usable_template(cls, value: str | None) -> str | None:
        # Rendered once against placeholder values so a syntax or attribute error fails at
        # start-up (and in `fetcher check`), not on every event; unknown field names are fine
        # here, since metadata differs by provider.
        if value is not None:
            try:
                string.Formatter().vformat(value, (), _Placeholders())
            except Exception as exc:
                msg = f"not a usable template: {type(exc).__name__}: {exc}"
                raise ValueError(msg) from None
        return value


class _Placeholders(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "placeholder"


def _promotion_order(value: list[str]) -> list[str]:
    if not value:
        msg = "a promotion order needs at least one environment"
        raise ValueError(msg)
    seen: set[str] = set()
    for environment in value:
        if environment in seen:
            msg = f"environment {environment!r} appears twice in the promotion order"
            raise ValueError(msg)
        seen.add(environment)
    return value


class RulesConfig(Section):
    """Provider-agnostic mapping rules, applied to every event before it reaches the outbox."""

    service: NameRule = NameRule()
    """How service names are rewritten."""
    environment: NameRule = NameRule()
    """How environment names are rewritten."""
    include: Filter | None = None
    """Only events matching this filter are kept (after the renames)."""
    exclude: Filter | None = None
    """Events matching this filter are dropped (after the renames)."""
    promotion: dict[str, Annotated[list[str], AfterValidator(_promotion_order)]] = {}
    """Promotion order per service pattern, e.g. ``{"*": ["dev", "staging", "prod"]}``: when an
    adapter gives no parents, the latest successful deployment of the same service and sha in the
    previous environment becomes the parent."""


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        msg = "must be 1-64 characters of letters, digits, '_', '.', '-'"
        raise ValueError(msg)
    return value


#: Source and sink names: they end up in cursor keys, metric labels and log lines.
_Name = Annotated[str, AfterValidator(_check_name)]


class SourceConfig(Section):
    """What every configured source shares; providers subclass it with their own keys."""

    #: Keys that do not change which deployments a source reads: :func:`config_digest` leaves them
    #: out, so editing them does not look like a new scope to an adapter. Subclasses may extend it.
    unscoped_keys: ClassVar[frozenset[str]] = frozenset(
        {"name", "enabled", "interval", "jitter", "lookback", "overlap", "sinks"}
    )

    name: _Name
    """Unique name of the source; part of every cursor key, so renaming it starts afresh."""
    provider: str
    """Which provider plugin reads this source (``github``, ``gitlab``, ``azure-devops``…)."""
    enabled: bool = True
    """A disabled source is validated but never polled."""
    interval: Duration | None = None
    """Overrides ``defaults.interval``."""
    jitter: Duration | None = None
    """Overrides ``defaults.jitter``."""
    lookback: Duration | None = None
    """Overrides ``defaults.lookback``."""
    overlap: Duration | None = None
    """Overrides ``defaults.overlap``."""
    sinks: list[str] | None = None
    """Names of the sinks this source feeds; all sinks when absent."""


#: The byte cap of one answer when a source sets none: far above any real page of a CI API.
DEFAULT_MAX_RESPONSE_SIZE: Final = 16 * 1024 * 1024


class HttpSourceConfig(SourceConfig):
    """What every source read over HTTP shares: how one request is bounded, retried and verified.

    The same keys mean the same thing for every provider built on the provider kit; an old name a
    provider used before is answered with the new one (``renamed_keys``).
    """

    #: Keys of earlier versions → the key that replaced them (the loader names the new one).
    renamed_keys: ClassVar[dict[str, str]] = {
        "verify": "tls_verify",
        "verify_tls": "tls_verify",
        "max_retries": "retries",
        "max_wait": "max_rate_limit_wait",
        "max_open": "open_max",
        "per_page": "page_size",
        # Service keys of one provider or another (still taken, deprecated, where they were).
        "services": "service_map",
        "service_template": "service",
    }
    unscoped_keys: ClassVar[frozenset[str]] = SourceConfig.unscoped_keys | {
        "timeout",
        "retries",
        "max_rate_limit_wait",
        "tls_verify",
        "ca_bundle",
        "max_response_size",
    }

    timeout: Duration | None = None
    """Longest time one request may take, from connecting to the last byte of the answer (default: ``defaults.timeout``); a server that trickles its answer is cut off there."""
    retries: int = Field(default=3, ge=0, le=10)
    """Extra attempts of a request after a 5xx, 408, 429, a timeout or a network error (full-jitter back-off), before the cycle fails."""
    max_rate_limit_wait: Duration = timedelta(seconds=60)
    """Longest wait inside a cycle for a rate limit (``Retry-After``, a spent quota); a longer one ends the cycle as rate limited and the next cycle tries again."""
    tls_verify: bool = True
    """Verify the server's TLS certificate; prefer ``ca_bundle`` to turning this off."""
    ca_bundle: Path | None = None
    """A PEM bundle of extra certificate authorities (a self-managed server behind a company CA)."""
    max_response_size: ByteSize = ByteSize(DEFAULT_MAX_RESPONSE_SIZE)
    """Largest answer read from the server (``16MiB``, ``512KiB``); a longer one ends the request with an error naming its URL, so an endless body cannot exhaust memory."""

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            msg = f"CA bundle {str(value)!r} is not a readable file"
            raise ValueError(msg)
        return value

    @field_validator("max_response_size")
    @classmethod
    def _at_least_a_page(cls, value: ByteSize) -> ByteSize:
        if value < 1024:  # noqa: PLR2004 - one KiB: no API answers in less
            msg = "must be at least 1KiB"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _one_tls_choice(self) -> HttpSourceConfig:
        if self.ca_bundle is not None and not self.tls_verify:
            raise config_problems(
                [(("ca_bundle",), "give either ca_bundle or tls_verify: false, not both")]
            )
        return self


class SinkConfig(Section):
    """What every configured sink shares; sinks subclass it with their own keys."""

    name: _Name
    """Unique name of the sink; sources refer to it in their ``sinks`` list."""
    type: str
    """Which sink plugin delivers (``deployment-dashboard``, ``webhook``, ``jsonl``…)."""
    enabled: bool = True
    """A disabled sink receives nothing; events for it are not queued."""
    include: Filter | None = None
    """Only events matching this filter are delivered to this sink."""
    exclude: Filter | None = None
    """Events matching this filter are not delivered to this sink."""
    rename: dict[Literal["services", "environments"], dict[str, str]] = {}
    """Per-sink renames of service / environment names (exact keys first, then glob keys)."""
    timeout: Duration = timedelta(seconds=10)
    """Timeout of one delivery attempt."""
    max_attempts: int | None = Field(default=None, ge=1)
    """Attempts before a retryable failure is dead-lettered; absent = retry until it succeeds."""
    backoff_initial: Duration = timedelta(seconds=1)
    """First wait after a retryable failure; doubles per failure, with full jitter."""
    backoff_max: Duration = timedelta(minutes=5)
    """Longest wait between two attempts (a server's Retry-After may ask for more, up to 1 h)."""
    lanes: int = Field(default=1, ge=1, le=64)
    """Deliveries in flight at once: the outbox is split by service into this many lines, each in ``happened_at`` order (every event of one service stays in order; different services may overtake each other). HTTP sinks only: ``jsonl`` and ``stdout`` write one event at a time."""


def _duplicate(kind: str, index: int, name: str, first: dict[str, int]) -> list[tuple[Loc, str]]:
    """A problem when ``name`` was already used by an earlier entry (recording it otherwise)."""
    if name not in first:
        first[name] = index
        return []
    where = format_path((f"{kind}s", first[name]))
    return [((f"{kind}s", index, "name"), f"duplicate {kind} name {name!r} (also used by {where})")]


class FetcherConfig(Section):
    """The whole validated configuration."""

    state: StateConfig = StateConfig()
    """Where cursors and the outbox live."""
    server: ServerConfig = ServerConfig()
    """The health and metrics HTTP server."""
    nudges: NudgesConfig = NudgesConfig()
    """Webhook nudges: CI systems asking for one target to be polled now."""
    log: LogConfig = LogConfig()
    """Logging level and format."""
    defaults: DefaultsConfig = DefaultsConfig()
    """Polling defaults of every source."""
    rules: RulesConfig = RulesConfig()
    """Mapping rules applied to every event."""
    sinks: list[SerializeAsAny[SinkConfig]] = []
    """Where events are delivered."""
    sources: list[SerializeAsAny[SourceConfig]] = []
    """Where deployments are read."""

    _warnings: tuple[Problem, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """What the loader accepted but wants changed (a deprecated key), in file order."""
        return self._warnings

    @model_validator(mode="after")
    def _cross_check(self) -> FetcherConfig:
        problems: list[tuple[Loc, str]] = []
        first: dict[str, int] = {}
        for index, sink in enumerate(self.sinks):
            problems += _duplicate("sink", index, sink.name, first)
        sink_names = set(first)
        known = ", ".join(sorted(sink_names)) or "none"
        first = {}
        for index, source in enumerate(self.sources):
            problems += _duplicate("source", index, source.name, first)
            listed: set[str] = set()
            for position, name in enumerate(source.sinks or []):
                loc = ("sources", index, "sinks", position)
                if name not in sink_names:
                    problems.append((loc, f"no sink is named {name!r} (configured: {known})"))
                elif name in listed:
                    problems.append((loc, f"sink {name!r} is listed twice"))
                listed.add(name)
        problems += self._check_state_sink()
        if self.nudges.enabled and not self.server.enabled:
            problems.append(
                (("nudges", "enabled"), "nudges are served by the server, which is disabled")
            )
        if problems:
            raise config_problems(problems)
        return self

    def _check_state_sink(self) -> list[tuple[Loc, str]]:
        """The dashboard backend must name a configured deployment-dashboard sink."""
        wanted = self.state.dashboard_sink
        if wanted is None:
            return []
        loc: Loc = ("state", "dashboard_sink")
        found = next((sink for sink in self.sinks if sink.name == wanted), None)
        if found is None:
            known = [s.name for s in self.sinks if s.type == DASHBOARD_SINK_TYPE]
            listed = ", ".join(sorted(known)) or "none"
            return [(loc, f"no sink is named {wanted!r} (deployment-dashboard sinks: {listed})")]
        if found.type != DASHBOARD_SINK_TYPE:
            return [
                (
                    loc,
                    f"sink {wanted!r} is a {found.type} sink; the cursors need a {DASHBOARD_SINK_TYPE} sink",
                )
            ]
        return []

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

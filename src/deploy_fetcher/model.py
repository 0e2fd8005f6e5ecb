"""The canonical deployment event.

It mirrors the Deployment Dashboard's ingest payload field for field, because that contract is strict
(unknown fields are rejected with 422) and every other sink can be derived from it. Besides the contract
fields an event carries a few internal ones (``provider``, ``source``, ``metadata``) that never reach the
dashboard's wire but let other sinks (Cloudlink's ``source``, CTO.ai's ``repo``) say more.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import structlog
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

__all__ = [
    "CONTRACT_FIELDS",
    "MAX_EVENT_BYTES",
    "TERMINAL_STATUSES",
    "DeployEvent",
    "Status",
    "format_rfc3339",
    "parse_timestamp",
    "qualify_ref",
    "utc_now",
]

_log = structlog.get_logger(__name__)


class Status(enum.StrEnum):
    """The eight states the Deployment Dashboard understands."""

    PENDING = "pending"
    QUEUED = "queued"
    WAITING = "waiting"
    IN_PROGRESS = "in-progress"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        """Whether no further state can follow (the deployment is over)."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: Final = frozenset(
    {Status.SUCCESS, Status.FAILURE, Status.CANCELLED, Status.REJECTED}
)


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime (the only kind used anywhere here)."""
    return datetime.now(UTC)


def parse_timestamp(value: str | datetime) -> datetime:
    """Parse an ISO 8601 / RFC 3339 timestamp into an aware UTC datetime.

    CI APIs disagree on the details (``Z`` or ``+00:00``, 0 to 7 fractional digits, other offsets);
    naive values are refused because a cursor computed in local time silently queries the future.
    """
    if isinstance(value, datetime):
        parsed = value
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # Azure DevOps sends 7 fractional digits; Python takes at most 6.
        if "." in text:
            head, _, rest = text.partition(".")
            digits = ""
            tail = rest
            while tail and tail[0].isdigit():
                digits += tail[0]
                tail = tail[1:]
            text = f"{head}.{digits[:6].ljust(6, '0')}{tail}" if digits else head + tail
        parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        msg = f"timestamp without a time zone: {value!r}"
        raise ValueError(msg)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # .NET's "never" (0001-01-01) written with a local offset falls outside what UTC can hold.
        msg = f"timestamp out of range: {value!r}"
        raise ValueError(msg) from None


def format_rfc3339(value: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with ``Z`` (milliseconds only when present)."""
    value = value.astimezone(UTC)
    # Four digits always: glibc's strftime writes year 1 as "1", which nothing parses back.
    text = f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S")
    if value.microsecond:
        return f"{text}.{value.microsecond // 1000:03d}Z"
    return text + "Z"


def qualify_ref(name: str | None, *, tag: bool | None) -> str | None:
    """A Git ref in its full form (``refs/heads/main``, ``refs/tags/v1``) when its kind is known.

    The dashboard's contract gives ``refs/heads/main`` as the form of ``ref``; Azure DevOps sends it
    so, GitHub and GitLab send bare names. ``tag`` says which kind a bare name is (None: unknown,
    and the name is passed on as it came). A name already under ``refs/`` is kept.
    """
    if not name:
        return name
    if name.startswith("refs/") or tag is None:
        return name
    return f"refs/tags/{name}" if tag else f"refs/heads/{name}"


UtcDatetime = Annotated[
    datetime,
    PlainSerializer(format_rfc3339, return_type=str, when_used="always"),
]

# Limits of the dashboard's contract for optional string fields; over-long values are truncated.
_LIMITS: Final = {
    "version": 50,
    "run_url": 2048,
    "actor": 128,
    "ref": 256,
    "sha": 128,
}
MAX_PARENTS: Final = 32
#: Bounds of the internal ``metadata`` (read by templates and by sinks that pass it on): a CI
#: server can put megabytes into a branch name or a commit message, and every sink would carry it.
MAX_METADATA_KEYS: Final = 32
MAX_METADATA_KEY: Final = 64
MAX_METADATA_VALUE: Final = 512
#: The most an event takes serialised (``to_json``), whatever a CI server sends: every field of it
#: is bounded above (contract fields by the contract, parents by count and id length, metadata by
#: keys and value length). A test holds the bound; ``docs/guarantees.md`` states it.
MAX_EVENT_BYTES: Final = 256 * 1024

#: The fields that make up the Deployment Dashboard's ingest payload, in its documented order.
CONTRACT_FIELDS: Final = (
    "deployment_id",
    "service",
    "environment",
    "status",
    "happened_at",
    "version",
    "run_url",
    "run_number",
    "actor",
    "ref",
    "sha",
    "parent_deployments",
)


#: The longest deployment id (the contract's limit); a longer parent id is dropped, not cut.
_ID_LIMIT: Final = 200


def _truncate(field: str, value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    _log.warning("event.field_truncated", field=field, length=len(value), limit=limit)
    return value[:limit]


class DeployEvent(BaseModel):
    """One state change of one logical deployment, as the dashboard ingests it.

    Frozen so an event can be shared between the outbox rows of several sinks without copies.
    Required fields are validated strictly (a bad one is a mapping bug, not data to forward);
    optional strings that exceed the contract's limits are truncated and logged instead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    deployment_id: str = Field(min_length=1, max_length=200)
    service: str = Field(min_length=1, max_length=128)
    environment: str = Field(min_length=1, max_length=64)
    status: Status
    happened_at: UtcDatetime
    version: str | None = None
    run_url: str | None = None
    run_number: int | None = None
    actor: str | None = None
    ref: str | None = None
    sha: str | None = None
    parent_deployments: tuple[str, ...] = ()

    # Internal, never on the dashboard's wire.
    provider: str = ""
    source: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("happened_at", mode="before")
    @classmethod
    def _aware_utc(cls, value: Any) -> datetime:
        if isinstance(value, str | datetime):
            # Millisecond precision: what the wire carries, so a round trip keeps the dedup key.
            parsed = parse_timestamp(value)
            return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
        msg = "happened_at must be a timestamp"
        raise TypeError(msg)

    @field_validator("version", "run_url", "actor", "ref", "sha", mode="before")
    @classmethod
    def _limit(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            return _truncate(info.field_name, value, _LIMITS[info.field_name])
        return value

    @field_validator("parent_deployments", mode="before")
    @classmethod
    def _parents(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, list | tuple):
            ids = [str(item) for item in value if item]
            fitting = [item for item in ids if len(item) <= _ID_LIMIT]
            if len(fitting) < len(ids):
                _log.warning("event.parents_dropped", reason="id too long", limit=_ID_LIMIT)
            unique = tuple(dict.fromkeys(fitting))
            if len(unique) > MAX_PARENTS:
                _log.warning("event.parents_truncated", count=len(unique), limit=MAX_PARENTS)
                unique = unique[:MAX_PARENTS]
            return unique
        return value

    @field_validator("metadata", mode="before")
    @classmethod
    def _bounded_metadata(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        items = list(value.items())
        if len(items) > MAX_METADATA_KEYS:
            _log.warning("event.metadata_truncated", keys=len(items), limit=MAX_METADATA_KEYS)
            items = items[:MAX_METADATA_KEYS]
        out: dict[Any, Any] = {}
        for key, item in items:
            if isinstance(key, str) and len(key) > MAX_METADATA_KEY:
                _log.warning("event.metadata_key_dropped", length=len(key), limit=MAX_METADATA_KEY)
                continue
            out[key] = (
                _truncate(f"metadata.{key}", item, MAX_METADATA_VALUE)
                if isinstance(item, str)
                else item
            )
        return out

    @model_validator(mode="after")
    def _no_self_parent(self) -> DeployEvent:
        if self.deployment_id in self.parent_deployments:
            msg = "a deployment cannot be its own parent"
            raise ValueError(msg)
        return self

    @property
    def dedup_key(self) -> tuple[str, str, str]:
        """The part of the outbox's dedup key that comes from the event itself."""
        return (self.deployment_id, self.status.value, format_rfc3339(self.happened_at))

    def contract_payload(self, *, run_number_as_string: bool = False) -> dict[str, Any]:
        """Return the dashboard's ingest body: contract fields only, absent ones left out."""
        body: dict[str, Any] = {
            "deployment_id": self.deployment_id,
            "service": self.service,
            "environment": self.environment,
            "status": self.status.value,
            "happened_at": format_rfc3339(self.happened_at),
        }
        for name in ("version", "run_url", "actor", "ref", "sha"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.run_number is not None:
            body["run_number"] = str(self.run_number) if run_number_as_string else self.run_number
        if self.parent_deployments:
            body["parent_deployments"] = list(self.parent_deployments)
        return body

    def to_json(self) -> str:
        """Serialise every field (internal ones included) for the outbox."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> DeployEvent:
        """Inverse of :meth:`to_json`."""
        return cls.model_validate_json(data)

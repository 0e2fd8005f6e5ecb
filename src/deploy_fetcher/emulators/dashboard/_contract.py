"""The Deployment Dashboard's ingest contract (seed 001), checked field by field.

Pure: a payload in, a list of field errors out. The emulator answers 422 with these as the
problem+json ``errors[]`` array, so a sink that drifts from the contract fails its tests the way it
would fail against the real dashboard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from deploy_fetcher.model import CONTRACT_FIELDS, Status

__all__ = ["FieldError", "RunNumberType", "StatusSet", "problem", "validate"]

RunNumberType = Literal["integer", "string"]
#: ``three``: seed 001's in-progress, success, failure; ``eight``: newer revisions' canonical statuses.
StatusSet = Literal["three", "eight"]

REQUIRED: Final = ("deployment_id", "service", "environment", "status", "happened_at")
#: (min, max) length of every string field.
STRING_LIMITS: Final = {
    "deployment_id": (1, 200),
    "service": (1, 128),
    "environment": (1, 64),
    "version": (0, 50),
    "run_url": (1, 2048),
    "actor": (0, 128),
    "ref": (0, 256),
    "sha": (0, 128),
}
RUN_NUMBER_MAX_LENGTH: Final = 128
MAX_PARENTS: Final = 32
STATUSES: Final = tuple(status.value for status in Status)
#: The statuses of the original contract (seed 001).
SEED_001_STATUSES: Final = ("in-progress", "success", "failure")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class FieldError:
    """One entry of the problem+json ``errors[]`` array."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The JSON form."""
        return {"field": self.field, "message": self.message}


def _check_string(name: str, value: Any) -> list[FieldError]:
    if not isinstance(value, str):
        return [FieldError(name, "must be a string")]
    low, high = STRING_LIMITS[name]
    if len(value) < low:
        return [FieldError(name, f"must be at least {low} character(s)")]
    if len(value) > high:
        return [FieldError(name, f"must be at most {high} characters")]
    return []


def _check_happened_at(value: Any) -> list[FieldError]:
    if not isinstance(value, str) or not _RFC3339.match(value):
        return [
            FieldError("happened_at", "must be an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z")
        ]
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    head, dot, rest = text.partition(".")
    if dot:  # Python takes at most 6 fractional digits
        digits = rest[:-6]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[-6:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return [FieldError("happened_at", "is not a valid date and time")]
    if parsed.utcoffset() != timedelta(0) or value.endswith("-00:00"):
        return [FieldError("happened_at", "must be in UTC (Z)")]
    return []


def _check_run_url(value: Any) -> list[FieldError]:
    errors = _check_string("run_url", value)
    if errors:
        return errors
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return [FieldError("run_url", "must be an absolute URI")]
    return []


def _check_run_number(value: Any, run_number_type: RunNumberType) -> list[FieldError]:
    if isinstance(value, int) and not isinstance(value, bool):
        return []
    if run_number_type == "string" and isinstance(value, str):
        if 1 <= len(value) <= RUN_NUMBER_MAX_LENGTH:
            return []
        return [FieldError("run_number", f"must be 1 to {RUN_NUMBER_MAX_LENGTH} characters")]
    expected = "an integer or a string" if run_number_type == "string" else "an integer"
    return [FieldError("run_number", f"must be {expected}")]


def _check_parents(value: Any) -> list[FieldError]:
    if not isinstance(value, list):
        return [FieldError("parent_deployments", "must be an array of deployment_id strings")]
    errors: list[FieldError] = []
    if len(value) > MAX_PARENTS:
        errors.append(FieldError("parent_deployments", f"must hold at most {MAX_PARENTS} items"))
    for index, item in enumerate(value):
        if not isinstance(item, str) or not 1 <= len(item) <= STRING_LIMITS["deployment_id"][1]:
            errors.append(
                FieldError(
                    f"parent_deployments[{index}]", "must be a deployment_id (1-200 characters)"
                )
            )
    strings = [item for item in value if isinstance(item, str)]
    if len(set(strings)) != len(strings):
        errors.append(FieldError("parent_deployments", "items must be unique"))
    return errors


def validate(
    payload: Any, *, run_number_type: RunNumberType = "integer", status_set: StatusSet = "eight"
) -> list[FieldError]:
    """Every way ``payload`` breaks the ingest contract; empty when it is a valid event."""
    statuses = SEED_001_STATUSES if status_set == "three" else STATUSES
    if not isinstance(payload, dict):
        return [FieldError("", "the body must be a JSON object")]
    errors = [FieldError(name, "unknown field") for name in payload if name not in CONTRACT_FIELDS]
    errors += [FieldError(name, "is required") for name in REQUIRED if name not in payload]
    for name, value in payload.items():
        if name == "status":
            if value not in statuses:
                errors.append(FieldError("status", f"must be one of {', '.join(statuses)}"))
        elif name == "happened_at":
            errors += _check_happened_at(value)
        elif name == "run_url":
            errors += _check_run_url(value)
        elif name == "run_number":
            errors += _check_run_number(value, run_number_type)
        elif name == "parent_deployments":
            errors += _check_parents(value)
        elif name in STRING_LIMITS:
            errors += _check_string(name, value)
    return errors


def problem(
    status: int, title: str, detail: str, errors: list[FieldError] | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem document."""
    doc: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        doc["errors"] = [error.as_dict() for error in errors]
    return doc

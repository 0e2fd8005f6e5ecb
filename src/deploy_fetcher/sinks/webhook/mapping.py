"""What goes on a webhook's wire; pure functions, tested without HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks._document import document

__all__ = ["EVENT_ID_HEADER", "body", "event_id", "headers"]

EVENT_ID_HEADER = "X-Deploy-Fetcher-Event-Id"


def body(event: DeployEvent, fields: Sequence[str] | None = None) -> dict[str, Any]:
    """The canonical document, narrowed to ``fields`` when given."""
    return document(event, fields)


def event_id(event: DeployEvent) -> str:
    """A stable id per (deployment_id, status, happened_at): receivers can drop a re-delivery."""
    key = "\n".join(event.dedup_key).encode()
    return hashlib.sha256(key).hexdigest()[:32]


def headers(event: DeployEvent, static: Mapping[str, str]) -> dict[str, str]:
    """The configured static headers, then the ones the sink owns."""
    out = dict(static)
    out["Content-Type"] = "application/json"
    out[EVENT_ID_HEADER] = event_id(event)
    return out

"""What goes on Cloudlink's wire; pure functions, tested without HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from deploy_fetcher.model import DeployEvent, Status

__all__ = ["SOURCES", "body", "source_name"]

#: Cloudlink's CI identifiers (seed 000 uses ``github-actions`` and ``gitlab-ci``).
SOURCES: Final = {
    "github": "github-actions",
    "gitlab": "gitlab-ci",
    "azure-devops": "azure-pipelines",
}


def source_name(provider: str) -> str:
    """Cloudlink's ``source`` for the CI system an event was read from."""
    return SOURCES.get(provider, provider)


def body(event: DeployEvent, status_map: Mapping[Status, str] | None = None) -> dict[str, Any]:
    """The deploy record: service, version (the version, else the commit), environment, source.

    ``metadata`` is Cloudlink's free-form object; it carries what links a cost change back to the run.
    """
    metadata: dict[str, Any] = {"deployment_id": event.deployment_id}
    for name in ("run_url", "sha", "actor", "ref"):
        value = getattr(event, name)
        if value is not None:
            metadata[name] = value
    if "repo" in event.metadata:
        metadata["repo"] = event.metadata["repo"]
    metadata["status"] = (status_map or {}).get(event.status, event.status.value)
    out: dict[str, Any] = {"service": event.service}
    version = event.version or event.sha
    if version:
        out["version"] = version
    out["environment"] = event.environment
    if event.provider:
        out["source"] = source_name(event.provider)
    out["metadata"] = metadata
    return out

"""What goes on CTO.ai's wire; pure functions, tested without HTTP.

The shape is that of CTO.ai's own CI integrations (the GitLab template of seed 002, the CircleCI orb,
the GitHub Action): ``event_name``, ``event_action``, ``team_id``, ``repo``, ``branch``, ``commit``,
``environment``, ``image`` and a ``meta`` object with the ``user``. Absent values are JSON null, as the
GitHub Action sends them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from deploy_fetcher.model import DeployEvent, Status

__all__ = ["DEFAULT_ACTIONS", "ORIGIN", "action", "body", "branch"]

ORIGIN: Final = "deploy-fetcher"

#: CTO.ai knows five deployment states; ours map onto them like this (overridable by ``status_map``).
#: CTO.ai has no "cancelled": a cancelled or rejected deployment did not ship its change, and
#: "failure" is the only terminal state that says so (without it the deployment would stay
#: "progressing" for ever). Exclude those statuses if they must not count as change failures.
DEFAULT_ACTIONS: Final[Mapping[Status, str]] = {
    Status.PENDING: "started",
    Status.QUEUED: "started",
    Status.WAITING: "blocked",
    Status.IN_PROGRESS: "progressing",
    Status.SUCCESS: "success",
    Status.FAILURE: "failure",
    Status.CANCELLED: "failure",
    Status.REJECTED: "failure",
}


def action(status: Status, overrides: Mapping[Status, str] | None = None) -> str:
    """CTO.ai's ``event_action`` for a status."""
    return (overrides or {}).get(status) or DEFAULT_ACTIONS[status]


def branch(event: DeployEvent) -> str | None:
    """The branch: the adapter's ``branch`` metadata, else a ``refs/heads/…`` ref or a bare ref name.

    Tags and merge-request refs name no branch, so they give None rather than a wrong one.
    """
    if event.metadata.get("branch"):
        return event.metadata["branch"]
    ref = event.ref
    if not ref:
        return None
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    return None if ref.startswith("refs/") else ref


def body(
    event: DeployEvent,
    *,
    team_id: str,
    image: str | None = None,
    overrides: Mapping[Status, str] | None = None,
) -> dict[str, Any]:
    """The deployment event. ``repo`` is the repository's full path, else the service name."""
    meta: dict[str, Any] = {"user": event.actor, "origin": ORIGIN}
    meta["deployment_id"] = event.deployment_id
    meta["service"] = event.service
    meta["status"] = event.status.value
    if event.run_url:
        meta["run_url"] = event.run_url
    return {
        "event_name": "deployment",
        "event_action": action(event.status, overrides),
        "team_id": team_id,
        "repo": event.metadata.get("repo") or event.service,
        "branch": branch(event),
        "commit": event.sha,
        "environment": event.environment,
        "image": event.metadata.get("image") or image,
        "meta": meta,
    }

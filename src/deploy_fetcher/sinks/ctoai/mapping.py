"""What goes on CTO.ai's wire; pure functions, tested without HTTP.

The shape is that of CTO.ai's own CI integrations (the GitLab template of seed 002, the CircleCI orb,
the GitHub Action): ``event_name``, ``event_action``, ``team_id``, ``repo``, ``branch``, ``commit``,
``environment``, ``image`` and a ``meta`` object with the ``user``. Absent values are JSON null, as the
GitHub Action sends them. Each integration names itself in an ``x-ops-mechanism`` header
(``gitlab-job`` in the GitLab template, ``github-action``, ``circle-ci-<vcs>``); the fetcher names
itself and the CI system it read, as ``deploy-fetcher-<provider>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from deploy_fetcher.model import DeployEvent, Status

__all__ = ["DEFAULT_ACTIONS", "MECHANISM_HEADER", "ORIGIN", "action", "body", "branch", "headers"]

ORIGIN: Final = "deploy-fetcher"
#: The header by which CTO.ai's integrations say which of them sent an event.
MECHANISM_HEADER: Final = "x-ops-mechanism"

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


def _tag(event: DeployEvent) -> str | None:
    """The tag the event was deployed from, when the adapter or the ref says so."""
    if event.metadata.get("tag"):
        return event.metadata["tag"]
    if event.ref and event.ref.startswith("refs/tags/"):
        return event.ref.removeprefix("refs/tags/")
    return None


def branch(event: DeployEvent) -> str | None:
    """The branch: the adapter's ``branch`` metadata, else a ``refs/heads/…`` ref or a bare ref name.

    Tags and merge-request refs name no branch, so they give None rather than a wrong one: a tag is
    known from the adapter's ``tag`` metadata (GitLab) or a ``refs/tags/…`` ref, and a ``branch``
    metadata that is only the tag's name again is not a branch. A run on ``main`` that deploys a tag
    keeps ``main``.
    """
    tag = _tag(event)
    named = event.metadata.get("branch")
    if named and named != tag:
        return named
    ref = event.ref
    if tag is not None or not ref:
        return None
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    return None if ref.startswith("refs/") else ref


def headers(event: DeployEvent, token: str) -> dict[str, str]:
    """The bearer token, the JSON type, and which integration sent the event."""
    mechanism = f"{ORIGIN}-{event.provider}" if event.provider else ORIGIN
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        MECHANISM_HEADER: mechanism,
    }


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

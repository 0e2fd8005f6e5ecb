"""Which target a webhook event names: pure functions of the event's headers and JSON body.

Nothing in an event is trusted beyond choosing what to poll: the poll reads the CI system's API as
always, so a wrong name only wastes one poll (and the scheduler bounds those per target).

* **GitHub** names the repository in ``repository.full_name`` (``X-GitHub-Event``: ``deployment``,
  ``deployment_status``, ``workflow_run``, ``workflow_job``).
* **GitLab** names the project in ``project.path_with_namespace`` and ``project.id``
  (``X-Gitlab-Event``: ``Deployment Hook``, ``Pipeline Hook``). A pipeline's ``source_pipeline`` (the
  upstream project that triggered it) is not the project that changed.
* **Azure DevOps** service hooks carry the project's id in ``resourceContainers.project.id``; release
  events add ``resource.project.name``, and pipeline events name the project only in the path of
  their links (``https://dev.azure.com/{organization}/{project}/_build/...``), by name or by id
  depending on the event. Every such candidate is returned; a target matches any of them. A
  subscription whose events carry only ids can add ``?project=<name>`` to its URL. The pipeline
  (``resource.pipeline``, ``resource.run.pipeline``, ``resource.definition``, a release's
  definition) is returned too: a source that reads only some pipelines of the project is nudged only
  for those.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

__all__ = ["Ignored", "Named", "identify"]

GITHUB_EVENTS: Final = frozenset(
    {"deployment", "deployment_status", "workflow_run", "workflow_job"}
)
GITLAB_EVENTS: Final = frozenset({"Deployment Hook", "Pipeline Hook"})
AZURE_DEVOPS_EVENTS: Final = frozenset(
    {
        "ms.vss-pipelines.run-state-changed-event",
        "ms.vss-pipelines.stage-state-changed-event",
        "ms.vss-pipelines.job-state-changed-event",
        "ms.vss-pipelinechecks-events.approval-pending",
        "ms.vss-pipelinechecks-events.approval-completed",
        "build.complete",
        "ms.vss-release.deployment-started-event",
        "ms.vss-release.deployment-completed-event",
        "ms.vss-release.deployment-approval-pending-event",
        "ms.vss-release.deployment-approval-completed-event",
    }
)
#: How much of an Azure DevOps ``resource`` is searched for links (its events nest a few levels).
_MAX_DEPTH: Final = 6
_MAX_LINKS: Final = 200
_NAME_LENGTH: Final = 256


@dataclass(frozen=True)
class Named:
    """The event names these targets (any of them may match a configured one)."""

    names: frozenset[str]
    #: Pipelines the event is about (ids and names), for providers whose sources pick pipelines
    #: inside a target (Azure DevOps): empty when the event does not say.
    pipelines: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Ignored:
    """The event is authentic but says nothing to poll for (a ping, an event we do not watch)."""

    reason: str


def identify(
    provider: str, headers: Mapping[str, str], payload: Any, query: Mapping[str, str]
) -> Named | Ignored:
    """What one authentic event asks to poll (``headers`` with lower-case names)."""
    if not isinstance(payload, dict):
        return Ignored("the body is not a JSON object")
    if provider == "github":
        return _github(headers.get("x-github-event", ""), payload)
    if provider == "gitlab":
        return _gitlab(headers.get("x-gitlab-event", ""), payload)
    return _azure_devops(payload, query)


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= _NAME_LENGTH:
        return value
    return None


def _texts(values: Iterable[Any]) -> frozenset[str]:
    return frozenset(text for text in map(_text, values) if text is not None)


def _named(*values: Any, pipelines: Iterable[Any] = ()) -> Named | Ignored:
    names = _texts(values)
    if not names:
        return Ignored("the event names no repository or project")
    return Named(names, _texts(pipelines))


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _github(event: str, payload: dict[str, Any]) -> Named | Ignored:
    if event not in GITHUB_EVENTS:
        return Ignored(f"event {event!r} is not watched" if event else "no X-GitHub-Event")
    return _named(_dig(payload, "repository", "full_name"))


def _gitlab(event: str, payload: dict[str, Any]) -> Named | Ignored:
    if event not in GITLAB_EVENTS:
        return Ignored(f"event {event!r} is not watched" if event else "no X-Gitlab-Event")
    return _named(
        _dig(payload, "project", "path_with_namespace"),
        _dig(payload, "project", "id"),
        payload.get("project_id"),
    )


def _azure_devops(payload: dict[str, Any], query: Mapping[str, str]) -> Named | Ignored:
    event = payload.get("eventType")
    if event not in AZURE_DEVOPS_EVENTS:
        shown = event if isinstance(event, str) and len(event) <= _NAME_LENGTH else "?"
        return Ignored(f"event {shown!r} is not watched")
    resource = payload.get("resource")
    return _named(
        query.get("project"),
        _dig(payload, "resourceContainers", "project", "id"),
        _dig(resource, "project", "name"),
        _dig(resource, "project", "id"),
        _dig(resource, "projectId"),
        *_linked_projects(resource),
        pipelines=[
            _dig(resource, *path, key)
            for path in (
                ("pipeline",),
                ("run", "pipeline"),
                ("definition",),
                ("release", "releaseDefinition"),
            )
            for key in ("id", "name")
        ],
    )


def _linked_projects(resource: Any) -> Iterator[str]:
    """The project segment of each link in ``resource`` (the one before ``_build``, ``_apis`` …)."""
    for link in _links(resource, depth=0, budget=[_MAX_LINKS]):
        parts = urlsplit(link)
        if parts.scheme not in {"http", "https"}:
            continue
        segments = [unquote(s) for s in parts.path.split("/") if s]
        for index, segment in enumerate(segments):
            if segment.startswith("_"):
                if index > 0:
                    yield segments[index - 1]
                break


def _links(data: Any, *, depth: int, budget: list[int]) -> Iterator[str]:
    if depth > _MAX_DEPTH or budget[0] <= 0:
        return
    if isinstance(data, dict):
        for key, value in data.items():
            if key in {"href", "url"} and isinstance(value, str) and len(value) <= 2048:  # noqa: PLR2004
                budget[0] -= 1
                yield value
            else:
                yield from _links(value, depth=depth + 1, budget=budget)
    elif isinstance(data, list):
        for item in data[:_MAX_LINKS]:
            yield from _links(item, depth=depth + 1, budget=budget)

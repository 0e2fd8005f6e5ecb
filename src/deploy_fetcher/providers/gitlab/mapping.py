"""Pure functions from GitLab's JSON to canonical events: no I/O, no clock, no logging.

A poller sees states, not transitions, so each object is turned into one event per transition it can
date: ``pending`` at creation, ``in-progress`` when its job started, the terminal state when it
finished. Re-emitting those on later polls is harmless (the store deduplicates on
``(deployment_id, status, happened_at)``).

Deployments (``gl-deploy-{id}``)::

    created   -> pending      (the job exists but has not started: queued for a runner or a click)
    blocked   -> waiting      (waiting for an approval or a manual action)
    running   -> in-progress
    success   -> success
    failed    -> failure      (rejected when the job was dropped because an approval was rejected)
    canceled  -> cancelled    (rejected when an approval on it was rejected)
    skipped   -> nothing at all (it never deployed)

A deployment made through the Deployments API has no job (``deployable: null``) and is created
already ``running`` or finished: it was never pending (in-progress at its creation, the end at its
update). No state is dated before the one it follows (the record can be younger than its job).
``ref`` is ``refs/heads/…`` / ``refs/tags/…`` when the job or pipeline says which; bare otherwise.

Pipelines (``gl-pipeline-{id}``), for projects that deploy without GitLab environments::

    created                                       -> pending
    waiting_for_resource, preparing, pending      -> queued
    manual, scheduled                             -> waiting
    running                                       -> in-progress (dated by started_at)
    success / failed / canceled                   -> success / failure / cancelled
    canceling                                     -> nothing new until it is canceled
    skipped                                       -> nothing at all

Malformed items raise :class:`Malformed`; the adapter logs them with their URL and skips them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from deploy_fetcher.model import DeployEvent, Status, parse_timestamp, qualify_ref
from deploy_fetcher.providers.gitlab.config import VersionFrom
from deploy_fetcher.providers.gitlab.cursor import Sibling
from deploy_fetcher.providers.kit import render_template

__all__ = [
    "DEPLOYMENT_STATUS",
    "PIPELINE_STATUS",
    "DeploymentView",
    "Malformed",
    "PipelineView",
    "ProjectInfo",
    "Rendering",
    "deployment_events",
    "derive_parents",
    "list_key",
    "matches_any",
    "parse_deployment",
    "parse_pipeline",
    "pipeline_events",
    "pipeline_needs_detail",
    "render",
    "sibling_of",
]

PROVIDER: Final = "gitlab"
SHORT_SHA: Final = 8  # what GitLab shows as a commit's short id
MAX_SERVICE: Final = 128
MAX_ENVIRONMENT: Final = 64
REJECTED_REASON: Final = "deployment_rejected"

#: Deployment status -> the state it stands for (None: never emitted).
DEPLOYMENT_STATUS: Final[Mapping[str, Status | None]] = {
    "created": Status.PENDING,
    "blocked": Status.WAITING,
    "running": Status.IN_PROGRESS,
    "success": Status.SUCCESS,
    "failed": Status.FAILURE,
    "canceled": Status.CANCELLED,
    "skipped": None,
}

#: Pipeline status -> the state it stands for (None: nothing new is emitted for it).
PIPELINE_STATUS: Final[Mapping[str, Status | None]] = {
    "created": Status.PENDING,
    "waiting_for_resource": Status.QUEUED,
    "preparing": Status.QUEUED,
    "pending": Status.QUEUED,
    "manual": Status.WAITING,
    "scheduled": Status.WAITING,
    "running": Status.IN_PROGRESS,
    "success": Status.SUCCESS,
    "failed": Status.FAILURE,
    "canceled": Status.CANCELLED,
    "canceling": None,
    "skipped": None,
}


class Malformed(ValueError):
    """An item that does not have the shape GitLab documents; skipped, never fatal."""


# -- reading ---------------------------------------------------------------------------------------


def _ms(value: datetime) -> datetime:
    """Millisecond precision: what GitLab sends and what the cursor keeps, so comparisons hold."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Malformed(f"{key} is not a timestamp: {value!r}")
    try:
        return _ms(parse_timestamp(value))
    except ValueError:
        raise Malformed(f"{key} is not a timestamp: {value!r}") from None


def _need_time(data: Mapping[str, Any], key: str) -> datetime:
    value = _time(data, key)
    if value is None:
        raise Malformed(f"missing {key}")
    return value


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{key} is not an integer: {value!r}")
    return value


def _need_int(data: Mapping[str, Any], key: str) -> int:
    value = _int(data, key)
    if value is None:
        raise Malformed(f"missing {key}")
    return value


def _str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if isinstance(value, str):
        return value or None
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise Malformed(f"{key} is not a string: {value!r}")


def _need_str(data: Mapping[str, Any], key: str) -> str:
    value = _str(data, key)
    if value is None:
        raise Malformed(f"missing {key}")
    return value


def _obj(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Malformed(f"{key} is not an object: {type(value).__name__}")
    return value


@dataclass(frozen=True)
class ProjectInfo:
    """What the mapping needs to know about the project an object belongs to."""

    #: Full path (``group/sub/api``); the numeric id as text when the path is unknown.
    path: str
    #: Web address of the project (``https://gitlab.example.com/group/sub/api``).
    web_url: str

    @property
    def name(self) -> str:
        """The project's own path segment (``api``)."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str:
        """The group path (``group/sub``), empty for a bare id."""
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""


@dataclass(frozen=True)
class DeploymentView:
    """The parts of a deployment (with its deployable job and pipeline) the mapping uses."""

    id: int
    status: str
    created_at: datetime
    updated_at: datetime
    ref: str | None
    sha: str | None
    environment: str
    environment_url: str | None
    environment_tier: str | None
    user: str | None
    job_id: int | None
    job_name: str | None
    stage: str | None
    job_status: str | None
    job_started_at: datetime | None
    job_finished_at: datetime | None
    failure_reason: str | None
    is_tag: bool
    #: Whether GitLab said what kind of ref ``ref`` is (a deployment without a job does not).
    ref_kind_known: bool
    pipeline_id: int | None
    pipeline_iid: int | None
    pipeline_url: str | None
    approval_rejected_at: datetime | None
    approval_rejected: bool


def parse_deployment(raw: Any) -> DeploymentView:
    """Validate one item of ``GET /projects/:id/deployments`` (or a single deployment)."""
    if not isinstance(raw, dict):
        raise Malformed(f"deployment is not an object: {type(raw).__name__}")
    created_at = _need_time(raw, "created_at")
    environment = _obj(raw, "environment")
    user = _obj(raw, "user")
    job = _obj(raw, "deployable")
    job_user = _obj(job, "user")
    pipeline = _obj(job, "pipeline")
    rejected_at: datetime | None = None
    rejected = False
    approvals = raw.get("approvals") or []
    if not isinstance(approvals, list):
        raise Malformed("approvals is not a list")
    for approval in approvals:
        if isinstance(approval, dict) and approval.get("status") == "rejected":
            rejected = True
            rejected_at = _time(approval, "created_at") or rejected_at
    return DeploymentView(
        id=_need_int(raw, "id"),
        status=_need_str(raw, "status"),
        created_at=created_at,
        updated_at=_time(raw, "updated_at") or created_at,
        ref=_str(raw, "ref"),
        sha=_str(raw, "sha"),
        environment=_need_str(environment, "name"),
        environment_url=_str(environment, "external_url"),
        environment_tier=_str(environment, "tier"),
        user=_str(user, "username") or _str(job_user, "username"),
        job_id=_int(job, "id"),
        job_name=_str(job, "name"),
        stage=_str(job, "stage"),
        job_status=_str(job, "status"),
        job_started_at=_time(job, "started_at"),
        job_finished_at=_time(job, "finished_at"),
        failure_reason=_str(job, "failure_reason"),
        is_tag=job.get("tag") is True,
        ref_kind_known=isinstance(job.get("tag"), bool),
        pipeline_id=_int(pipeline, "id"),
        pipeline_iid=_int(pipeline, "iid"),
        pipeline_url=_str(pipeline, "web_url"),
        approval_rejected_at=rejected_at,
        approval_rejected=rejected,
    )


@dataclass(frozen=True)
class PipelineView:
    """A pipeline from the list, completed by its details when the adapter fetched them."""

    id: int
    iid: int | None
    status: str
    ref: str | None
    sha: str | None
    source: str | None
    name: str | None
    is_tag: bool
    web_url: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    user: str | None = None
    #: Whether GitLab said what kind of ref ``ref`` is (the list items do not; the details do).
    ref_kind_known: bool = False


def parse_pipeline(raw: Any, detail: Any = None) -> PipelineView:
    """Validate one item of ``GET /projects/:id/pipelines``, merged with ``GET .../pipelines/:id``."""
    if not isinstance(raw, dict):
        raise Malformed(f"pipeline is not an object: {type(raw).__name__}")
    data: dict[str, Any] = dict(raw)
    if detail is not None:
        if not isinstance(detail, dict):
            raise Malformed(f"pipeline detail is not an object: {type(detail).__name__}")
        data.update(detail)
    created_at = _need_time(data, "created_at")
    return PipelineView(
        id=_need_int(data, "id"),
        iid=_int(data, "iid"),
        status=_need_str(data, "status"),
        ref=_str(data, "ref"),
        sha=_str(data, "sha"),
        source=_str(data, "source"),
        name=_str(data, "name"),
        is_tag=data.get("tag") is True,
        web_url=_str(data, "web_url"),
        created_at=created_at,
        updated_at=_time(data, "updated_at") or created_at,
        started_at=_time(data, "started_at"),
        finished_at=_time(data, "finished_at"),
        user=_str(_obj(data, "user"), "username"),
        ref_kind_known=isinstance(data.get("tag"), bool),
    )


def list_key(raw: Any) -> tuple[int, datetime] | None:
    """(id, updated_at) of a list item, for paging; None when it has no usable pair."""
    if not isinstance(raw, dict):
        return None
    try:
        created = _time(raw, "created_at")
        updated = _time(raw, "updated_at") or created
        return (_need_int(raw, "id"), updated) if updated is not None else None
    except Malformed:
        return None


# -- naming ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendering:
    """How a project's objects are named: service template or fixed name, version source."""

    source: str
    project: ProjectInfo
    service: str
    #: A fixed service name (``service_map``) that wins over the template.
    service_name: str | None = None
    version: VersionFrom = "short_sha"
    #: ``pipelines`` mode: the environment name or template.
    environment: str = "production"


def render(template: str, fields: Mapping[str, str | None]) -> str:
    """Render a template checked at load time (absent values render empty; the kit's renderer)."""
    try:
        return render_template(template, fields)
    except ValueError as exc:  # a format spec a value does not take (``{ref:d}``)
        raise Malformed(f"template {template!r}: {exc}") from None


def _project_fields(project: ProjectInfo) -> dict[str, str | None]:
    return {
        "repo": project.path,
        "repo_name": project.name,
        "project": project.path,
        "project_path": project.name,
        "namespace": project.namespace,
    }


def _service(rendering: Rendering, fields: Mapping[str, str | None]) -> str:
    name = rendering.service_name or render(rendering.service, fields) or rendering.project.name
    return name[:MAX_SERVICE]


def _version(
    how: VersionFrom, sha: str | None, ref: str | None, is_tag: bool, iid: int | None
) -> str | None:
    short = sha[:SHORT_SHA] if sha else None
    if how == "sha":
        return sha
    if how == "ref":
        return ref or short
    if how == "tag":
        return ref if is_tag and ref else short
    if how == "pipeline_iid":
        return str(iid) if iid is not None else short
    return short


def _metadata(
    project: ProjectInfo, ref: str | None, sha: str | None, is_tag: bool, **extra: str | None
) -> dict[str, str]:
    out: dict[str, str | None] = {
        "repo": project.path,
        "repo_name": project.name,
        "project_url": project.web_url,
        "branch": None if is_tag else ref,
        "tag": ref if is_tag else None,
        "commit_url": f"{project.web_url}/-/commit/{sha}" if sha else None,
        **extra,
    }
    return {key: value for key, value in out.items() if value}


def matches_any(patterns: Sequence[str], value: str | None) -> bool:
    """Whether ``value`` matches one of the glob patterns (an empty list matches everything)."""
    if not patterns:
        return True
    if value is None:
        return False
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


# -- deployments -----------------------------------------------------------------------------------


def derive_parents(view: DeploymentView, siblings: Iterable[Sibling]) -> tuple[str, ...]:
    """Deployments of the same pipeline in the nearest earlier stage that deployed elsewhere.

    GitLab creates a pipeline's jobs stage by stage, so the lowest job id seen in a stage ranks the
    stage (a retried job gets a new, higher id but stays in its stage). The jobs API does not expose
    ``needs``, so a DAG pipeline is read by its stages. Per environment the latest deployment of that
    stage counts (a retry that succeeded beats the attempt that failed); skipped ones never do.
    """
    if view.pipeline_id is None or view.job_id is None or view.stage is None:
        return ()
    others = [s for s in siblings if s.deployment_id != view.id]
    rank: dict[str, int] = {view.stage: view.job_id}
    for sibling in others:
        rank[sibling.stage] = min(rank.get(sibling.stage, sibling.job_id), sibling.job_id)
    own = rank[view.stage]
    earlier = [
        s
        for s in others
        if rank[s.stage] < own and s.environment != view.environment and s.status != "skipped"
    ]
    if not earlier:
        return ()
    nearest = max(rank[s.stage] for s in earlier)
    latest: dict[str, Sibling] = {}
    for sibling in earlier:
        if rank[sibling.stage] != nearest:
            continue
        kept = latest.get(sibling.environment)
        if kept is None or sibling.deployment_id > kept.deployment_id:
            latest[sibling.environment] = sibling
    return tuple(f"gl-deploy-{s.deployment_id}" for s in sorted(latest.values(), key=_by_id))


def _by_id(sibling: Sibling) -> int:
    return sibling.deployment_id


def sibling_of(view: DeploymentView) -> Sibling | None:
    """The memory entry of a deployment (None when it has no job or pipeline to relate it by)."""
    if view.pipeline_id is None or view.job_id is None or view.stage is None:
        return None
    return Sibling(view.id, view.job_id, view.stage, view.environment, view.status)


def _terminal(view: DeploymentView) -> tuple[Status, datetime] | None:
    """The terminal state of a deployment and when it was reached (None when it is not over)."""
    finished = view.job_finished_at or view.updated_at
    rejected = view.failure_reason == REJECTED_REASON or view.approval_rejected
    if view.status == "success":
        return Status.SUCCESS, finished
    if view.status in {"failed", "canceled"}:
        if rejected:
            return Status.REJECTED, view.job_finished_at or view.approval_rejected_at or finished
        return (Status.FAILURE if view.status == "failed" else Status.CANCELLED), finished
    return None


def _never_earlier(transitions: list[tuple[Status, datetime]]) -> list[tuple[Status, datetime]]:
    """Transitions (in lifecycle order) each dated no earlier than the one before.

    GitLab creates a deployment's record around its job, not always before it: in the API
    documentation's own example the job finished before the deployment was created. A state is
    then dated when the deployment that reached it existed, so the end never precedes the start.
    """
    out: list[tuple[Status, datetime]] = []
    for status, at in transitions:
        out.append((status, max(at, out[-1][1]) if out else at))
    return out


def deployment_events(
    view: DeploymentView, rendering: Rendering, parents: Sequence[str] = ()
) -> list[DeployEvent]:
    """Every dated transition of one deployment, oldest first (empty for a skipped one).

    Raises :class:`Malformed` for a status GitLab does not document (a newer server, a bad proxy).
    """
    if view.status not in DEPLOYMENT_STATUS:
        raise Malformed(f"unknown deployment status {view.status!r}")
    if DEPLOYMENT_STATUS[view.status] is None:
        return []
    fields = {
        **_project_fields(rendering.project),
        "environment": view.environment,
        "job": view.job_name,
        "stage": view.stage,
        "ref": view.ref,
    }
    terminal = _terminal(view)
    transitions: list[tuple[Status, datetime]] = []
    if view.job_id is None and view.status != "created":
        # Made through the Deployments API (no job): created already running or finished, never
        # pending. A finished one updated after its creation was running until then.
        if view.status == "running" or (terminal is not None and view.updated_at > view.created_at):
            transitions.append((Status.IN_PROGRESS, view.created_at))
        if view.status == "blocked":
            transitions.append((Status.WAITING, view.created_at))
    else:
        transitions.append((Status.PENDING, view.created_at))
        if view.status == "blocked":
            transitions.append((Status.WAITING, view.updated_at))
        if view.job_started_at is not None:
            transitions.append((Status.IN_PROGRESS, view.job_started_at))
        elif view.status == "running":
            transitions.append((Status.IN_PROGRESS, view.updated_at))
    if terminal is not None:
        transitions.append(terminal)
    transitions = _never_earlier(transitions)
    common: dict[str, Any] = {
        "deployment_id": f"gl-deploy-{view.id}",
        "service": _service(rendering, fields),
        "environment": view.environment[:MAX_ENVIRONMENT],
        "version": _version(rendering.version, view.sha, view.ref, view.is_tag, view.pipeline_iid),
        "run_url": view.pipeline_url,
        "run_number": view.pipeline_iid if view.pipeline_iid is not None else view.pipeline_id,
        "actor": view.user,
        "ref": qualify_ref(view.ref, tag=view.is_tag if view.ref_kind_known else None),
        "sha": view.sha,
        "parent_deployments": tuple(parents),
        "provider": PROVIDER,
        "source": rendering.source,
        "metadata": _metadata(
            rendering.project,
            view.ref,
            view.sha,
            view.is_tag,
            pipeline=str(view.pipeline_id) if view.pipeline_id is not None else None,
            job=view.job_name,
            stage=view.stage,
            environment_url=view.environment_url,
            environment_tier=view.environment_tier,
            gitlab_status=view.status,
        ),
    }
    return [DeployEvent(status=status, happened_at=at, **common) for status, at in transitions]


# -- pipelines -------------------------------------------------------------------------------------


def pipeline_needs_detail(view: PipelineView) -> bool:
    """Whether the list item lacks timestamps its events need (start or finish)."""
    return view.status in {"running", "success", "failed", "canceled", "canceling", "manual"} and (
        view.started_at is None and view.finished_at is None
    )


def pipeline_events(view: PipelineView, rendering: Rendering) -> list[DeployEvent]:
    """Every dated transition of one pipeline taken as one deployment, oldest first."""
    if view.status not in PIPELINE_STATUS:
        raise Malformed(f"unknown pipeline status {view.status!r}")
    if view.status == "skipped":
        return []
    fields = {
        **_project_fields(rendering.project),
        "ref": view.ref,
        "source": view.source,
        "pipeline_name": view.name,
    }
    environment = render(rendering.environment, fields)
    if not environment:
        raise Malformed(f"environment template {rendering.environment!r} rendered empty")
    fields["environment"] = environment
    current = PIPELINE_STATUS[view.status]
    transitions: list[tuple[Status, datetime]] = [(Status.PENDING, view.created_at)]
    if current in {Status.QUEUED, Status.WAITING}:
        transitions.append((current, view.updated_at))
    if view.started_at is not None:
        transitions.append((Status.IN_PROGRESS, view.started_at))
    elif current is Status.IN_PROGRESS:
        transitions.append((Status.IN_PROGRESS, view.updated_at))
    if current is not None and current.is_terminal:
        transitions.append((current, view.finished_at or view.updated_at))
    transitions = _never_earlier(transitions)
    common: dict[str, Any] = {
        "deployment_id": f"gl-pipeline-{view.id}",
        "service": _service(rendering, fields),
        "environment": environment[:MAX_ENVIRONMENT],
        "version": _version(rendering.version, view.sha, view.ref, view.is_tag, view.iid),
        "run_url": view.web_url,
        "run_number": view.iid if view.iid is not None else view.id,
        "actor": view.user,
        "ref": qualify_ref(view.ref, tag=view.is_tag if view.ref_kind_known else None),
        "sha": view.sha,
        "provider": PROVIDER,
        "source": rendering.source,
        "metadata": _metadata(
            rendering.project,
            view.ref,
            view.sha,
            view.is_tag,
            pipeline=str(view.id),
            pipeline_source=view.source,
            gitlab_status=view.status,
        ),
    }
    return [DeployEvent(status=status, happened_at=at, **common) for status, at in transitions]

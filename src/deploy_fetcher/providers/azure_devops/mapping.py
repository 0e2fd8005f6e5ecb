"""Raw Azure DevOps JSON → canonical deployment events. Pure functions: no I/O, no clock.

A poller sees states, not transitions, so every function here rebuilds the lifecycle from the
timestamps the API keeps (queue, start, finish; approval creation and decision) and emits one event
per transition it can date. Re-emitting the same transition later is harmless: the store deduplicates
on (deployment_id, status, happened_at).

Logical deployments and their ids:

* mode ``environments``: one stage attempt of one run deploying to one environment,
  ``ado-env-{environmentId}-{runId}-{stage}-{stageAttempt}``. Every deployment record of the stage's
  jobs and the stage's approvals and checks (from the run's timeline, before any record exists) share it;
* mode ``stages``: one stage attempt of one run, ``ado-stage-{runId}-{stage}-{attempt}``;
* mode ``releases``: one deployment (attempt) of one release environment, ``ado-rel-{deploymentId}``.

A function returns :class:`Skip` with a reason for an item it cannot or must not map; the adapter
logs malformed ones with their URL and silently drops the deliberate ones (skipped stages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from pydantic import ValidationError

from deploy_fetcher.lifecycle import rank
from deploy_fetcher.model import DeployEvent, Status, parse_timestamp
from deploy_fetcher.providers.kit import DEFAULT_SERVICE, map_service, render_template

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "OPERATION_STATUS",
    "RECORD_RESULT",
    "STAGE_RESULT",
    "Naming",
    "Skip",
    "StageTarget",
    "build_index",
    "record_events",
    "record_key",
    "release_deployment_id",
    "release_events",
    "release_status",
    "resolve_stage_environment",
    "stage_events",
]

PROVIDER: Final = "azure-devops"

#: Result of an environment deployment record (a deployment job) → canonical status.
RECORD_RESULT: Final[dict[str, Status | None]] = {
    "succeeded": Status.SUCCESS,
    "succeededWithIssues": Status.SUCCESS,
    "failed": Status.FAILURE,
    "canceled": Status.CANCELLED,
    "abandoned": Status.CANCELLED,
    "skipped": None,
}

#: Result of a completed timeline stage → canonical status (before the approval/check refinements).
STAGE_RESULT: Final[dict[str, Status | None]] = {
    "succeeded": Status.SUCCESS,
    "succeededWithIssues": Status.SUCCESS,
    "partiallySucceeded": Status.SUCCESS,
    "failed": Status.FAILURE,
    "canceled": Status.CANCELLED,
    "abandoned": Status.CANCELLED,
    "skipped": None,
}

#: Classic release ``operationStatus`` values that decide the status on their own. The service
#: writes them in PascalCase (``Approved``, ``PhaseFailed``) though its schema lists them in
#: camelCase: they are compared without regard to case (keys here are lower case).
OPERATION_STATUS: Final[dict[str, Status]] = {
    "pending": Status.WAITING,
    "evaluatinggates": Status.WAITING,
    "manualinterventionpending": Status.WAITING,
    "rejected": Status.REJECTED,
    "canceled": Status.CANCELLED,
    "phasecanceled": Status.CANCELLED,
    "gatefailed": Status.FAILURE,
    "phasefailed": Status.FAILURE,
}

#: Classic release ``deploymentStatus`` → status, when the operation status did not decide
#: (lower-case keys, compared without regard to case).
DEPLOYMENT_STATUS: Final[dict[str, Status]] = {
    "notdeployed": Status.QUEUED,
    "inprogress": Status.IN_PROGRESS,
    "succeeded": Status.SUCCESS,
    "partiallysucceeded": Status.SUCCESS,
    "failed": Status.FAILURE,
}

#: Operation statuses reached only once a phase of the deployment ran (lower case).
_PHASE_RAN: Final = frozenset(
    {"phaseinprogress", "phasesucceeded", "phasepartiallysucceeded", "phasefailed", "phasecanceled"}
)
#: A ``queued`` this close to the first approval request is the same moment: no queued event.
_SAME_MOMENT: Final = timedelta(seconds=1)

#: On its way to ``canceled``: the deployment status decides until then, never as an end.
_CANCELLING: Final = "cancelling"
_REJECTED_APPROVAL: Final = frozenset({"failed", "rejected"})
_SUCCESS_RESULTS: Final = frozenset({"succeeded", "succeededWithIssues", "partiallySucceeded"})
#: Release deployment statuses reached only after the deployment really started (lower case).
_RAN: Final = frozenset({"inprogress", "succeeded", "partiallysucceeded", "failed"})
_JOB_TYPES: Final = frozenset({"Phase", "Job"})
#: Azure DevOps writes ``0001-01-01T00:00:00`` for "never"; nothing real happened before 1971.
_FIRST_REAL_YEAR: Final = 1971
#: Stage > Phase > Job > Task: a timeline is never deeper than this below a stage.
_MAX_DEPTH: Final = 8


@dataclass(frozen=True)
class Skip:
    """An item that yields no event; ``malformed`` ones are logged with the URL they came from."""

    reason: str
    malformed: bool = False


@dataclass(frozen=True)
class Naming:
    """Everything from the source's configuration that shapes an event (no secrets)."""

    source: str
    organization: str
    organization_url: str
    project: str
    service_map: Mapping[str, str] = field(default_factory=dict)
    #: The ``service`` template (fields checked when the config loaded).
    service_template: str = DEFAULT_SERVICE
    version_from: str = "build_number"
    run_number_from: str = "run_id"

    def service(
        self,
        pipeline: str,
        *,
        repository: str | None = None,
        stage: str = "",
        environment: str = "",
    ) -> str:
        """The service name: the map, else the template, else the repository's or pipeline's name.

        ``repository`` is the run's ``repository.name`` (``owner/name`` for a GitHub or Bitbucket
        repository, the bare name for Azure Repos); a run without one (a classic release, a record
        whose build is gone) is named after its pipeline: ``{repo}`` and ``{repo_name}`` are then
        the pipeline's name.
        """
        repo, repo_name = self.repo_names(pipeline, repository)
        mapped = map_service(self.service_map, (repository, repository and repo_name, pipeline))
        if mapped is not None:
            return mapped
        values = {
            "repo": repo,
            "repo_name": repo_name,
            "pipeline": pipeline,
            "project": self.project,
            "organization": self.organization,
            "stage": stage,
            "environment": environment,
        }
        try:
            return render_template(self.service_template, values) or repo_name
        except ValueError:  # a format spec the value does not take (``{pipeline:d}``)
            return repo_name

    @staticmethod
    def repo_names(pipeline: str, repository: str | None) -> tuple[str, str]:
        """``{repo}`` and ``{repo_name}``: the repository's name and its last segment, else the pipeline's."""
        repo = repository or pipeline
        return repo, repo.rstrip("/").rsplit("/", 1)[-1] or pipeline

    def base_metadata(self, pipeline: str, repository: str | None = None) -> dict[str, str]:
        """Metadata every event of this project carries; ``repo`` / ``repo_name`` as in templates."""
        repo, repo_name = self.repo_names(pipeline, repository)
        return {
            "repo": repo,
            "repo_name": repo_name,
            "project": self.project,
            "organization": self.organization,
        }


@dataclass(frozen=True)
class StageTarget:
    """The environment a stage deploys to (its id only in mode ``environments``)."""

    environment: str
    environment_id: int | None = None


# -- small readers -------------------------------------------------------------------------------
def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        return None
    return None if parsed.year < _FIRST_REAL_YEAR else parsed


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        return int(value.strip())
    return None


def _one_of(value: Any, choices: frozenset[str]) -> bool:
    """Whether a JSON value is one of ``choices`` (a list or an object where text belongs is not)."""
    return isinstance(value, str) and value in choices


def _identity(value: Any) -> str | None:
    return _text(_dig(value, "displayName")) or _text(_dig(value, "uniqueName"))


def _branch(ref: str | None) -> str | None:
    if ref is None:
        return None
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _event(**fields: Any) -> DeployEvent | Skip:
    try:
        return DeployEvent(provider=PROVIDER, **fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem.get("loc", ()))
        return Skip(f"invalid {where}: {problem.get('msg', 'invalid value')}", malformed=True)


def _emit(
    events: list[DeployEvent], base: Mapping[str, Any], status: Status, when: datetime | None
) -> Skip | None:
    if when is None:
        return None
    made = _event(**base, status=status, happened_at=when)
    if isinstance(made, Skip):
        return made
    events.append(made)
    return None


# -- builds --------------------------------------------------------------------------------------
def build_index(builds: Sequence[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """Builds by id (items without an integer id are ignored)."""
    out: dict[int, Mapping[str, Any]] = {}
    for build in builds:
        build_id = _int(build.get("id"))
        if build_id is not None:
            out[build_id] = build
    return out


def _commit_url(naming: Naming, build: Mapping[str, Any], sha: str | None) -> str | None:
    if sha is None:
        return None
    repository = build.get("repository")
    kind = _text(_dig(repository, "type"))
    if kind == "TfsGit":
        name = _text(_dig(repository, "name"))
        if name:
            return (
                f"{naming.organization_url}/{quote(naming.project)}/_git/{quote(name)}/commit/{sha}"
            )
    if kind == "GitHub":
        full = _text(_dig(repository, "id"))
        if full and "/" in full:
            return f"https://github.com/{full}/commit/{sha}"
    return None


def _repository(build: Mapping[str, Any] | None) -> str | None:
    """The name of the repository a run (build) checked out, None when it says none."""
    return _text(_dig(build, "repository", "name"))


def _run_fields(
    naming: Naming,
    run_id: int,
    pipeline: str,
    build: Mapping[str, Any] | None,
    owner: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """version, run_url, run_number, actor, ref, sha and metadata of a run (build)."""
    build = build or {}
    build_number = _text(build.get("buildNumber")) or _text(_dig(owner, "name"))
    sha = _text(build.get("sourceVersion"))
    ref = _text(build.get("sourceBranch"))
    short = sha[:7] if sha else None
    version = (short if naming.version_from == "short_sha" else None) or build_number or short
    run_number = run_id
    if naming.run_number_from == "build_number":
        run_number = _int(build_number) or run_id
    run_url = _text(_dig(build, "_links", "web", "href")) or _text(
        _dig(owner, "_links", "web", "href")
    )
    metadata = naming.base_metadata(pipeline, _repository(build))
    metadata["run_id"] = str(run_id)
    branch = _branch(ref)
    if branch:
        metadata["branch"] = branch
    commit_url = _commit_url(naming, build, sha)
    if commit_url:
        metadata["commit_url"] = commit_url
    repository = _repository(build)
    if repository:
        metadata["git_repo"] = repository
    return {
        "version": version,
        "run_url": run_url,
        "run_number": run_number,
        "actor": _identity(build.get("requestedFor")),
        "ref": ref,
        "sha": sha,
        "metadata": metadata,
    }


# -- mode environments: deployment records -------------------------------------------------------
def record_key(environment_id: int, run_id: int, stage: str, attempt: int) -> str:
    """The deployment id shared by a stage attempt's records and its approvals in one environment."""
    return f"ado-env-{environment_id}-{run_id}-{stage}-{attempt}"


def record_events(
    record: Mapping[str, Any],
    *,
    environment: str,
    naming: Naming,
    build: Mapping[str, Any] | None = None,
) -> list[DeployEvent] | Skip:
    """Events of one environment deployment record (a deployment job in one environment).

    queued at ``queueTime``, in-progress at ``startTime``, the result at ``finishTime``; a skipped
    job yields nothing. ``build`` (the record's run) adds the commit, branch and requester.
    """
    environment_id = _int(record.get("environmentId"))
    run_id = _int(_dig(record, "owner", "id"))
    pipeline = _text(_dig(record, "definition", "name"))
    stage = _text(record.get("stageName")) or _text(record.get("jobName"))
    if environment_id is None or run_id is None or pipeline is None or stage is None:
        reason = "record without environmentId, owner.id, definition.name or stageName"
        return Skip(reason, malformed=True)
    result = record.get("result")
    if isinstance(result, str) and result and result not in RECORD_RESULT:
        return Skip(f"unknown record result {result!r}", malformed=True)
    if result == "skipped":
        return Skip("skipped job")
    attempt = _int(record.get("stageAttempt")) or 1
    owner = record.get("owner") if isinstance(record.get("owner"), dict) else None
    fields = _run_fields(naming, run_id, pipeline, build, owner)
    fields["metadata"].update(
        {
            "pipeline": pipeline,
            "stage": stage,
            "environment_id": str(environment_id),
            "record_id": str(record.get("id", "")),
        }
    )
    if _text(record.get("jobName")):
        fields["metadata"]["job"] = str(record["jobName"])
    base = {
        "deployment_id": record_key(environment_id, run_id, stage, attempt),
        "service": naming.service(
            pipeline, repository=_repository(build), stage=stage, environment=environment
        ),
        "environment": environment,
        "source": naming.source,
        **fields,
    }
    events: list[DeployEvent] = []
    queued = _time(record.get("queueTime"))
    started = _time(record.get("startTime"))
    finished = _time(record.get("finishTime"))
    steps: list[tuple[Status, datetime | None]] = [(Status.QUEUED, queued)]
    steps.append((Status.IN_PROGRESS, started))
    terminal = RECORD_RESULT.get(result) if isinstance(result, str) else None
    if terminal is not None:
        steps.append((terminal, finished or started or queued))
    for status, when in _forward(steps):
        problem = _emit(events, base, status, when)
        if problem is not None:
            return problem
    if not events:
        return Skip("record without any timestamp", malformed=True)
    return events


# -- stages (mode stages, and approvals / checks in mode environments) ------------------------------
def resolve_stage_environment(
    identifier: str | None,
    name: str | None,
    *,
    mapping: Mapping[str, str],
    pattern: re.Pattern[str] | None,
) -> str | None:
    """The environment a stage deploys to: the configured map first, then the pattern, else None."""
    for candidate in (identifier, name):
        if candidate and candidate in mapping:
            return mapping[candidate]
    if pattern is None:
        return None
    for candidate in (identifier, name):
        if not candidate:
            continue
        match = pattern.search(candidate)
        if match:
            groups = match.groupdict()
            value = groups.get("environment") or (
                match.group(1) if match.groups() else match.group(0)
            )
            if value:
                return str(value)
    return None


@dataclass
class _Stage:
    record: Mapping[str, Any]
    identifier: str
    order: int
    checkpoint: Mapping[str, Any] | None = None
    approvals: list[Mapping[str, Any]] = field(default_factory=list)
    jobs: list[Mapping[str, Any]] = field(default_factory=list)


def _stage_records(records: Sequence[Mapping[str, Any]]) -> dict[str, _Stage]:
    stages: dict[str, _Stage] = {}
    for record in records:
        if record.get("type") != "Stage" or not record.get("id"):
            continue
        identifier = _text(record.get("identifier")) or _text(record.get("name"))
        if identifier is not None:
            stages[str(record["id"])] = _Stage(record, identifier, _int(record.get("order")) or 0)
    return stages


def _owning_stage(
    record: Mapping[str, Any], stages: Mapping[str, _Stage], by_id: Mapping[str, Mapping[str, Any]]
) -> _Stage | None:
    parent = record.get("parentId")
    for _ in range(_MAX_DEPTH):
        if parent is None:
            return None
        if str(parent) in stages:
            return stages[str(parent)]
        parent = by_id.get(str(parent), {}).get("parentId")
    return None


def _stages(records: Sequence[Mapping[str, Any]]) -> list[_Stage]:
    """Group a timeline's records under their stages, in stage order."""
    by_id = {str(r.get("id")): r for r in records if r.get("id")}
    stages = _stage_records(records)
    for record in records:
        kind = record.get("type")
        owner = _owning_stage(record, stages, by_id)
        if owner is None:
            continue
        if kind == "Checkpoint":
            owner.checkpoint = record
        elif kind == "Checkpoint.Approval":
            owner.approvals.append(record)
        elif _one_of(kind, _JOB_TYPES):
            owner.jobs.append(record)
    return sorted(stages.values(), key=lambda s: (s.order, s.identifier))


def _stage_start(stage: _Stage) -> list[tuple[Status, datetime]]:
    """Waiting, queued and in-progress of a stage that has started.

    Waiting: from the checkpoint's start, when an approval is involved or checks still hold it.
    Queued: from the stage's start (or the end of its checks) while its jobs wait for an agent.
    In-progress: from the first job's start; a stage without job records runs from its own start.
    """
    record = stage.record
    steps: list[tuple[Status, datetime]] = []
    checkpoint = stage.checkpoint
    checkpoint_open = checkpoint is not None and checkpoint.get("state") != "completed"
    waited_at = _time(_dig(checkpoint, "startTime")) if checkpoint is not None else None
    if waited_at is None and checkpoint_open:
        waited_at = _time(record.get("startTime"))
    if waited_at is not None and (stage.approvals or checkpoint_open):
        steps.append((Status.WAITING, waited_at))
    if stage.jobs and not checkpoint_open:
        cleared = _time(_dig(checkpoint, "finishTime")) if checkpoint is not None else None
        queued_at = cleared or _time(record.get("startTime"))
        if queued_at is not None:
            steps.append((Status.QUEUED, queued_at))
    job_starts = [t for t in (_time(job.get("startTime")) for job in stage.jobs) if t is not None]
    if job_starts:
        steps.append((Status.IN_PROGRESS, min(job_starts)))
    elif (
        not stage.jobs and checkpoint is None and record.get("state") in ("inProgress", "completed")
    ):
        started = _time(record.get("startTime"))
        if started is not None:
            steps.append((Status.IN_PROGRESS, started))
    return steps


def _stage_lifecycle(stage: _Stage) -> list[tuple[Status, datetime]]:
    """The dated transitions of one stage, oldest first (empty for a skipped stage)."""
    record = stage.record
    state = record.get("state")
    result = record.get("result")
    if state == "completed" and result == "skipped":
        return []
    steps = _stage_start(stage)
    status = STAGE_RESULT.get(result) if isinstance(result, str) else None
    if state != "completed" or status is None:
        return _dated(_forward(steps))
    rejected = [a for a in stage.approvals if _one_of(a.get("result"), _REJECTED_APPROVAL)]
    if status in (Status.FAILURE, Status.CANCELLED) and rejected:
        status = Status.REJECTED
    decided = [t for t in (_time(a.get("finishTime")) for a in rejected) if t is not None]
    finished = (
        _time(record.get("finishTime"))
        or (max(decided) if decided else None)
        or _time(record.get("lastModified"))
        or (steps[-1][1] if steps else None)
    )
    if finished is not None:
        steps.append((status, finished))
    return _dated(_forward(steps))


def _dated(steps: Sequence[tuple[Status, datetime | None]]) -> list[tuple[Status, datetime]]:
    return [(status, when) for status, when in steps if when is not None]


def _gate_steps(
    stage: _Stage, steps: list[tuple[Status, datetime]]
) -> list[tuple[Status, datetime]]:
    """What deployment records cannot show: the waiting, and how it ended if no job ever ran."""
    waited = any(status == Status.WAITING for status, _ in steps)
    ran = any(_time(job.get("startTime")) is not None for job in stage.jobs)
    return [
        (status, when)
        for status, when in steps
        if status == Status.WAITING or (status.is_terminal and waited and not ran)
    ]


def stage_events(
    build: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    *,
    naming: Naming,
    resolve: Callable[[str, str | None], StageTarget | None],
    gates_only: bool = False,
    parents: bool = True,
) -> tuple[list[DeployEvent], list[Skip]]:
    """Events of the deployment stages of one run, from its timeline.

    ``resolve(identifier, display name)`` says which stages deploy where (None: not a deployment).
    A stage waiting on an approval or a check is ``waiting`` from the checkpoint's start, ``queued``
    once it started (or its checks cleared) until its first job starts (``in-progress``); a
    completed stage maps by :data:`STAGE_RESULT`, except that a
    rejected (or timed-out) approval makes a failed or canceled stage ``rejected``.
    ``gates_only`` (mode environments) keeps only what deployment records cannot show: the waiting,
    and its end when no job ran after it (rejected, or cancelled while waiting). With ``parents``, a stage's parent is the nearest earlier
    deployment stage of the same run that succeeded — the default dependency of multi-stage YAML.
    """
    run_id = _int(build.get("id"))
    pipeline = _text(_dig(build, "definition", "name"))
    if run_id is None or pipeline is None:
        return [], [Skip("build without id or definition.name", malformed=True)]
    fields = _run_fields(naming, run_id, pipeline, build, None)
    events: list[DeployEvent] = []
    problems: list[Skip] = []
    previous_success: str | None = None
    for stage in _stages(records):
        name = _text(stage.record.get("name"))
        target = resolve(stage.identifier, name)
        if target is None:
            continue
        attempt = _int(stage.record.get("attempt")) or 1
        if target.environment_id is not None:
            deployment_id = record_key(target.environment_id, run_id, stage.identifier, attempt)
        else:
            deployment_id = f"ado-stage-{run_id}-{stage.identifier}-{attempt}"
        steps = _stage_lifecycle(stage)
        if gates_only:
            steps = _gate_steps(stage, steps)
        metadata = dict(fields["metadata"])
        metadata.update({"pipeline": pipeline, "stage": stage.identifier})
        if target.environment_id is not None:
            metadata["environment_id"] = str(target.environment_id)
        base = {
            **fields,
            "metadata": metadata,
            "deployment_id": deployment_id,
            "service": naming.service(
                pipeline,
                repository=_repository(build),
                stage=stage.identifier,
                environment=target.environment,
            ),
            "environment": target.environment,
            "source": naming.source,
            "parent_deployments": [previous_success] if parents and previous_success else [],
        }
        for status, when in steps:
            problem = _emit(events, base, status, when)
            if problem is not None:
                problems.append(problem)
                break
        if stage.record.get("state") == "completed" and _one_of(
            stage.record.get("result"), _SUCCESS_RESULTS
        ):
            previous_success = deployment_id
    return events, problems


# -- mode releases -------------------------------------------------------------------------------
def release_deployment_id(deployment_id: int) -> str:
    """The logical deployment id of one classic release deployment."""
    return f"ado-rel-{deployment_id}"


def release_status(deployment_status: str | None, operation_status: str | None) -> Status | None:
    """Current status of a release deployment from its (deploymentStatus, operationStatus) pair.

    The operation status wins when it is decisive (approval pending, rejected, canceled, gate failed);
    otherwise the deployment status decides, except that ``cancelling`` is never an end (in
    progress until ``canceled``). Values are compared without regard to case (the service sends
    ``PhaseFailed`` where its schema says ``phaseFailed``). None for values this table does not know.
    """
    operation = operation_status.lower() if operation_status else None
    if operation in OPERATION_STATUS:
        return OPERATION_STATUS[operation]
    status = DEPLOYMENT_STATUS.get(deployment_status.lower()) if deployment_status else None
    if operation == _CANCELLING and (status is None or status.is_terminal):
        # Not ended yet: the end is ``canceled``, dated ``completedOn``, reported once then.
        return Status.IN_PROGRESS
    return status


def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _artifact(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    artifacts = _dig(deployment, "release", "artifacts")
    if not isinstance(artifacts, list):
        return {}
    candidates = [a for a in artifacts if isinstance(a, dict)]
    primary = [a for a in candidates if a.get("isPrimary")]
    chosen = (primary or candidates or [{}])[0]
    reference = chosen.get("definitionReference")
    return reference if isinstance(reference, dict) else {}


def _release_base(
    deployment: Mapping[str, Any], definition: str, environment: str, naming: Naming
) -> dict[str, Any]:
    """The fields every event of one release deployment shares."""
    raw = deployment.get("release")
    release: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    reference = _artifact(deployment)
    release_name = _text(_dig(release, "name"))
    sha = _text(_dig(reference, "sourceVersion", "id"))
    versions = {
        "build_number": _text(_dig(reference, "version", "name")),
        "short_sha": sha[:7] if sha else None,
        "release_name": release_name,
    }
    ref = _text(_dig(reference, "branch", "id")) or _text(_dig(reference, "branches", "id"))
    metadata = naming.base_metadata(definition)
    metadata.update({"pipeline": definition, "release_id": str(_dig(release, "id") or "")})
    branch = _branch(ref)
    if branch:
        metadata["branch"] = branch
    return {
        "deployment_id": release_deployment_id(int(deployment["id"])),
        "service": naming.service(definition, environment=environment),
        "environment": environment,
        "source": naming.source,
        "version": versions.get(naming.version_from) or release_name,
        "run_url": _text(_dig(release, "_links", "web", "href"))
        or _text(release.get("webAccessUri")),
        "run_number": _int(release.get("id")),
        "actor": _identity(deployment.get("requestedFor"))
        or _identity(deployment.get("requestedBy")),
        "ref": ref,
        "sha": sha,
        "metadata": metadata,
    }


def _release_steps(
    deployment: Mapping[str, Any], current: Status
) -> list[tuple[Status, datetime | None]]:
    """The dated transitions of one release deployment, in lifecycle order."""
    modified = _time(deployment.get("lastModifiedOn"))
    started = _time(deployment.get("startedOn"))
    queued = _time(deployment.get("queuedOn"))
    listed = deployment.get("preDeployApprovals")
    approvals = [
        a
        for a in (listed if isinstance(listed, list) else [])
        if isinstance(a, dict) and not a.get("isAutomated")
    ]
    asked = [t for t in (_time(a.get("createdOn")) for a in approvals) if t is not None]
    decided = [
        t
        for t in (
            _time(a.get("modifiedOn")) for a in approvals if _lower(a.get("status")) != "pending"
        )
        if t is not None
    ]
    rejected = [
        t
        for t in (
            _time(a.get("modifiedOn")) for a in approvals if _lower(a.get("status")) == "rejected"
        )
        if t is not None
    ]
    ran = _lower(deployment.get("deploymentStatus")) in _RAN or (
        _lower(deployment.get("operationStatus")) in _PHASE_RAN
    )
    steps: list[tuple[Status, datetime | None]] = []
    if queued is not None and not (asked and min(asked) - queued < _SAME_MOMENT):
        # Straight to an approval is waiting from the start, not a zero-length queued.
        steps.append((Status.QUEUED, queued))
    if asked:
        steps.append((Status.WAITING, min(asked)))
    if ran:
        # The service sets ``startedOn`` before the approvals are even created: the deployment
        # runs from the last approval decision on.
        start = started or (modified if current == Status.IN_PROGRESS else None)
        if start is not None and decided:
            start = max(start, *decided)
        steps.append((Status.IN_PROGRESS, start))
    elif current == Status.WAITING and not asked:
        # Gates, or a manual intervention before anything ran: waiting since the change. A wait
        # in the middle of a running deployment is not a step back: it stays in progress.
        steps.append((Status.WAITING, modified))
    if current.is_terminal:
        when = max(rejected) if current == Status.REJECTED and rejected else None
        steps.append((current, when or _time(deployment.get("completedOn")) or modified))
    return _forward(steps)


def _forward(
    steps: Sequence[tuple[Status, datetime | None]],
) -> list[tuple[Status, datetime | None]]:
    """Steps that never go back in the lifecycle, each dated no earlier than the one before.

    A step behind one already reached is left out (a stage whose checks cleared is not queued
    again after waiting); a step dated before the previous one takes its time (the service's
    clocks disagree by a few hundred milliseconds, and ``0001-01-01`` means never).
    """
    out: list[tuple[Status, datetime | None]] = []
    reached = -1
    latest: datetime | None = None
    for status, when in steps:
        if rank(status) < reached:
            continue
        reached = rank(status)
        dated = latest if when is not None and latest is not None and when < latest else when
        latest = dated if dated is not None else latest
        out.append((status, dated))
    return out


def release_events(deployment: Mapping[str, Any], *, naming: Naming) -> list[DeployEvent] | Skip:
    """Events of one classic release deployment (one attempt on one release environment).

    queued at ``queuedOn``; waiting from the first manual pre-deployment approval's creation;
    in-progress at ``startedOn`` once it really ran; waiting again at ``lastModifiedOn`` while gates
    or a manual intervention hold it; the end at ``completedOn`` (a rejection at the rejecting
    approval's time).
    """
    deployment_id = _int(deployment.get("id"))
    definition = _text(_dig(deployment, "releaseDefinition", "name"))
    environment = _text(_dig(deployment, "releaseEnvironment", "name"))
    if deployment_id is None or definition is None or environment is None:
        reason = "deployment without id, releaseDefinition.name or releaseEnvironment.name"
        return Skip(reason, malformed=True)
    deployment_status = deployment.get("deploymentStatus")
    operation_status = deployment.get("operationStatus")
    current = release_status(
        deployment_status if isinstance(deployment_status, str) else None,
        operation_status if isinstance(operation_status, str) else None,
    )
    if current is None:
        reason = f"unknown status pair {deployment_status!r}/{operation_status!r}"
        return Skip(reason, malformed=True)
    base = _release_base(deployment, definition, environment, naming)
    events: list[DeployEvent] = []
    for status, when in _release_steps(deployment, current):
        problem = _emit(events, base, status, when)
        if problem is not None:
            return problem
    if not events:
        return Skip("deployment without any timestamp", malformed=True)
    return events

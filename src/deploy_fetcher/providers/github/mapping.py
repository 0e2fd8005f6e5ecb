"""Pure mapping of GitHub JSON (deployments, their statuses, workflow runs) to canonical events.

No I/O here: the adapter fetches, these functions decide. Every input is the raw JSON GitHub sends
(dicts), so the tests feed recorded responses straight in.

Deployments mode — one status is one event (``gh-deploy-{id}``):

==============  ==========================================================================
GitHub state    canonical
==============  ==========================================================================
pending         pending
queued          queued
in_progress     in-progress
waiting         waiting
success         success
failure/error   failure; ``cancelled`` when the linked run was cancelled; ``rejected`` when
                a reviewer rejected the deployment's environment
inactive        not emitted (GitHub marks superseded deployments inactive)
==============  ==========================================================================

Workflow-runs mode — one run attempt is one deployment (``gh-run-{id}-{attempt}``): queued when the
attempt was created, in-progress when it started, waiting while it waits (``waiting`` status or an
``action_required`` conclusion), then success / failure (``failure``, ``timed_out``,
``startup_failure``) / cancelled (or rejected) at its completion. ``skipped``, ``neutral`` and
``stale`` runs deployed nothing and produce no event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import ValidationError

from deploy_fetcher.lifecycle import rank
from deploy_fetcher.model import DeployEvent, Status, parse_timestamp, qualify_ref
from deploy_fetcher.providers.github.config import RepoSettings
from deploy_fetcher.providers.kit import map_service

__all__ = [
    "DEPLOYMENT_STATES",
    "RUN_CONCLUSIONS",
    "DeploymentOutcome",
    "JobTimes",
    "Repo",
    "RunOutcome",
    "deployment_events",
    "deployment_problem",
    "job_times",
    "ref_of",
    "render",
    "run_events",
    "run_id_of_statuses",
    "run_link",
    "run_problem",
    "service_name",
    "snapshot_deployment",
    "sorted_statuses",
    "status_problem",
    "version_of",
    "web_base",
]

PROVIDER: Final = "github"

#: Deployment status ``state`` → canonical status (None: not emitted).
DEPLOYMENT_STATES: Final[Mapping[str, Status | None]] = {
    "pending": Status.PENDING,
    "queued": Status.QUEUED,
    "in_progress": Status.IN_PROGRESS,
    "waiting": Status.WAITING,
    "success": Status.SUCCESS,
    "failure": Status.FAILURE,
    "error": Status.FAILURE,
    "inactive": None,
}
_TERMINAL_STATES: Final = frozenset({"success", "failure", "error", "inactive"})
_FAILED_STATES: Final = frozenset({"failure", "error"})

#: Workflow run ``conclusion`` → canonical status (None: deployed nothing, not emitted).
RUN_CONCLUSIONS: Final[Mapping[str, Status | None]] = {
    "success": Status.SUCCESS,
    "failure": Status.FAILURE,
    "timed_out": Status.FAILURE,
    "startup_failure": Status.FAILURE,
    "cancelled": Status.CANCELLED,
    "action_required": Status.WAITING,
    "skipped": None,
    "neutral": None,
    "stale": None,
}
_EMITTED_CONCLUSIONS: Final = frozenset(k for k, v in RUN_CONCLUSIONS.items() if v is not None)
_WAITING_RUN_STATES: Final = frozenset({"waiting"})
_QUEUED_RUN_STATES: Final = frozenset({"requested", "queued", "pending", "waiting"})

#: Run events whose ``head_branch`` is a branch / a tag. Others (``push``, ``workflow_dispatch`` …)
#: run on either, and nothing in the run says which: their ref is passed on as a bare name.
_BRANCH_EVENTS: Final = frozenset(
    {"pull_request", "pull_request_target", "merge_group", "schedule", "pull_request_review"}
)
_TAG_EVENTS: Final = frozenset({"release"})

_RUN_LINK = re.compile(r"/actions/runs/(\d+)")
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Repo:
    """A repository as the events name it."""

    full_name: str
    web_url: str

    @property
    def owner(self) -> str:
        """The account that owns the repository."""
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The repository's own name."""
        return self.full_name.split("/", 1)[1]


def web_base(api_base: str) -> str:
    """The web UI's base URL for an API base URL (``api.github.com`` → ``github.com``)."""
    parts = urlsplit(api_base)
    if parts.hostname == "api.github.com":
        return "https://github.com"
    path = parts.path.rstrip("/")
    path = path.removesuffix("/api/v3")
    return f"{parts.scheme}://{parts.netloc}{path}"


# -- validation -----------------------------------------------------------------------------------
def _timestamp_problem(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if not isinstance(value, str):
        return f"{key} missing"
    try:
        parse_timestamp(value)
    except ValueError:
        return f"{key} is not a timestamp: {value!r}"
    return None


def deployment_problem(raw: Any) -> str | None:
    """Why a deployment object cannot be used (None when it can)."""
    if not isinstance(raw, Mapping):
        return "not an object"
    if not isinstance(raw.get("id"), int):
        return "id missing"
    env = raw.get("environment")
    if not isinstance(env, str) or not env.strip():
        return "environment missing"
    return _timestamp_problem(raw, "created_at")


def status_problem(raw: Any) -> str | None:
    """Why a deployment status object cannot be used (None when it can)."""
    if not isinstance(raw, Mapping):
        return "not an object"
    state = raw.get("state")
    if not isinstance(state, str):
        return "state missing"
    if state.lower() not in DEPLOYMENT_STATES:
        return f"unknown state {state!r}"
    return _timestamp_problem(raw, "created_at")


def run_problem(raw: Any) -> str | None:
    """Why a workflow run object cannot be used (None when it can)."""
    if not isinstance(raw, Mapping):
        return "not an object"
    if not isinstance(raw.get("id"), int):
        return "id missing"
    if not isinstance(raw.get("status"), str):
        return "status missing"
    conclusion = raw.get("conclusion")
    if raw.get("status") == "completed" and (
        not isinstance(conclusion, str) or conclusion not in RUN_CONCLUSIONS
    ):
        return f"unknown conclusion {conclusion!r}"
    for key in ("created_at", "updated_at"):
        problem = _timestamp_problem(raw, key)
        if problem:
            return problem
    return None


# -- small helpers --------------------------------------------------------------------------------
def run_link(url: Any) -> int | None:
    """The workflow run id in a status's ``log_url`` / ``target_url`` (None for other tools)."""
    if not isinstance(url, str):
        return None
    match = _RUN_LINK.search(url)
    return int(match.group(1)) if match else None


def run_id_of_statuses(statuses: Sequence[Mapping[str, Any]]) -> int | None:
    """The run that made a deployment, read from any of its statuses."""
    for status in statuses:
        for key in ("log_url", "target_url"):
            run_id = run_link(status.get(key))
            if run_id is not None:
                return run_id
    return None


def sorted_statuses(statuses: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Statuses oldest first (GitHub does not promise an order); ties broken by id."""
    return sorted(
        statuses,
        key=lambda s: (
            parse_timestamp(s["created_at"]),
            s.get("id") if isinstance(s.get("id"), int) else 0,
        ),
    )


def _login(user: Any) -> str | None:
    if isinstance(user, Mapping) and isinstance(user.get("login"), str):
        return str(user["login"])
    return None


def _branch(ref: Any) -> str | None:
    if not isinstance(ref, str) or not ref or _SHA.match(ref):
        return None
    return ref.removeprefix("refs/heads/")


def ref_of(name: Any, event: Any) -> str | None:
    """``ref`` in its full form when the run's event says whether the name is a branch or a tag."""
    if not isinstance(name, str) or not name or _SHA.match(name):
        return None
    tag: bool | None = None
    if isinstance(event, str):
        tag = True if event in _TAG_EVENTS else False if event in _BRANCH_EVENTS else None
    return qualify_ref(name, tag=tag)


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill a ``{field}`` template (fields were checked when the config was loaded)."""
    return template.format_map({k: values.get(k, "") for k in re.findall(r"{([^{}]*)}", template)})


def service_name(
    settings: RepoSettings,
    *,
    repo: Repo,
    workflow: str | None,
    workflow_file: str | None,
    branch: str | None,
    environment: str,
) -> str:
    """The service: ``service_map`` on the repository or the workflow, else the ``service`` template.

    The template renders empty only when it names fields without a value here (``{branch}`` of a
    tag): the repository's name then, the default's value.
    """
    subjects = (repo.full_name, repo.name, workflow, workflow_file)
    mapped = map_service(settings.service_map, subjects)
    if mapped is not None:
        return mapped
    values = {
        "workflow": workflow or repo.name,
        "workflow_file": workflow_file or "",
        "repo": repo.full_name,
        "repo_name": repo.name,
        "owner": repo.owner,
        "branch": branch or "",
        "environment": environment,
    }
    name = render(settings.service, values).strip()
    return name or repo.name


def version_of(
    settings: RepoSettings,
    *,
    sha: Any,
    ref: Any,
    run_number: Any,
    payload: Any,
) -> str | None:
    """The version the settings ask for; None when that value is missing (ingest goes on)."""
    choice = settings.version
    if choice in ("sha", "sha7"):
        if not isinstance(sha, str) or not sha:
            return None
        return sha[:7] if choice == "sha7" else sha
    if choice == "ref":
        return ref if isinstance(ref, str) and ref else None
    if choice == "run_number":
        return str(run_number) if isinstance(run_number, int) else None
    key = choice.removeprefix("payload.")
    value: Any = payload
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _workflow_file(path: Any) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    return path.split("@", 1)[0].rsplit("/", 1)[-1]


def _metadata(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v not in (None, "")}


# -- deployments mode -----------------------------------------------------------------------------
def snapshot_deployment(raw: Mapping[str, Any], settings: RepoSettings) -> dict[str, Any]:
    """The fields of a deployment its later events need, small enough to keep in the cursor."""
    out: dict[str, Any] = {
        key: raw[key]
        for key in ("id", "environment", "sha", "ref", "task", "created_at")
        if raw.get(key) is not None
    }
    login = _login(raw.get("creator"))
    if login:
        out["creator"] = {"login": login}
    if settings.version.startswith("payload."):
        value = version_of(
            settings, sha=None, ref=None, run_number=None, payload=raw.get("payload")
        )
        if value is not None:
            payload: dict[str, Any] = {}
            node = payload
            parts = settings.version.removeprefix("payload.").split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
            out["payload"] = payload
    return out


@dataclass(frozen=True)
class DeploymentOutcome:
    """The events of one deployment and what the adapter must remember about it."""

    events: list[DeployEvent]
    #: No further change is expected: never fetch this deployment again.
    terminal: bool
    #: The last status is a failure whose run has not completed yet: its terminal event is held
    #: back until the run's conclusion says whether it was cancelled.
    awaiting_run: bool = False
    #: True when a status with ``waiting`` was seen (a reviewer may reject it).
    waited: bool = False
    problems: list[str] = field(default_factory=list)


def _good_statuses(
    statuses: Sequence[Mapping[str, Any]], problems: list[str]
) -> list[Mapping[str, Any]]:
    good: list[Mapping[str, Any]] = []
    for status in statuses:
        problem = status_problem(status)
        if problem:
            ident = status.get("id") if isinstance(status, Mapping) else "?"
            problems.append(f"status {ident}: {problem}")
        else:
            good.append(status)
    return sorted_statuses(good)


def _run_value(run: Mapping[str, Any] | None, key: str) -> Any:
    return run.get(key) if run is not None else None


def _run_text(run: Mapping[str, Any] | None, key: str) -> str | None:
    """A text field of the linked run; anything else (a proxy's or a newer API's shape) is absent."""
    value = _run_value(run, key)
    return value if isinstance(value, str) and value else None


def _deployment_base(
    deployment: Mapping[str, Any],
    ordered: Sequence[Mapping[str, Any]],
    *,
    repo: Repo,
    source: str,
    settings: RepoSettings,
    run: Mapping[str, Any] | None,
    workflow: str | None,
    parents: Sequence[str],
) -> dict[str, Any]:
    """The fields every event of one deployment shares."""
    environment = str(deployment["environment"]).strip()
    ref = deployment.get("ref") if isinstance(deployment.get("ref"), str) else None
    sha = deployment.get("sha") if isinstance(deployment.get("sha"), str) else None
    workflow = workflow or _run_text(run, "name")
    workflow_file = _workflow_file(_run_value(run, "path"))
    branch = _run_text(run, "head_branch") or _branch(ref)
    run_number = _run_value(run, "run_number")
    actor = _login(_run_value(run, "triggering_actor")) or _login(_run_value(run, "actor"))
    return {
        "deployment_id": f"gh-deploy-{deployment['id']}",
        "service": service_name(
            settings,
            repo=repo,
            workflow=workflow,
            workflow_file=workflow_file,
            branch=branch,
            environment=environment,
        ),
        "environment": environment,
        "version": version_of(
            settings, sha=sha, ref=ref, run_number=run_number, payload=deployment.get("payload")
        ),
        "run_url": _run_text(run, "html_url") or _status_url(ordered),
        "run_number": run_number if isinstance(run_number, int) else None,
        "actor": actor or _login(deployment.get("creator")),
        "ref": ref_of(ref, _run_value(run, "event")) if ref else None,
        "sha": sha,
        "parent_deployments": list(parents),
        "provider": PROVIDER,
        "source": source,
        "metadata": _metadata(
            repo=repo.full_name,
            repo_name=repo.name,
            owner=repo.owner,
            branch=branch,
            workflow=workflow,
            workflow_file=workflow_file,
            commit_url=f"{repo.web_url}/{repo.full_name}/commit/{sha}" if sha else None,
            task=deployment.get("task"),
            github_deployment_id=deployment["id"],
            run_id=_run_value(run, "id"),
        ),
    }


def _final_status(mapped: Status, *, rejected: bool, conclusion: Any) -> Status:
    """A failure is a rejection when a reviewer rejected it, a cancellation when its run was."""
    if rejected:
        return Status.REJECTED
    if conclusion == "cancelled":
        return Status.CANCELLED
    return mapped


def deployment_events(
    deployment: Mapping[str, Any],
    statuses: Sequence[Mapping[str, Any]],
    *,
    repo: Repo,
    source: str,
    settings: RepoSettings,
    run: Mapping[str, Any] | None = None,
    workflow: str | None = None,
    rejected: bool = False,
    parents: Sequence[str] = (),
    hold_unfinished_run: bool = True,
) -> DeploymentOutcome:
    """Map one deployment and its statuses to events (one per status, ``inactive`` left out).

    ``run`` is the workflow run linked from the statuses, when there is one and it could be read;
    ``workflow`` the YAML ``name:`` of its workflow. A deployment without any status yet is pending
    since its creation.
    """
    problems: list[str] = []
    ordered = _good_statuses(statuses, problems)
    base = _deployment_base(
        deployment,
        ordered,
        repo=repo,
        source=source,
        settings=settings,
        run=run,
        workflow=workflow,
        parents=parents,
    )
    if not ordered:
        pending = [_event(base, Status.PENDING, deployment["created_at"], problems)]
        return DeploymentOutcome(_valid(pending), terminal=False, problems=problems)
    run_completed = run is not None and run.get("status") == "completed"
    conclusion = _run_value(run, "conclusion")
    last_state = ordered[-1]["state"].lower()
    terminal = last_state in _TERMINAL_STATES
    awaiting = (
        last_state in _FAILED_STATES
        and run is not None
        and not run_completed
        and hold_unfinished_run
    )
    events: list[DeployEvent | str] = []
    reached = -1
    for index, status in enumerate(ordered):
        state = status["state"].lower()
        mapped = DEPLOYMENT_STATES[state]
        if mapped is None:
            continue
        if index == len(ordered) - 1 and state in _FAILED_STATES:
            if awaiting:
                continue
            mapped = _final_status(mapped, rejected=rejected, conclusion=conclusion)
        if rank(mapped) < reached:
            # GitHub sets ``queued`` again once a reviewer approves a ``waiting`` deployment: the
            # lifecycle never goes back, so the deployment stays waiting until it runs.
            continue
        reached = rank(mapped)
        events.append(_event(base, mapped, status["created_at"], problems))
    if not terminal and run is not None and run_completed:
        # The run ended but this deployment never got a final status (cancelled or rejected while
        # waiting): close it at the run's completion.
        closing = _final_status(Status.FAILURE, rejected=rejected, conclusion=conclusion)
        if closing is not Status.FAILURE:
            events.append(_event(base, closing, run["updated_at"], problems))
            terminal = True
    return DeploymentOutcome(
        _never_earlier(events),
        terminal=terminal and not awaiting,
        awaiting_run=awaiting,
        waited=any(s["state"].lower() == "waiting" for s in ordered),
        problems=problems,
    )


def _status_url(ordered: Sequence[Mapping[str, Any]]) -> str | None:
    for status in reversed(ordered):
        for key in ("log_url", "target_url"):
            value = status.get(key)
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                return value
    return None


def _event(
    base: Mapping[str, Any], status: Status, at: str, problems: list[str]
) -> DeployEvent | str:
    """The event, or a marker string when it does not validate (the reason goes to ``problems``)."""
    try:
        return DeployEvent(**base, status=status, happened_at=parse_timestamp(at))
    except (ValidationError, ValueError) as exc:
        reason = (
            exc.errors()[0].get("msg", str(exc)) if isinstance(exc, ValidationError) else str(exc)
        )
        problems.append(f"invalid event: {reason}")
        return "invalid"


def _valid(events: Sequence[DeployEvent | str]) -> list[DeployEvent]:
    return [e for e in events if isinstance(e, DeployEvent)]


# -- workflow-runs mode ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunOutcome:
    """The events of one run attempt and whether it still needs watching."""

    events: list[DeployEvent]
    terminal: bool
    waiting: bool = False
    #: When the attempt was first seen waiting (kept by the cursor so the event keeps its time).
    waiting_since: str | None = None
    #: When it was first seen running again after that wait.
    resumed_at: str | None = None
    problems: list[str] = field(default_factory=list)


def _run_base(
    run: Mapping[str, Any],
    *,
    repo: Repo,
    source: str,
    settings: RepoSettings,
    workflow: str | None,
    attempt: int,
) -> dict[str, Any]:
    """The fields every event of one run attempt shares."""
    workflow = workflow or (run.get("name") if isinstance(run.get("name"), str) else None)
    workflow_file = _workflow_file(run.get("path"))
    branch = run.get("head_branch") if isinstance(run.get("head_branch"), str) else None
    sha = run.get("head_sha") if isinstance(run.get("head_sha"), str) else None
    values = {
        "workflow": workflow or repo.name,
        "workflow_file": workflow_file or "",
        "repo": repo.full_name,
        "repo_name": repo.name,
        "owner": repo.owner,
        "branch": branch or "",
    }
    environment = render(settings.environment, values).strip() or "production"
    return {
        "deployment_id": f"gh-run-{run['id']}-{attempt}",
        "service": service_name(
            settings,
            repo=repo,
            workflow=workflow,
            workflow_file=workflow_file,
            branch=branch,
            environment=environment,
        ),
        "environment": environment,
        "version": version_of(
            settings, sha=sha, ref=branch, run_number=run.get("run_number"), payload=None
        ),
        "run_url": run.get("html_url") if isinstance(run.get("html_url"), str) else None,
        "run_number": run.get("run_number") if isinstance(run.get("run_number"), int) else None,
        "actor": _login(run.get("triggering_actor")) or _login(run.get("actor")),
        "ref": ref_of(branch, run.get("event")),
        "sha": sha,
        "provider": PROVIDER,
        "source": source,
        "metadata": _metadata(
            repo=repo.full_name,
            repo_name=repo.name,
            owner=repo.owner,
            branch=branch,
            workflow=workflow,
            workflow_file=workflow_file,
            commit_url=f"{repo.web_url}/{repo.full_name}/commit/{sha}" if sha else None,
            run_id=run["id"],
            run_attempt=attempt,
            event=run.get("event"),
        ),
    }


@dataclass(frozen=True)
class JobTimes:
    """When an attempt's jobs really started and ended (from ``GET …/attempts/{n}/jobs``)."""

    started: str | None = None
    completed: str | None = None


def job_times(jobs: Any) -> JobTimes:
    """The earliest real start and the latest end among an attempt's jobs.

    A run's own ``run_started_at`` is when the attempt was created (on attempt 1 it equals
    ``created_at``), and its ``updated_at`` moves long after completion; the jobs say when work
    started and ended. A job that never ran — skipped, or cancelled before a runner took it
    (``started_at`` equal to its creation, no runner) — has no start.
    """
    starts: list[tuple[datetime, str]] = []
    ends: list[tuple[datetime, str]] = []
    for job in jobs if isinstance(jobs, list) else []:
        if not isinstance(job, Mapping) or job.get("conclusion") == "skipped":
            continue
        if job.get("status") in ("in_progress", "completed") and not _timestamp_problem(
            job, "started_at"
        ):
            ran = isinstance(job.get("runner_name"), str) and bool(job["runner_name"])
            if ran or job.get("started_at") != job.get("created_at"):
                starts.append((parse_timestamp(job["started_at"]), str(job["started_at"])))
        if job.get("status") == "completed" and not _timestamp_problem(job, "completed_at"):
            ends.append((parse_timestamp(job["completed_at"]), str(job["completed_at"])))
    return JobTimes(
        started=min(starts)[1] if starts else None,
        completed=max(ends)[1] if ends else None,
    )


def run_events(
    run: Mapping[str, Any],
    *,
    repo: Repo,
    source: str,
    settings: RepoSettings,
    workflow: str | None = None,
    rejected: bool = False,
    waiting_since: str | None = None,
    resumed_at: str | None = None,
    jobs: JobTimes | None = None,
) -> RunOutcome:
    """Map one workflow run attempt to its events.

    ``workflow`` is the YAML ``name:`` of the run's workflow (the run's ``display_title`` is not
    used: it changes with ``run-name``). ``waiting_since`` / ``resumed_at`` are when a previous poll
    first saw this attempt waiting / running again, so those events keep their time across polls.
    ``jobs`` are the attempt's job times: in-progress is dated when the first job started and the
    end when the last one completed. Without them (not read, or no job ran) the run's own
    ``run_started_at`` and ``updated_at`` stand in, and no state is dated before the one before it.
    """
    problems: list[str] = []
    attempt = run["run_attempt"] if isinstance(run.get("run_attempt"), int) else 1
    status = str(run["status"])
    conclusion = run.get("conclusion")
    if status == "completed" and conclusion not in ("action_required", *_EMITTED_CONCLUSIONS):
        return RunOutcome([], terminal=True)
    base = _run_base(
        run, repo=repo, source=source, settings=settings, workflow=workflow, attempt=attempt
    )
    started = run.get("run_started_at") if isinstance(run.get("run_started_at"), str) else None
    first = str(run["created_at"]) if attempt == 1 or not started else started
    events: list[DeployEvent | str] = [_event(base, Status.QUEUED, first, problems)]
    if status in _WAITING_RUN_STATES or conclusion == "action_required":
        since = waiting_since or str(run["updated_at"])
        events.append(_event(base, Status.WAITING, since, problems))
        return RunOutcome(
            _valid(events), terminal=False, waiting=True, waiting_since=since, problems=problems
        )
    if status in _QUEUED_RUN_STATES:
        return RunOutcome(_valid(events), terminal=False, problems=problems)
    if waiting_since:
        events.append(_event(base, Status.WAITING, waiting_since, problems))
    if status != "completed":
        job_start = jobs.started if jobs else None
        # After a wait the run's start time lies before the wait: the resumption is dated by when
        # it was first seen running again (kept by the cursor), so the latest state stays right.
        # Jobs read and none started yet: still waiting for a runner, in progress once one runs.
        at = (
            (resumed_at or str(run["updated_at"]))
            if waiting_since
            else (job_start if jobs is not None else started)
        )
        if at:
            events.append(_event(base, Status.IN_PROGRESS, at, problems))
        return RunOutcome(
            _never_earlier(events),
            terminal=False,
            waiting_since=waiting_since,
            resumed_at=at if waiting_since else None,
            problems=problems,
        )
    progress = _progress_of_finished(run, started, jobs, waiting_since, resumed_at)
    if progress:
        events.append(_event(base, Status.IN_PROGRESS, progress, problems))
    mapped = RUN_CONCLUSIONS[str(conclusion)]
    if mapped in (Status.CANCELLED, Status.FAILURE) and rejected:
        mapped = Status.REJECTED
    if mapped is not None:
        ended = (jobs.completed if jobs else None) or str(run["updated_at"])
        events.append(_event(base, mapped, ended, problems))
    return RunOutcome(_never_earlier(events), terminal=True, problems=problems)


def _progress_of_finished(
    run: Mapping[str, Any],
    started: str | None,
    jobs: JobTimes | None,
    waiting_since: str | None,
    resumed_at: str | None,
) -> str | None:
    """When a finished attempt was in progress (None: it never was, as far as can be told)."""
    if waiting_since:
        return resumed_at
    if jobs is not None:
        return jobs.started  # the jobs were read: no job ran means it never was in progress
    return started if run.get("conclusion") != "cancelled" else None


def _never_earlier(events: Sequence[DeployEvent | str]) -> list[DeployEvent]:
    """Valid events (in lifecycle order), each dated no earlier than the one before it."""
    out: list[DeployEvent] = []
    for event in _valid(events):
        if out and event.happened_at < out[-1].happened_at:
            event = event.model_copy(update={"happened_at": out[-1].happened_at})  # noqa: PLW2901
        out.append(event)
    return out

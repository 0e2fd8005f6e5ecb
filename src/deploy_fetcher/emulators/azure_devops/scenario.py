"""What happens in the emulated Azure DevOps organization, and when.

A scenario is a list of *plans*: pipeline runs (stages, each possibly deploying to an environment
behind an approval) and classic releases (environments in sequence). The state of anything at any
moment is a pure function of its plan and the emulator's clock, so moving the clock forward makes
queued runs start, approvals get decided and deployments finish, deterministically. New plans are
added on a cadence driven by a seeded random generator, so incremental polls keep seeing new
deployments and status changes, identically for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "EnvironmentSpec",
    "JobView",
    "Pipeline",
    "Release",
    "ReleaseDefinition",
    "ReleaseEnvSpec",
    "Run",
    "RunView",
    "Scenario",
    "StageSpec",
    "StageView",
    "release_view",
    "run_view",
]

Decision = Literal["approve", "reject", "pending"]
Outcome = Literal["succeeded", "succeededWithIssues", "failed"]

#: Seconds between a job being queued for an agent and the agent starting it.
AGENT_PICKUP = 5.0


@dataclass(frozen=True)
class EnvironmentSpec:
    """An environment (``distributedtask/environments``)."""

    id: int
    name: str


@dataclass(frozen=True)
class StageSpec:
    """One stage of a pipeline run. ``environment`` set: its job is a deployment job there."""

    name: str
    environment: str | None = None
    duration: float = 120.0
    approval: float | None = None
    decision: Decision = "approve"
    outcome: Outcome = "succeeded"
    display_name: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """A YAML pipeline definition and the stages its runs go through."""

    id: int
    name: str
    stages: tuple[StageSpec, ...]
    #: The Azure Repos repository its YAML lives in and its runs check out (``repository.name`` of
    #: a build); empty: a repository named like the pipeline.
    repository: str = ""

    @property
    def repository_name(self) -> str:
        """The name of the pipeline's repository."""
        return self.repository or self.name


@dataclass
class Run:
    """One run (build) of a pipeline."""

    id: int
    pipeline: Pipeline
    number: str
    queued: datetime
    stages: tuple[StageSpec, ...]
    branch: str = "refs/heads/main"
    sha: str = "0" * 40
    requested_for: str = "Dana Developer"
    start_delay: float = 10.0
    cancel_at: datetime | None = None
    #: Decisions taken at run time (``approve``/``reject``), by stage name: (decision, when).
    decisions: dict[str, tuple[Decision, datetime]] = field(default_factory=dict)


@dataclass(frozen=True)
class JobView:
    """The deployment (or build) job of a stage at some moment."""

    queued: datetime
    started: datetime | None
    finished: datetime | None
    result: str | None


@dataclass(frozen=True)
class StageView:
    """One stage of a run at some moment."""

    spec: StageSpec
    state: str
    result: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    checkpoint_started: datetime | None = None
    checkpoint_finished: datetime | None = None
    approval_result: str | None = None
    job: JobView | None = None


@dataclass(frozen=True)
class RunView:
    """A run at some moment: ``status`` notStarted / inProgress / completed."""

    run: Run
    status: str
    result: str | None
    started: datetime | None
    finished: datetime | None
    stages: tuple[StageView, ...]
    changed: datetime


def _approval_decision(
    run: Run, spec: StageSpec, asked: datetime
) -> tuple[Decision, datetime | None]:
    if spec.name in run.decisions:
        decision, when = run.decisions[spec.name]
        return decision, max(when, asked)
    if spec.approval is None:
        return "approve", asked
    if spec.decision == "pending":
        return "pending", None
    return spec.decision, asked + timedelta(seconds=spec.approval)


def _stage(
    run: Run, spec: StageSpec, t: datetime, now: datetime
) -> tuple[StageView, datetime | None]:
    """The view of one reached stage started at ``t``; also when the next stage may start."""
    if now < t:
        return StageView(spec, "pending"), None
    needs_approval = spec.approval is not None or spec.name in run.decisions
    checkpoint_started = t if needs_approval else None
    decision, decided = _approval_decision(run, spec, t)
    if needs_approval and (decided is None or now < decided):
        view = StageView(spec, "inProgress", started=t, checkpoint_started=t)
        return view, None
    if needs_approval and decision == "reject" and decided is not None:
        view = StageView(
            spec,
            "completed",
            "failed",
            started=t,
            finished=decided,
            checkpoint_started=checkpoint_started,
            checkpoint_finished=decided,
            approval_result="failed",
        )
        return view, None
    job_queued = decided if decided is not None else t
    job_start = job_queued + timedelta(seconds=AGENT_PICKUP)
    job_end = job_start + timedelta(seconds=spec.duration)
    base = StageView(
        spec,
        "inProgress",
        started=t,
        checkpoint_started=checkpoint_started,
        checkpoint_finished=decided if needs_approval else None,
        approval_result="succeeded" if needs_approval else None,
    )
    if now < job_start:
        return replace(base, job=JobView(job_queued, None, None, None)), None
    if now < job_end:
        return replace(base, job=JobView(job_queued, job_start, None, None)), None
    job = JobView(job_queued, job_start, job_end, spec.outcome)
    view = replace(base, state="completed", result=spec.outcome, finished=job_end, job=job)
    return view, job_end if spec.outcome != "failed" else None


def _cancel(view: StageView, at: datetime) -> StageView:
    job = view.job
    if job is not None and job.finished is None:
        job = JobView(job.queued, job.started, at, "canceled" if job.started else None)
    return replace(
        view,
        state="completed",
        result="canceled",
        finished=at,
        checkpoint_finished=view.checkpoint_finished or (at if view.checkpoint_started else None),
        approval_result=view.approval_result or ("canceled" if view.checkpoint_started else None),
        job=job if job is not None and job.result is not None else None,
    )


def _result(views: Sequence[StageView], cancelled: bool) -> str:
    results = {v.result for v in views}
    if cancelled or "canceled" in results:
        return "canceled"
    if "failed" in results:
        return "failed"
    if "succeededWithIssues" in results:
        return "partiallySucceeded"
    return "succeeded"


def run_view(run: Run, now: datetime) -> RunView:
    """The state of a run at ``now``.

    Stages run in order; a failed, rejected or cancelled stage makes the later ones ``skipped``;
    cancelling the run stops the stage in progress (``canceled``) at ``cancel_at``.
    """
    started = run.queued + timedelta(seconds=run.start_delay)
    cancel = run.cancel_at if run.cancel_at is not None and run.cancel_at <= now else None
    untouched = tuple(StageView(s, "pending") for s in run.stages)
    if cancel is not None and cancel < started:
        return RunView(run, "completed", "canceled", None, cancel, untouched, cancel)
    if now < started:
        return RunView(run, "notStarted", None, None, None, untouched, run.queued)
    views = _walk_stages(run, started, cancel, cancel if cancel is not None else now)
    stamps = [started] + [
        x for v in views for x in (v.started, v.finished, v.checkpoint_finished) if x
    ]
    changed = max(x for x in stamps if x <= now)
    if any(v.state != "completed" for v in views):
        return RunView(run, "inProgress", None, started, None, tuple(views), changed)
    finish = max((v.finished for v in views if v.finished), default=started)
    result = _result(views, cancel is not None)
    return RunView(run, "completed", result, started, finish, tuple(views), changed)


def _walk_stages(
    run: Run, started: datetime, cancel: datetime | None, horizon: datetime
) -> list[StageView]:
    views: list[StageView] = []
    t: datetime | None = started
    blocked: datetime | None = None
    for spec in run.stages:
        if blocked is not None:
            views.append(StageView(spec, "completed", "skipped", finished=blocked))
            continue
        if t is None:
            views.append(StageView(spec, "pending"))
            continue
        view, next_t = _stage(run, spec, t, horizon)
        if cancel is not None and view.state == "inProgress":
            view, blocked = _cancel(view, cancel), cancel
        elif cancel is not None and view.state == "pending":
            view, blocked = StageView(spec, "completed", "skipped", finished=cancel), cancel
        views.append(view)
        if view.state != "completed":
            t = None
        elif view.result in ("failed", "canceled"):
            blocked = blocked or view.finished
        else:
            t = next_t
    return views


# -- classic releases ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReleaseEnvSpec:
    """One environment of a classic release definition."""

    name: str
    id: int
    duration: float = 180.0
    approval: float | None = None
    decision: Decision = "approve"
    outcome: Outcome = "succeeded"


@dataclass(frozen=True)
class ReleaseDefinition:
    """A classic release definition."""

    id: int
    name: str
    environments: tuple[ReleaseEnvSpec, ...]


@dataclass
class Release:
    """One release of a definition, deploying through its environments in order."""

    id: int
    definition: ReleaseDefinition
    name: str
    created: datetime
    environments: tuple[ReleaseEnvSpec, ...]
    build_number: str = "1.0.0"
    sha: str = "0" * 40
    requested_for: str = "Dana Developer"
    cancel_at: datetime | None = None
    decisions: dict[str, tuple[Decision, datetime]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentView:
    """One deployment of a release environment at some moment."""

    env: ReleaseEnvSpec
    queued: datetime
    deployment_status: str
    operation_status: str
    started: datetime | None
    completed: datetime | None
    modified: datetime
    approval_status: str | None
    approval_modified: datetime | None


def _release_decision(
    release: Release, env: ReleaseEnvSpec, asked: datetime
) -> tuple[Decision, datetime | None, bool]:
    """(decision, when, manual) of an environment's pre-deployment approval."""
    if env.name in release.decisions:
        decision, when = release.decisions[env.name]
        return decision, max(when, asked), True
    if env.approval is None:
        return "approve", asked, False
    if env.decision == "pending":
        return "pending", None, True
    return env.decision, asked + timedelta(seconds=env.approval), True


_FINAL = {"succeeded": "succeeded", "succeededWithIssues": "partiallySucceeded", "failed": "failed"}


def _deployment(
    release: Release, env: ReleaseEnvSpec, t: datetime, horizon: datetime, cancel: datetime | None
) -> tuple[DeploymentView, datetime | None]:
    """One environment's deployment, reached at ``t``; and when the next environment starts."""
    decision, decided, manual = _release_decision(release, env, t)
    if decided is None or horizon < decided:
        status = "pending" if manual else "queued"
        view = DeploymentView(
            env, t, "notDeployed", status, None, None, t, status if manual else None, None
        )
        if cancel is not None:
            view = replace(
                view,
                operation_status="canceled",
                completed=cancel,
                modified=cancel,
                approval_status="canceled" if manual else None,
                approval_modified=cancel if manual else None,
            )
        return view, None
    if decision == "reject":
        view = DeploymentView(
            env, t, "notDeployed", "rejected", None, decided, decided, "rejected", decided
        )
        return view, None
    started = decided + timedelta(seconds=AGENT_PICKUP)
    ends = started + timedelta(seconds=env.duration)
    approval = ("approved", decided) if manual else (None, None)
    if horizon < started:
        view = DeploymentView(
            env, t, "notDeployed", "queuedForAgent", None, None, decided, *approval
        )
        if cancel is not None:
            view = replace(view, operation_status="canceled", completed=cancel, modified=cancel)
        return view, None
    if horizon < ends:
        view = DeploymentView(
            env, t, "inProgress", "phaseInProgress", started, None, started, *approval
        )
        if cancel is not None:
            view = replace(
                view,
                deployment_status="failed",
                operation_status="phaseCanceled",
                completed=cancel,
                modified=cancel,
            )
        return view, None
    final = _FINAL[env.outcome]
    operation = "phaseFailed" if final == "failed" else "phaseSucceeded"
    view = DeploymentView(env, t, final, operation, started, ends, ends, *approval)
    return view, None if final == "failed" else ends


def release_view(release: Release, now: datetime) -> list[DeploymentView]:
    """The deployments a release has at ``now`` (one per environment reached)."""
    out: list[DeploymentView] = []
    t: datetime | None = release.created + timedelta(seconds=5)
    cancel = (
        release.cancel_at if release.cancel_at is not None and release.cancel_at <= now else None
    )
    horizon = cancel if cancel is not None else now
    for env in release.environments:
        if t is None or horizon < t:
            break
        view, t = _deployment(release, env, t, horizon, cancel)
        out.append(view)
    return out


# -- the scenario ------------------------------------------------------------------------------------
def _deploy_stages(environments: list[str], *, approval_on: str | None) -> tuple[StageSpec, ...]:
    deploys = (
        StageSpec(
            f"Deploy_{env}",
            environment=env,
            duration=120.0,
            approval=600.0 if env == approval_on else None,
            display_name=f"Deploy to {env}",
        )
        for env in environments
    )
    return (StageSpec("Build", duration=60.0, display_name="Build"), *deploys)


@dataclass
class Scenario:
    """An organization's content and how it evolves."""

    organization: str
    projects: list[str]
    environments: list[EnvironmentSpec]
    pipelines: list[Pipeline]
    release_definitions: list[ReleaseDefinition]
    runs: list[Run] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    #: Seconds between new runs of each pipeline (None: nothing new happens by itself).
    cadence: float | None = None
    #: Seconds between new releases of each definition (None: none).
    release_cadence: float | None = None
    seed: int = 0
    #: Chances for generated runs: a failing deployment, a rejected approval, a cancelled run.
    failure_rate: float = 0.1
    reject_rate: float = 0.15
    cancel_rate: float = 0.05
    next_run: dict[int, datetime] = field(default_factory=dict)
    next_release: dict[int, datetime] = field(default_factory=dict)
    last_run_id: int = 1000
    last_release_id: int = 100
    rng: random.Random = field(default_factory=random.Random)

    @property
    def project(self) -> str:
        """The (first) project."""
        return self.projects[0]

    def pipeline(self, key: int | str) -> Pipeline:
        """A pipeline by id or name."""
        for pipeline in self.pipelines:
            if key in (pipeline.id, pipeline.name):
                return pipeline
        raise KeyError(key)

    def release_definition(self, key: int | str) -> ReleaseDefinition:
        """A release definition by id or name."""
        for definition in self.release_definitions:
            if key in (definition.id, definition.name):
                return definition
        raise KeyError(key)

    # -- creating plans --------------------------------------------------------------------------
    def _sha(self) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(40))

    def add_run(
        self,
        pipeline: int | str,
        *,
        queued: datetime,
        stages: dict[str, dict[str, object]] | None = None,
        cancel_at: datetime | None = None,
        branch: str = "refs/heads/main",
    ) -> Run:
        """Plan a run; ``stages`` overrides fields of named stages (``{"Deploy_prod": {"decision": "reject"}}``)."""
        plan = self.pipeline(pipeline)
        specs = []
        for spec in plan.stages:
            changes = (stages or {}).get(spec.name, {})
            specs.append(replace(spec, **changes) if changes else spec)  # type: ignore[arg-type]
        self.last_run_id += 1
        count = sum(1 for r in self.runs if r.pipeline.id == plan.id) + 1
        run = Run(
            id=self.last_run_id,
            pipeline=plan,
            number=f"{queued:%Y%m%d}.{count}",
            queued=queued,
            stages=tuple(specs),
            branch=branch,
            sha=self._sha(),
            cancel_at=cancel_at,
        )
        self.runs.append(run)
        return run

    def add_release(
        self,
        definition: int | str,
        *,
        created: datetime,
        environments: dict[str, dict[str, object]] | None = None,
        cancel_at: datetime | None = None,
    ) -> Release:
        """Plan a release; ``environments`` overrides fields of named environments."""
        plan = self.release_definition(definition)
        specs = []
        for spec in plan.environments:
            changes = (environments or {}).get(spec.name, {})
            specs.append(replace(spec, **changes) if changes else spec)  # type: ignore[arg-type]
        self.last_release_id += 1
        release = Release(
            id=self.last_release_id,
            definition=plan,
            name=f"Release-{self.last_release_id}",
            created=created,
            environments=tuple(specs),
            build_number=f"{created:%Y%m%d}.{self.last_release_id}",
            sha=self._sha(),
            cancel_at=cancel_at,
        )
        self.releases.append(release)
        return release

    def random_run(self, pipeline: Pipeline, queued: datetime) -> None:
        """Plan a run whose fate (failure, rejection, cancellation) the seeded generator picks."""
        rng = self.rng
        changes: dict[str, dict[str, object]] = {}
        for spec in pipeline.stages:
            if spec.environment is None:
                continue
            if spec.approval is not None and rng.random() < self.reject_rate:
                changes[spec.name] = {"decision": "reject"}
            elif rng.random() < self.failure_rate:
                changes[spec.name] = {"outcome": "failed"}
        cancel = queued + timedelta(seconds=200) if rng.random() < self.cancel_rate else None
        self.add_run(pipeline.id, queued=queued, stages=changes, cancel_at=cancel)

    def random_release(self, definition: ReleaseDefinition, created: datetime) -> None:
        """Plan a release whose fate the seeded generator picks."""
        changes: dict[str, dict[str, object]] = {}
        for spec in definition.environments:
            if spec.approval is not None and self.rng.random() < self.reject_rate:
                changes[spec.name] = {"decision": "reject"}
            elif self.rng.random() < self.failure_rate:
                changes[spec.name] = {"outcome": "failed"}
        self.add_release(definition.id, created=created, environments=changes)

    def evolve(self, now: datetime) -> None:
        """Create the runs and releases the cadence schedules up to ``now``."""
        if self.cadence is not None:
            for pipeline in self.pipelines:
                due = self.next_run.setdefault(pipeline.id, now)
                while due <= now:
                    self.random_run(pipeline, due)
                    due += timedelta(seconds=self.cadence * self.rng.uniform(0.7, 1.3))
                self.next_run[pipeline.id] = due
        if self.release_cadence is not None:
            for definition in self.release_definitions:
                due = self.next_release.setdefault(definition.id, now)
                while due <= now:
                    self.random_release(definition, due)
                    due += timedelta(seconds=self.release_cadence * self.rng.uniform(0.7, 1.3))
                self.next_release[definition.id] = due

    # -- ready-made scenarios ----------------------------------------------------------------------
    @classmethod
    def empty(
        cls,
        *,
        organization: str = "contoso",
        project: str = "shop",
        environments: tuple[str, ...] = ("dev", "staging", "prod"),
        pipelines: tuple[str, ...] = ("web",),
        approval_on: str | None = "prod",
        seed: int = 0,
    ) -> Scenario:
        """Environments and pipelines, no runs, nothing happening by itself."""
        envs = [EnvironmentSpec(i + 1, name) for i, name in enumerate(environments)]
        plans = [
            Pipeline(11 + i, name, _deploy_stages(list(environments), approval_on=approval_on))
            for i, name in enumerate(pipelines)
        ]
        release_defs = [
            ReleaseDefinition(
                21,
                "billing-classic",
                (ReleaseEnvSpec("QA", 301), ReleaseEnvSpec("Production", 302, approval=900.0)),
            )
        ]
        scenario = cls(organization, [project], envs, plans, release_defs, seed=seed)
        scenario.rng = random.Random(seed)
        return scenario

    @classmethod
    def demo(cls, *, start: datetime, seed: int = 0) -> Scenario:
        """Three pipelines through dev → staging → prod (prod behind an approval), and more.

        Also a classic release definition, six hours of history, and a new run every ~20 minutes
        per pipeline.
        """
        scenario = cls.empty(pipelines=("web", "api", "worker"), seed=seed)
        for hours_ago in (6.0, 4.5, 3.0, 1.5):
            for offset, pipeline in enumerate(scenario.pipelines):
                scenario.random_run(
                    pipeline, start - timedelta(hours=hours_ago, minutes=7 * offset)
                )
        for hours_ago in (5.0, 2.0):
            scenario.random_release(
                scenario.release_definitions[0], start - timedelta(hours=hours_ago)
            )
        scenario.cadence = 1200.0
        scenario.release_cadence = 3600.0
        scenario.next_run = {
            p.id: start + timedelta(minutes=5 + 3 * i) for i, p in enumerate(scenario.pipelines)
        }
        scenario.next_release = {
            d.id: start + timedelta(minutes=30) for d in scenario.release_definitions
        }
        return scenario

    @classmethod
    def bench(
        cls,
        *,
        start: datetime,
        pipelines: int = 10,
        environments: int = 3,
        runs_per_pipeline: int = 5,
        seed: int = 0,
    ) -> Scenario:
        """``pipelines`` × ``environments`` with finished history and nothing new.

        Each pipeline has a classic release definition through the same environments too. For
        counting what a first backfill and idle cycles cost.
        """
        names = tuple(f"env{i + 1}" for i in range(environments))
        scenario = cls.empty(
            environments=names,
            pipelines=tuple(f"svc{i + 1:02d}" for i in range(pipelines)),
            approval_on=None,
            seed=seed,
        )
        scenario.failure_rate = scenario.reject_rate = scenario.cancel_rate = 0.0
        scenario.release_definitions = [
            ReleaseDefinition(
                101 + i,
                f"{pipeline.name}-classic",
                tuple(ReleaseEnvSpec(name, 301 + n) for n, name in enumerate(names)),
            )
            for i, pipeline in enumerate(scenario.pipelines)
        ]
        for n in range(runs_per_pipeline):
            for offset, pipeline in enumerate(scenario.pipelines):
                queued = start - timedelta(hours=20 - 3 * n, minutes=offset)
                scenario.random_run(pipeline, queued)
            for offset, definition in enumerate(scenario.release_definitions):
                created = start - timedelta(hours=20 - 3 * n, minutes=offset)
                scenario.random_release(definition, created)
        return scenario

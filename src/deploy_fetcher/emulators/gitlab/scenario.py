"""Seedable scenarios for the GitLab emulator, and the planner that lays out a pipeline's timeline.

A pipeline is planned whole when it is created: ``build`` and ``test`` jobs, then one deploy job per
environment in promotion order, each with its deployment. Durations, outcomes and approval decisions
come from the scenario's random generator, so one seed always gives the same world. A deploy job gated
by an approval sits ``manual`` (its deployment ``blocked``) until the planned decision, or until a test
calls :meth:`approve` / :meth:`reject` when the gate is ``"manual"``.

Named scenarios: ``empty``; ``demo`` (a few projects of group ``acme`` with history and steady new
activity, approvals included, one project without environments); ``benchmark`` (20 projects × 3
environments × 20 finished deployments each, no new activity).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from deploy_fetcher.emulators.gitlab.model import (
    Approval,
    Deployment,
    Job,
    Pipeline,
    Project,
    Step,
    Timeline,
    World,
)

__all__ = [
    "SCENARIOS",
    "Gate",
    "Outcome",
    "ProjectSpec",
    "Scenario",
    "cancel",
    "decide",
    "plan_pipeline",
]

Outcome = Literal["success", "failed", "canceled"]
#: ``approve``/``reject``: decided automatically after a delay; ``manual``: waits for a call.
Gate = Literal["approve", "reject", "manual"]

_USERS = ("alice", "bob", "carol", "dave")
_APPROVERS = ("erin", "frank")


@dataclass
class ProjectSpec:
    """One project of a scenario."""

    path: str
    environments: tuple[str, ...] = ("staging", "production")
    #: Environments that need an approval (decided by the scenario's rates unless a test decides).
    approvals: tuple[str, ...] = ()
    #: Pipelines already finished when the emulator starts, spread over ``history_span``.
    history: int = 0
    history_span: timedelta = timedelta(hours=6)
    #: Mean seconds between new pipelines as the clock advances (None: no new activity).
    activity: float | None = None
    #: Seconds after the start until the first new pipeline (None: a random 0.2–1.0 × ``activity``).
    #: A world of many quiet projects (``activity`` in hours) sets it to spread their first
    #: pipelines evenly instead of leaving them all silent for the first fifth of ``activity``.
    first_activity: float | None = None
    #: Deploys without GitLab environments (``pipelines`` mode on the adapter side).
    pipelines_only: bool = False
    #: Outcomes of the history pipelines' deploy jobs forced to success (benchmarks need exact counts).
    always_succeed: bool = False
    next_at: datetime | None = field(default=None, repr=False)


class Scenario:
    """A seedable description of an emulated instance."""

    def __init__(
        self,
        seed: int = 0,
        *,
        failure_rate: float = 0.1,
        cancel_rate: float = 0.03,
        rejection_rate: float = 0.15,
    ) -> None:
        self.seed = seed
        self.failure_rate = failure_rate
        self.cancel_rate = cancel_rate
        self.rejection_rate = rejection_rate
        self.projects: list[ProjectSpec] = []

    def project(self, path: str, **options: object) -> Scenario:
        """Add a project (see :class:`ProjectSpec` for the options); returns self for chaining."""
        self.projects.append(ProjectSpec(path, **options))  # type: ignore[arg-type]
        return self

    def build(self, world: World, start: datetime, rng: random.Random) -> None:
        """Create the projects and their history, everything finished by ``start``."""
        for spec in self.projects:
            project = world.add_project(spec.path, start - spec.history_span - timedelta(days=1))
            if spec.history:
                step = spec.history_span / spec.history
                for index in range(spec.history):
                    at = start - spec.history_span + step * index
                    self._random_pipeline(world, project, spec, at, rng=rng, finish_by=start)
            if spec.activity:
                first = spec.first_activity
                if first is None:
                    first = rng.uniform(0.2, 1.0) * spec.activity
                spec.next_at = start + timedelta(seconds=first)

    def advance(self, world: World, now: datetime, rng: random.Random) -> None:
        """Start the pipelines whose time has come (deterministic for a seed)."""
        for spec in self.projects:
            if not spec.activity or spec.next_at is None:
                continue
            project = world.project(spec.path)
            if project is None:
                continue
            while spec.next_at <= now:
                self._random_pipeline(world, project, spec, spec.next_at, rng=rng)
                spec.next_at += timedelta(seconds=rng.uniform(0.5, 1.5) * spec.activity)

    def _random_pipeline(
        self,
        world: World,
        project: Project,
        spec: ProjectSpec,
        at: datetime,
        *,
        rng: random.Random,
        finish_by: datetime | None = None,
    ) -> Pipeline:
        outcomes: dict[str, Outcome] = {}
        gates: dict[str, Gate] = {}
        for env in spec.environments:
            roll = rng.random()
            if spec.always_succeed:
                outcomes[env] = "success"
            elif roll < self.failure_rate:
                outcomes[env] = "failed"
            elif roll < self.failure_rate + self.cancel_rate:
                outcomes[env] = "canceled"
            else:
                outcomes[env] = "success"
            if env in spec.approvals:
                gates[env] = "reject" if rng.random() < self.rejection_rate else "approve"
        tagged = rng.random() < 0.1  # one pipeline in ten deploys a tag
        ref = f"v1.{project.next_pipeline_iid}.0" if tagged else "main"
        pipeline = plan_pipeline(
            world,
            project,
            at,
            rng,
            ref=ref,
            tag=tagged,
            environments=() if spec.pipelines_only else spec.environments,
            outcomes=outcomes,
            gates=gates,
            deploy_job=spec.pipelines_only,
        )
        if finish_by is not None:
            _squeeze(pipeline, at, finish_by)
        return pipeline

    @classmethod
    def named(cls, name: str, seed: int = 0) -> Scenario:
        """One of :data:`SCENARIOS`."""
        try:
            factory = SCENARIOS[name]
        except KeyError:
            msg = f"unknown scenario {name!r}; choose one of {sorted(SCENARIOS)}"
            raise ValueError(msg) from None
        return factory(seed)


def _empty(seed: int) -> Scenario:
    return Scenario(seed)


def _demo(seed: int) -> Scenario:
    scenario = Scenario(seed)
    scenario.project(
        "acme/api",
        environments=("staging", "production"),
        approvals=("production",),
        history=6,
        activity=240.0,
    )
    scenario.project("acme/web", environments=("staging", "production"), history=5, activity=300.0)
    scenario.project(
        "acme/platform/billing",
        environments=("dev", "staging", "production"),
        history=4,
        activity=420.0,
    )
    scenario.project("acme/tools/cli", pipelines_only=True, history=4, activity=360.0)
    return scenario


def _benchmark(seed: int) -> Scenario:
    scenario = Scenario(seed)
    for index in range(1, 21):
        scenario.project(
            f"bench/svc-{index:02d}",
            environments=("dev", "staging", "production"),
            history=20,
            history_span=timedelta(days=6),
            always_succeed=True,
        )
    return scenario


SCENARIOS = {"empty": _empty, "demo": _demo, "benchmark": _benchmark}


# -- the planner -----------------------------------------------------------------------------------


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _seconds(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(seconds=round(rng.uniform(low, high), 3))


def _deployment_status(job_status: str, gated: bool) -> str:
    if job_status == "manual":
        return "blocked" if gated else "created"
    if job_status in {"pending", "preparing", "waiting_for_resource"}:
        return "created"
    return job_status


def step(job: Job, deployment: Deployment | None, at: datetime, status: str) -> None:
    """Plan a job step and the deployment step it causes (only when the deployment's status moves)."""
    job.timeline.add(at, status)
    if deployment is None:
        return
    new = _deployment_status(status, deployment.required_approvals > 0)
    last = deployment.timeline.steps[-1].status if deployment.timeline.steps else None
    if new != last:
        deployment.timeline.add(at, new)


def plan_pipeline(
    world: World,
    project: Project,
    at: datetime,
    rng: random.Random,
    *,
    ref: str = "main",
    tag: bool = False,
    source: str = "push",
    user: str | None = None,
    environments: Sequence[str] = ("staging", "production"),
    outcomes: dict[str, Outcome] | None = None,
    gates: dict[str, Gate] | None = None,
    deploy_job: bool = False,
    build_outcome: Outcome = "success",
) -> Pipeline:
    """Create a pipeline at ``at`` with its jobs, deployments and whole planned timeline.

    ``environments`` get one deploy job (and deployment) each, in that order; ``outcomes`` and
    ``gates`` per environment default to success without approval. ``deploy_job`` adds a plain
    ``deploy`` job without an environment (pipelines that deploy without GitLab environments).
    """
    author = world.user(user or rng.choice(_USERS))
    pipeline = Pipeline(
        id=world.next_id("pipeline"),
        iid=project.next_pipeline_iid,
        project=project,
        ref=ref,
        sha=_sha(rng),
        tag=tag,
        source=source,
        user=author,
        created_at=at,
    )
    project.next_pipeline_iid += 1
    project.pipelines.append(pipeline)
    stages = ["build", "test"] + (["deploy"] if deploy_job else [])
    for stage in stages:
        job = Job(world.next_id("job"), stage, stage, pipeline, Timeline())
        job.timeline.add(at, "created")
        pipeline.jobs.append(job)
    for env in environments:
        environment = world.environment(project, env, at)
        job = Job(world.next_id("job"), f"deploy-{env}", env, pipeline, Timeline())
        job.timeline.add(at, "created")
        deployment = Deployment(
            id=world.next_id("deployment"),
            iid=project.next_deployment_iid,
            project=project,
            environment=environment,
            job=job,
            ref=ref,
            sha=pipeline.sha,
            user=author,
            timeline=Timeline(),
            required_approvals=1 if (gates or {}).get(env) else 0,
        )
        deployment.timeline.add(at, "created")
        project.next_deployment_iid += 1
        project.deployments.append(deployment)
        world.deployments[deployment.id] = deployment
        pipeline.jobs.append(job)
    pipeline.plans = {
        env: ((outcomes or {}).get(env, "success"), (gates or {}).get(env)) for env in environments
    }
    run_from(world, pipeline, 0, at + timedelta(seconds=1), rng, build_outcome=build_outcome)
    return pipeline


def deployment_of(job: Job) -> Deployment | None:
    """The deployment a job makes (None for build and test jobs)."""
    for deployment in job.pipeline.project.deployments:
        if deployment.job is job:
            return deployment
    return None


def run_from(
    world: World,
    pipeline: Pipeline,
    index: int,
    at: datetime,
    rng: random.Random,
    *,
    build_outcome: Outcome = "success",
) -> None:
    """Plan the jobs of ``pipeline`` from job ``index`` on, starting at ``at``.

    A job that does not succeed skips every later one; a ``manual`` gate stops planning (the rest is
    planned again when the gate is decided).
    """
    clock = at
    for position, job in enumerate(pipeline.jobs[index:], start=index):
        deployment = deployment_of(job)
        outcome: str
        gate: str | None
        if deployment is None:
            outcome = build_outcome if job.stage == "build" else "success"
            gate = None
        else:
            outcome, gate = pipeline.plans.get(deployment.environment.name, ("success", None))
        if gate is not None and deployment is not None:
            step(job, deployment, clock, "manual")
            if gate == "manual":
                return
            decided = clock + _seconds(rng, 30, 120)
            approver = world.user(rng.choice(_APPROVERS))
            status = "approved" if gate == "approve" else "rejected"
            deployment.approvals.append(Approval(approver, status, decided))
            if gate == "reject":
                job.failure_reason = "deployment_rejected"
                step(job, deployment, decided, "failed")
                skip_rest(pipeline, position + 1, decided)
                return
            clock = decided
        clock = _run_job(job, deployment, clock, outcome, rng)
        if outcome != "success":
            skip_rest(pipeline, position + 1, clock)
            return


def _run_job(
    job: Job, deployment: Deployment | None, at: datetime, outcome: str, rng: random.Random
) -> datetime:
    step(job, deployment, at, "pending")
    started = at + _seconds(rng, 1, 5)
    step(job, deployment, started, "running")
    finished = started + _seconds(rng, 20, 90)
    if outcome == "failed":
        job.failure_reason = "script_failure"
    step(job, deployment, finished, outcome)
    return finished


def skip_rest(pipeline: Pipeline, index: int, at: datetime) -> None:
    """Mark the jobs from ``index`` on skipped (their deployments too)."""
    for job in pipeline.jobs[index:]:
        deployment = deployment_of(job)
        job.timeline.cut(at)
        if deployment is not None:
            deployment.timeline.cut(at)
        step(job, deployment, at, "skipped")


def _squeeze(pipeline: Pipeline, start: datetime, deadline: datetime) -> None:
    """Compress a history pipeline's timeline so it ends before ``deadline``.

    History is planned with the same random durations as live activity; one planned close to the
    emulator's start could still be running then. Its steps are scaled towards its creation time.
    """
    deployments = [
        d for d in pipeline.project.deployments if d.job is not None and d.job.pipeline is pipeline
    ]
    timelines = [job.timeline for job in pipeline.jobs] + [d.timeline for d in deployments]
    last = max(step.at for timeline in timelines for step in timeline.steps)
    if last < deadline:
        return
    span = (last - start).total_seconds()
    factor = (deadline - start).total_seconds() * 0.9 / span if span > 0 else 0.0

    def scaled(at: datetime) -> datetime:
        return start + timedelta(seconds=(at - start).total_seconds() * factor)

    for timeline in timelines:
        timeline.steps = [Step(scaled(s.at), s.status) for s in timeline.steps]
    for deployment in deployments:
        for approval in deployment.approvals:
            approval.at = scaled(approval.at)


def decide(
    world: World,
    deployment: Deployment,
    *,
    approver: str,
    status: Literal["approved", "rejected"],
    at: datetime,
    rng: random.Random,
    comment: str | None = None,
) -> None:
    """Approve or reject a blocked deployment at ``at`` (what ``POST …/approval`` does).

    Raises ValueError with GitLab's message when the deployment is not waiting for an approval.
    """
    job = deployment.job
    if job is None or deployment.status(at) != "blocked":
        msg = "This deployment is not waiting for approvals."
        raise ValueError(msg)
    pipeline = job.pipeline
    deployment.approvals.append(Approval(world.user(approver), status, at, comment))
    job.timeline.cut(at)
    deployment.timeline.cut(at)
    index = pipeline.jobs.index(job)
    if status == "rejected":
        job.failure_reason = "deployment_rejected"
        step(job, deployment, at, "failed")
        skip_rest(pipeline, index + 1, at)
        return
    outcome = pipeline.plans.get(deployment.environment.name, ("success", None))[0]
    pipeline.plans[deployment.environment.name] = (outcome, None)
    run_from(world, pipeline, index, at, rng)


def cancel(deployment: Deployment, at: datetime) -> None:
    """Cancel a deployment's job at ``at``; the jobs after it are skipped."""
    job = deployment.job
    if job is None or deployment.status(at) in {"success", "failed", "canceled", "skipped"}:
        msg = "This deployment is already over."
        raise ValueError(msg)
    job.timeline.cut(at)
    deployment.timeline.cut(at)
    step(job, deployment, at, "canceled")
    skip_rest(job.pipeline, job.pipeline.jobs.index(job) + 1, at)

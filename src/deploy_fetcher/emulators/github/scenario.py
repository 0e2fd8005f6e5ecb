"""Seedable scenarios for the GitHub emulator, and the pipeline simulation that makes time matter.

A *pipeline* is one run of a deploy workflow: it goes through the workflow's environments in order
(``dev → staging → prod``), creating a deployment per environment with GitHub's status sequence
(``waiting`` for reviewers where the environment has them, ``queued``, ``in_progress``, ``success`` /
``failure``), marking the previous deployment of the environment ``inactive`` when a new one succeeds,
and ending the run with its conclusion. A cancelled run leaves its current deployment ``failure``;
a rejected review does too, and the run fails. Workflows without environments (for workflow-runs mode)
only move the run itself. Every step is scheduled on the emulator's clock, so :meth:`advance` plays it.

Scenarios:

* ``demo`` — an organisation ``octo`` with ``api`` and ``web`` (dev → staging → prod, prod
  reviewed; ``web`` also gets ``preview`` deployments from a non-Actions tool), ``legacy`` (a
  ``release.yml`` without environments), a day of history and a new pipeline every few minutes;
* ``benchmark`` — the request-count benchmark's shape: ``bench/svc-0..4``, ten workflows each over
  ``dev → qa → staging → prod``, two pipelines per workflow (so two deployments per service and
  environment), all finished, no further activity;
* ``empty`` — nothing.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from deploy_fetcher.emulators.github.server import GitHubEmulator

__all__ = [
    "Outcome",
    "Pipeline",
    "RepoSpec",
    "Scenario",
    "WorkflowSpec",
    "start_pipeline",
    "workflow_yaml",
]

Outcome = Literal["success", "failure", "cancelled", "rejected"]


@dataclass(frozen=True)
class WorkflowSpec:
    """A deploy workflow: its YAML name, file and environment chain (empty: no environments)."""

    name: str
    file: str
    environments: tuple[str, ...] = ("dev", "staging", "prod")
    reviewed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RepoSpec:
    """A repository of a scenario."""

    full_name: str
    workflows: tuple[WorkflowSpec, ...]
    #: Environments a non-Actions tool deploys to (deployments without a run).
    tool_environments: tuple[str, ...] = ()


def workflow_yaml(spec: WorkflowSpec) -> str:
    """A workflow file whose jobs chain the environments, with a smoke-test job between each."""
    lines = [f"name: {spec.name}", "on:", "  push:", "    branches: [main]", "jobs:"]
    lines += ["  build:", "    runs-on: ubuntu-latest", "    steps:", "      - run: make build"]
    previous = "build"
    for index, env in enumerate(spec.environments):
        job = f"deploy-{env}"
        lines += [f"  {job}:", f"    needs: {previous}", "    runs-on: ubuntu-latest"]
        if index == len(spec.environments) - 1:
            lines += [
                "    environment:",
                f"      name: {env}",
                f"      url: https://{env}.example.com",
            ]
        else:
            lines += [f"    environment: {env}"]
        lines += ["    steps:", f"      - run: ./deploy.sh {env}"]
        previous = job
        if index < len(spec.environments) - 1:
            smoke = f"smoke-{env}"
            lines += [
                f"  {smoke}:",
                f"    needs: [{job}]",
                "    runs-on: ubuntu-latest",
                "    steps:",
                "      - run: ./smoke.sh",
            ]
            previous = smoke
    return "\n".join(lines) + "\n"


def _sha(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Pipeline:
    """What one pipeline does: where it stops and how."""

    outcome: Outcome = "success"
    #: Index of the environment where a non-success outcome happens (default: the last).
    at_environment: int | None = None


# Seconds between the steps of a pipeline.
_START = 5
_QUEUE = 10
_REVIEW = 120
_DEPLOY = 60
_SMOKE = 20


class _PipelineRun:
    """Schedules the steps of one pipeline run on the emulator's timeline."""

    def __init__(
        self,
        emulator: GitHubEmulator,
        *,
        repo: str,
        spec: WorkflowSpec,
        plan: Pipeline,
        run_id: int,
        sha: str,
        branch: str,
    ) -> None:
        self.emulator = emulator
        self.repo = repo
        self.spec = spec
        self.plan = plan
        self.run_id = run_id
        self.sha = sha
        self.branch = branch
        last = len(spec.environments) - 1
        self.fail_at = plan.at_environment if plan.at_environment is not None else max(0, last)

    def later(self, when: datetime, seconds: float, action: Callable[[datetime], object]) -> None:
        """Run ``action`` ``seconds`` after ``when``."""
        self.emulator.schedule(when + timedelta(seconds=seconds), action)

    def status(self, dep_id: int, state: str) -> Callable[[datetime], object]:
        return lambda w: self.emulator.add_status(self.repo, dep_id, state, at=w)

    def finish(self, conclusion: str) -> Callable[[datetime], object]:
        return lambda w: self.emulator.set_run(
            self.repo, self.run_id, status="completed", conclusion=conclusion, at=w
        )

    def review(self, env: str, state: str) -> Callable[[datetime], object]:
        return lambda _w: self.emulator.add_approval(self.repo, self.run_id, env, state)

    def start(self, at: datetime) -> None:
        self.later(
            at,
            _START,
            lambda w: self.emulator.set_run(self.repo, self.run_id, status="in_progress", at=w),
        )
        if not self.spec.environments:
            conclusion = "failure" if self.plan.outcome == "rejected" else self.plan.outcome
            self.later(at, _START + _DEPLOY, self.finish(conclusion))
            return
        self.later(at, _START + 30, self.deploy(0))

    def deploy(self, index: int) -> Callable[[datetime], None]:
        """The step that creates the deployment of environment ``index`` and schedules its life."""
        env = self.spec.environments[index]
        run = self.emulator.repo(self.repo).runs[self.run_id]

        def act(when: datetime) -> None:
            dep = self.emulator.add_deployment(
                self.repo,
                env,
                sha=self.sha,
                ref=self.branch,
                at=when,
                run=run,
                payload={"version": self.sha[:7]},
            )
            reviewed = env in self.spec.reviewed
            stop = self.plan.outcome != "success" and index == self.fail_at
            self.emulator.add_status(
                self.repo, dep.id, "waiting" if reviewed else "queued", at=when
            )
            t = 0.0
            if reviewed:
                t += _REVIEW
                if stop and self.plan.outcome == "rejected":
                    self.later(when, t, self.review(env, "rejected"))
                    self.later(when, t, self.status(dep.id, "failure"))
                    self.later(when, t + 5, self.finish("failure"))
                    return
                self.later(when, t, self.review(env, "approved"))
                self.later(when, t, self.status(dep.id, "queued"))
            t += _QUEUE
            self.later(when, t, self.status(dep.id, "in_progress"))
            if stop and self.plan.outcome == "cancelled":
                self.later(when, t + _DEPLOY / 2, self.status(dep.id, "failure"))
                self.later(when, t + _DEPLOY / 2 + 2, self.finish("cancelled"))
                return
            t += _DEPLOY
            if stop:
                self.later(when, t, self.status(dep.id, "failure"))
                self.later(when, t + 5, self.finish("failure"))
                return
            self.later(when, t, self.succeed(dep.id, env))
            if index == len(self.spec.environments) - 1:
                self.later(when, t + 5, self.finish("success"))
            else:
                self.later(when, t + _SMOKE, self.deploy(index + 1))

        return act

    def succeed(self, dep_id: int, env: str) -> Callable[[datetime], None]:
        """Mark the deployment successful and the environment's previous one inactive (as Actions does)."""

        def act(when: datetime) -> None:
            for other in self.emulator.repo(self.repo).deployments.values():
                states = [s.state for s in other.statuses]
                if (
                    other.environment == env
                    and other.id != dep_id
                    and states
                    and states[-1] == "success"
                ):
                    self.emulator.add_status(self.repo, other.id, "inactive", at=when)
            self.emulator.add_status(self.repo, dep_id, "success", at=when)

        return act


def start_pipeline(
    emulator: GitHubEmulator,
    full_name: str,
    spec: WorkflowSpec,
    *,
    at: datetime,
    sha: str,
    branch: str = "main",
    plan: Pipeline | None = None,
    actor: str = "octocat",
) -> int:
    """Create a run at ``at`` and schedule its whole life on the emulator's clock; returns its id."""
    workflow = emulator.add_workflow(full_name, spec.name, spec.file, workflow_yaml(spec))
    run = emulator.add_run(full_name, workflow, at=at, sha=sha, branch=branch, actor=actor)
    _PipelineRun(
        emulator,
        repo=full_name,
        spec=spec,
        plan=plan or Pipeline(),
        run_id=run.id,
        sha=sha,
        branch=branch,
    ).start(at)
    return run.id


@dataclass
class Scenario:
    """Repositories, a stretch of history before the emulator's start, and ongoing activity."""

    repos: list[RepoSpec] = field(default_factory=list)
    #: Pipelines run per workflow before the start, spread over ``history``.
    history_pipelines: int = 0
    history: timedelta = timedelta(days=1)
    #: Workflows of a repository run at the same commits (one push triggers them all).
    shared_commits: bool = True
    #: Mean seconds between new pipelines once time advances (None: no new activity).
    activity: float | None = None
    #: Share of pipelines that fail / are cancelled / are rejected by a reviewer.
    failure_rate: float = 0.0
    cancel_rate: float = 0.0
    reject_rate: float = 0.0
    seed: int = 0

    @classmethod
    def named(cls, name: str, *, seed: int = 0) -> Scenario:
        """A built-in scenario by name (``demo``, ``benchmark``, ``empty``)."""
        if name == "demo":
            return cls.demo(seed=seed)
        if name == "benchmark":
            return cls.benchmark(seed=seed)
        if name == "empty":
            return cls(seed=seed)
        msg = f"unknown GitHub emulator scenario {name!r} (demo, benchmark, empty)"
        raise ValueError(msg)

    @classmethod
    def demo(cls, *, seed: int = 0) -> Scenario:
        """Three repositories with a day of history and a pipeline every few minutes."""
        chain = ("dev", "staging", "prod")
        return cls(
            repos=[
                RepoSpec(
                    "octo/api",
                    (WorkflowSpec("Deploy API", "deploy.yml", chain, frozenset({"prod"})),),
                ),
                RepoSpec(
                    "octo/web",
                    (WorkflowSpec("Deploy Web", "deploy-web.yml", chain, frozenset({"prod"})),),
                    tool_environments=("preview",),
                ),
                RepoSpec("octo/legacy", (WorkflowSpec("Release", "release.yml", ()),)),
            ],
            history_pipelines=3,
            history=timedelta(hours=12),
            activity=180.0,
            failure_rate=0.08,
            cancel_rate=0.05,
            reject_rate=0.05,
            seed=seed,
        )

    @classmethod
    def benchmark(
        cls,
        *,
        repos: int = 5,
        workflows: int = 10,
        environments: int = 4,
        deployments: int = 2,
        seed: int = 0,
    ) -> Scenario:
        """``repos`` × ``workflows`` × ``environments`` with ``deployments`` per service and environment."""
        chain = ("dev", "qa", "staging", "prod", "dr", "edge")[:environments]
        return cls(
            repos=[
                RepoSpec(
                    f"bench/svc-{r}",
                    tuple(
                        WorkflowSpec(f"Deploy svc-{r}-{w}", f"deploy-{w}.yml", chain)
                        for w in range(workflows)
                    ),
                )
                for r in range(repos)
            ],
            history_pipelines=deployments,
            history=timedelta(hours=12),
            seed=seed,
        )

    def _plan(self, rng: random.Random, spec: WorkflowSpec) -> Pipeline:
        roll = rng.random()
        envs = len(spec.environments)
        where = rng.randrange(envs) if envs else None
        if roll < self.failure_rate:
            return Pipeline("failure", where)
        if roll < self.failure_rate + self.cancel_rate:
            return Pipeline("cancelled", where)
        reviewed = [i for i, env in enumerate(spec.environments) if env in spec.reviewed]
        if roll < self.failure_rate + self.cancel_rate + self.reject_rate and reviewed:
            return Pipeline("rejected", reviewed[0])
        return Pipeline("success")

    def apply(self, emulator: GitHubEmulator) -> None:
        """Create the repositories, play the history up to the emulator's start, schedule activity."""
        rng = random.Random(self.seed)
        start = emulator.now()
        for spec in self.repos:
            emulator.add_repo(spec.full_name)
            for wf in spec.workflows:
                emulator.add_workflow(spec.full_name, wf.name, wf.file, workflow_yaml(wf))
        if self.history_pipelines:
            # Leave the last two hours quiet so every historical pipeline has finished at the start.
            span = self.history - timedelta(hours=2)
            step = span / self.history_pipelines
            for round_ in range(self.history_pipelines):
                at = start - self.history + step * round_
                for spec in self.repos:
                    for index, wf in enumerate(spec.workflows):
                        key = (
                            (spec.full_name, round_)
                            if self.shared_commits
                            else (spec.full_name, wf.file, round_)
                        )
                        when = at + timedelta(seconds=index * 3)
                        start_pipeline(
                            emulator,
                            spec.full_name,
                            wf,
                            at=when,
                            sha=_sha(*key),
                            plan=self._plan(rng, wf),
                        )
                    for env in spec.tool_environments:
                        _tool_deployment(
                            emulator,
                            spec.full_name,
                            env,
                            at + timedelta(minutes=7),
                            _sha(spec.full_name, "tool", round_),
                        )
        emulator.run_due()
        if self.activity:
            self._schedule_activity(emulator, rng, start)

    def _schedule_activity(
        self, emulator: GitHubEmulator, rng: random.Random, after: datetime
    ) -> None:
        activity = self.activity or 180.0
        counter = {"n": 0}

        def spawn(when: datetime) -> None:
            spec = self.repos[rng.randrange(len(self.repos))]
            counter["n"] += 1
            sha = _sha(spec.full_name, "live", counter["n"])
            for index, wf in enumerate(spec.workflows):
                start_pipeline(
                    emulator,
                    spec.full_name,
                    wf,
                    at=when + timedelta(seconds=index * 3),
                    sha=sha,
                    plan=self._plan(rng, wf),
                )
            for env in spec.tool_environments:
                _tool_deployment(emulator, spec.full_name, env, when + timedelta(seconds=40), sha)
            emulator.schedule(when + timedelta(seconds=rng.expovariate(1 / activity)), spawn)

        emulator.schedule(after + timedelta(seconds=rng.uniform(5, activity)), spawn)


def _tool_deployment(
    emulator: GitHubEmulator, full_name: str, env: str, at: datetime, sha: str
) -> None:
    """A deployment made by another tool through the API: no run, its own status sequence."""
    dep = emulator.add_deployment(
        full_name, env, sha=sha, ref="main", at=at, creator="deploy-bot", task="deploy:preview"
    )
    emulator.add_status(full_name, dep.id, "pending", at=at)
    emulator.schedule(
        at + timedelta(seconds=15),
        lambda w: emulator.add_status(full_name, dep.id, "in_progress", at=w),
    )
    emulator.schedule(
        at + timedelta(seconds=75),
        lambda w: emulator.add_status(full_name, dep.id, "success", at=w),
    )

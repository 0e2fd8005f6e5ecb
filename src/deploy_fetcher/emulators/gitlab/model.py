"""The emulated GitLab world: projects, pipelines, jobs and deployments whose state is a timeline.

Every job and deployment carries its planned steps (``(at, status)``, in time order). What the API
shows at emulator time ``T`` is derived from the steps at or before ``T``: an object is visible once its
first step has passed, ``updated_at`` is the time of its latest passed step, ``started_at`` and
``finished_at`` come from the steps that started and ended it. Moving the clock forward therefore makes
queued deployments start and running ones finish without any bookkeeping, and an approval or a
cancellation rewrites the steps after "now".

The ``*_json`` functions render GitLab's REST shapes (``API::Entities::Deployment``, ``Ci::Job``,
``Ci::PipelineBasic`` / ``Ci::Pipeline``, ``BasicProjectDetails``, ``UserBasic``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "DEPLOYMENT_STATUSES",
    "JOB_TERMINAL",
    "Approval",
    "Deployment",
    "Environment",
    "Group",
    "Job",
    "Pipeline",
    "Project",
    "Step",
    "Timeline",
    "User",
    "World",
    "ts",
]

DEPLOYMENT_STATUSES: Final = (
    "created",
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",
    "blocked",
)
JOB_TERMINAL: Final = frozenset({"success", "failed", "canceled", "skipped"})


def ts(value: datetime | None) -> str | None:
    """GitLab's timestamp format: UTC, always with milliseconds, and ``Z``."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Step:
    """One planned state change."""

    at: datetime
    status: str


class Timeline:
    """Steps in time order, read at a given time."""

    def __init__(self, steps: list[Step] | None = None) -> None:
        self.steps: list[Step] = sorted(steps or [], key=lambda s: s.at)

    def add(self, at: datetime, status: str) -> None:
        """Append a step (kept in time order)."""
        index = bisect.bisect_right([s.at for s in self.steps], at)
        self.steps.insert(index, Step(at, status))

    def cut(self, after: datetime) -> None:
        """Drop every step planned after ``after`` (the future is being rewritten)."""
        self.steps = [s for s in self.steps if s.at <= after]

    def at(self, when: datetime) -> Step | None:
        """The latest step at or before ``when`` (None: not created yet)."""
        index = bisect.bisect_right([s.at for s in self.steps], when)
        return self.steps[index - 1] if index else None

    def first(self, status: str, when: datetime) -> datetime | None:
        """When ``status`` was first reached, if by ``when``."""
        for step in self.steps:
            if step.at > when:
                return None
            if step.status == status:
                return step.at
        return None

    @property
    def created_at(self) -> datetime:
        """The first step."""
        return self.steps[0].at


@dataclass
class User:
    """A GitLab user."""

    id: int
    username: str
    name: str

    def json(self, base: str, *, full: bool = False) -> dict[str, Any]:
        """``UserBasic``; ``full``: the ``User`` a job embeds (with its profile fields)."""
        out: dict[str, Any] = {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "state": "active",
            "locked": False,
            "avatar_url": f"https://www.gravatar.com/avatar/{self.id:032x}?s=80&d=identicon",
            "web_url": f"{base}/{self.username}",
        }
        if full:
            out |= {
                "created_at": "2025-01-06T09:00:00.000Z",
                "bio": "",
                "location": None,
                "public_email": None,
                "skype": "",
                "linkedin": "",
                "twitter": "",
                "website_url": "",
                "organization": None,
            }
        return out


@dataclass
class Group:
    """A group or subgroup."""

    id: int
    full_path: str
    parent_id: int | None

    @property
    def path(self) -> str:
        """The group's own segment."""
        return self.full_path.rsplit("/", 1)[-1]

    def json(self, base: str) -> dict[str, Any]:
        """A namespace as projects embed it."""
        return {
            "id": self.id,
            "name": self.path.replace("-", " ").title(),
            "path": self.path,
            "kind": "group",
            "full_path": self.full_path,
            "parent_id": self.parent_id,
            "avatar_url": None,
            "web_url": f"{base}/groups/{self.full_path}",
        }


@dataclass
class Environment:
    """A project's environment."""

    id: int
    name: str
    tier: str
    created_at: datetime
    external_url: str | None = None

    def json(self) -> dict[str, Any]:
        """``EnvironmentBasic`` (with ``tier``, as recent versions send)."""
        return {
            "id": self.id,
            "name": self.name,
            "slug": self.name.lower().replace("/", "-").replace(" ", "-")[:24],
            "external_url": self.external_url,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.created_at),
            "tier": self.tier,
        }


@dataclass
class Approval:
    """A deployment approval or rejection."""

    user: User
    status: str
    at: datetime
    comment: str | None = None


@dataclass
class Project:
    """A project with its pipelines and deployments."""

    id: int
    path: str
    namespace: Group
    created_at: datetime
    environments: dict[str, Environment] = field(default_factory=dict)
    pipelines: list[Pipeline] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    #: Answer 403 to the token (a project it can see but not read).
    forbidden: bool = False
    next_pipeline_iid: int = 1
    next_deployment_iid: int = 1

    @property
    def name(self) -> str:
        """The project's own segment."""
        return self.path.rsplit("/", 1)[-1]

    def web_url(self, base: str) -> str:
        """Its web address."""
        return f"{base}/{self.path}"

    def json(self, base: str, *, simple: bool = False) -> dict[str, Any]:
        """``BasicProjectDetails`` (``simple``) or a useful subset of ``ProjectEntity``."""
        data: dict[str, Any] = {
            "id": self.id,
            "description": None,
            "name": self.name,
            "name_with_namespace": f"{self.namespace.full_path} / {self.name}".replace("/", " / "),
            "path": self.name,
            "path_with_namespace": self.path,
            "created_at": ts(self.created_at),
            "default_branch": "main",
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": f"git@emulator:{self.path}.git",
            "http_url_to_repo": f"{base}/{self.path}.git",
            "web_url": self.web_url(base),
            "readme_url": f"{base}/{self.path}/-/blob/main/README.md",
            "forks_count": 0,
            "avatar_url": None,
            "star_count": 0,
            "last_activity_at": ts(self.created_at),
            "namespace": self.namespace.json(base),
        }
        if not simple:
            data.update(
                {
                    "visibility": "private",
                    "archived": False,
                    "jobs_enabled": True,
                    "builds_access_level": "enabled",
                    "environments_access_level": "enabled",
                }
            )
        return data


@dataclass
class Pipeline:
    """A pipeline: its jobs' timelines decide its status."""

    id: int
    iid: int
    project: Project
    ref: str
    sha: str
    tag: bool
    source: str
    user: User
    created_at: datetime
    name: str | None = None
    jobs: list[Job] = field(default_factory=list)
    #: Environment -> (outcome, gate) the planner follows, kept for gates decided later.
    plans: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def visible(self, when: datetime) -> bool:
        """Created by ``when``."""
        return self.created_at <= when

    def status(self, when: datetime) -> str:  # noqa: PLR0911 - GitLab's composite status
        """The composite status of the jobs, in the order ``Gitlab::Ci::Status::Composite`` checks."""
        states = {job.status(when) for job in self.jobs if not job.allow_failure} - {None}
        if not states or states <= {"created"}:
            return "created"
        if states <= {"skipped"}:
            return "skipped"
        if states <= {"success", "skipped"}:
            return "success"
        if states <= {"canceled", "success", "skipped"}:
            return "canceled"
        if states <= {"pending", "created", "skipped"}:
            return "pending"
        if states & {"running", "pending"}:
            return "running"
        if "manual" in states:
            return "manual"
        return "running" if "created" in states else "failed"

    def updated_at(self, when: datetime) -> datetime:
        """The latest passed step of any job."""
        times = [self.created_at]
        for job in self.jobs:
            step = job.timeline.at(when)
            if step is not None:
                times.append(step.at)
        return max(times)

    def started_at(self, when: datetime) -> datetime | None:
        """The first job start."""
        starts = [t for job in self.jobs if (t := job.timeline.first("running", when))]
        return min(starts) if starts else None

    def finished_at(self, when: datetime) -> datetime | None:
        """When it ended (None while it runs)."""
        if self.status(when) not in JOB_TERMINAL:
            return None
        ends = [t for job in self.jobs if (t := job.finished_at(when))]
        return max(ends) if ends else self.updated_at(when)

    def web_url(self, base: str) -> str:
        """Its web address."""
        return f"{self.project.web_url(base)}/-/pipelines/{self.id}"

    def basic_json(self, when: datetime, base: str) -> dict[str, Any]:
        """``Ci::PipelineBasic`` (list items, and the ``pipeline`` embedded in jobs)."""
        return {
            "id": self.id,
            "iid": self.iid,
            "project_id": self.project.id,
            "sha": self.sha,
            "ref": self.ref,
            "status": self.status(when),
            "source": self.source,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at(when)),
            "web_url": self.web_url(base),
            "name": self.name,
        }

    def detail_json(self, when: datetime, base: str) -> dict[str, Any]:
        """``Ci::Pipeline`` (``GET /projects/:id/pipelines/:pipeline_id``)."""
        started = self.started_at(when)
        finished = self.finished_at(when)
        duration = int((finished - started).total_seconds()) if started and finished else None
        status = self.status(when)
        return {
            **self.basic_json(when, base),
            "before_sha": "0" * 40,
            "tag": self.tag,
            "yaml_errors": None,
            "user": self.user.json(base),
            "started_at": ts(started),
            "finished_at": ts(finished),
            "committed_at": None,
            "duration": duration,
            "queued_duration": 1.0 if started else None,
            "coverage": None,
            "archived": False,
            "detailed_status": {
                "icon": f"status_{status}",
                "text": status,
                "label": status,
                "group": status,
                "tooltip": status,
                "has_details": True,
                "details_path": f"/{self.project.path}/-/pipelines/{self.id}",
                "illustration": None,
                "favicon": f"/assets/ci_favicons/favicon_status_{status}.png",
            },
        }


@dataclass
class Job:
    """A CI job (a deploy job is a deployment's ``deployable``)."""

    id: int
    name: str
    stage: str
    pipeline: Pipeline
    timeline: Timeline
    failure_reason: str | None = None
    allow_failure: bool = False

    def status(self, when: datetime) -> str | None:
        """Its status at ``when`` (None: not created yet)."""
        step = self.timeline.at(when)
        return step.status if step else None

    def finished_at(self, when: datetime) -> datetime | None:
        """When it reached a terminal status other than skipped."""
        step = self.timeline.at(when)
        if step is None or step.status not in JOB_TERMINAL - {"skipped"}:
            return None
        return step.at

    def json(self, when: datetime, base: str) -> dict[str, Any]:
        """``Ci::Job``."""
        status = self.status(when) or "created"
        started = self.timeline.first("running", when)
        finished = self.finished_at(when)
        pending = self.timeline.first("pending", when)
        data: dict[str, Any] = {
            "id": self.id,
            "status": status,
            "stage": self.stage,
            "name": self.name,
            "ref": self.pipeline.ref,
            "tag": self.pipeline.tag,
            "coverage": None,
            "allow_failure": self.allow_failure,
            "created_at": ts(self.timeline.created_at),
            "started_at": ts(started),
            "finished_at": ts(finished),
            "erased_at": None,
            "duration": (finished - started).total_seconds() if started and finished else None,
            "queued_duration": (started - pending).total_seconds() if started and pending else None,
            "user": self.pipeline.user.json(base, full=True),
            "commit": {
                "id": self.pipeline.sha,
                "short_id": self.pipeline.sha[:8],
                "created_at": ts(self.pipeline.created_at),
                "parent_ids": [],
                "title": "Update the service",
                "message": "Update the service\n",
                "author_name": self.pipeline.user.name,
                "author_email": f"{self.pipeline.user.username}@example.com",
                "authored_date": ts(self.pipeline.created_at),
                "committer_name": self.pipeline.user.name,
                "committer_email": f"{self.pipeline.user.username}@example.com",
                "committed_date": ts(self.pipeline.created_at),
                "web_url": f"{self.pipeline.project.web_url(base)}/-/commit/{self.pipeline.sha}",
            },
            "pipeline": self.pipeline.basic_json(when, base),
            "web_url": f"{self.pipeline.project.web_url(base)}/-/jobs/{self.id}",
            "project": {"ci_job_token_scope_enabled": False},
            "artifacts": [],
            "runner": None,
            "artifacts_expire_at": None,
            "archived": False,
            "tag_list": [],
        }
        if status == "failed":
            data["failure_reason"] = self.failure_reason or "script_failure"
        return data


@dataclass
class Deployment:
    """A deployment of a project to an environment, made by a job."""

    id: int
    iid: int
    project: Project
    environment: Environment
    job: Job | None
    ref: str
    sha: str
    user: User
    timeline: Timeline
    required_approvals: int = 0
    approvals: list[Approval] = field(default_factory=list)
    #: A row written with a wrong clock (a restored backup, an import, a replica whose clock ran
    #: ahead): every time it reports is off by this much, the rest of the world is not.
    skew: timedelta = timedelta(0)

    def visible(self, when: datetime) -> bool:
        """Created by ``when``."""
        return self.timeline.created_at <= when

    def status(self, when: datetime) -> str:
        """Its status at ``when``."""
        step = self.timeline.at(when)
        return step.status if step else "created"

    def updated_at(self, when: datetime) -> datetime:
        """The latest passed step (as the row reports it: skewed, see ``skew``)."""
        step = self.timeline.at(when)
        return (step.at if step else self.timeline.created_at) + self.skew

    def json(self, when: datetime, base: str, *, detail: bool = False) -> dict[str, Any]:
        """``API::Entities::Deployment``; the single-object view adds approvals (Premium)."""
        data: dict[str, Any] = {
            "id": self.id,
            "iid": self.iid,
            "ref": self.ref,
            "sha": self.sha,
            "created_at": ts(self.timeline.created_at + self.skew),
            "updated_at": ts(self.updated_at(when)),
            "user": self.user.json(base),
            "environment": self.environment.json(),
            "deployable": self.job.json(when, base) if self.job else None,
            "status": self.status(when),
        }
        if detail and self.required_approvals:
            passed = [a for a in self.approvals if a.at <= when]
            approved = sum(1 for a in passed if a.status == "approved")
            data["pending_approval_count"] = max(self.required_approvals - approved, 0)
            data["approvals"] = [
                {
                    "user": a.user.json(base),
                    "status": a.status,
                    "created_at": ts(a.at),
                    "comment": a.comment,
                }
                for a in passed
            ]
        return data


class World:
    """Every object of the emulated instance, with GitLab-like id sequences."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {
            "user": 1,
            "group": 10,
            "project": 100,
            "environment": 300,
            "pipeline": 1000,
            "job": 5000,
            "deployment": 20000,
        }
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.projects: dict[int, Project] = {}
        self.deployments: dict[int, Deployment] = {}

    def next_id(self, kind: str) -> int:
        """The next id of a kind (ids are global to the instance, as in GitLab)."""
        value = self._ids[kind]
        self._ids[kind] = value + 1
        return value

    def user(self, username: str) -> User:
        """A user, created on first use."""
        if username not in self.users:
            name = username.replace(".", " ").replace("-", " ").title()
            self.users[username] = User(self.next_id("user"), username, name)
        return self.users[username]

    def group(self, full_path: str) -> Group:
        """A group, with its parents, created on first use."""
        if full_path not in self.groups:
            parent = self.group(full_path.rsplit("/", 1)[0]) if "/" in full_path else None
            self.groups[full_path] = Group(
                self.next_id("group"), full_path, parent.id if parent else None
            )
        return self.groups[full_path]

    def add_project(self, path: str, created_at: datetime) -> Project:
        """A new project (its group path is everything before the last segment)."""
        if "/" not in path:
            msg = f"project {path!r} needs a group: group/name"
            raise ValueError(msg)
        if self.project(path) is not None:
            msg = f"project {path!r} exists"
            raise ValueError(msg)
        project = Project(
            self.next_id("project"), path, self.group(path.rsplit("/", 1)[0]), created_at
        )
        self.projects[project.id] = project
        return project

    def project(self, ref: str) -> Project | None:
        """A project by numeric id or full path."""
        if ref.isdigit():
            return self.projects.get(int(ref))
        for project in self.projects.values():
            if project.path == ref:
                return project
        return None

    def environment(self, project: Project, name: str, created_at: datetime) -> Environment:
        """A project's environment, created on first use."""
        if name not in project.environments:
            tier = (
                "production"
                if name.startswith("prod")
                else ("staging" if name.startswith("stag") else "development")
            )
            project.environments[name] = Environment(
                self.next_id("environment"),
                name,
                tier,
                created_at,
                external_url=f"https://{name}.{project.name}.example.com",
            )
        return project.environments[name]

    def group_projects(self, group: Group, *, subgroups: bool) -> list[Project]:
        """Projects of a group (and of its subgroups)."""
        prefix = group.full_path + "/"
        return [
            p
            for p in self.projects.values()
            if p.namespace is group or (subgroups and p.path.startswith(prefix))
        ]

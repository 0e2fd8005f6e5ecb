"""The emulated GitHub's objects and their JSON, in the shapes the real REST API sends."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from deploy_fetcher.model import format_rfc3339

__all__ = [
    "ACTIONS_APP",
    "Deployment",
    "DeploymentStatus",
    "Repo",
    "Run",
    "Workflow",
    "iso",
    "node_id",
    "user_json",
]

#: The GitHub App that Actions acts as (``performed_via_github_app`` of its deployments), with the
#: fields GitHub's ``integration`` schema requires.
ACTIONS_APP: dict[str, Any] = {
    "id": 15368,
    "slug": "github-actions",
    "node_id": "MDM6QXBwMTUzNjg=",
    "client_id": "Iv1.05c79e9ad1f6bdfa",
    "name": "GitHub Actions",
    "description": "Automate your workflow from idea to production",
    "external_url": "https://help.github.com/en/actions",
    "html_url": "https://github.com/apps/github-actions",
    "created_at": "2018-07-30T09:30:17Z",
    "updated_at": "2019-12-10T19:04:12Z",
    "permissions": {"actions": "write", "deployments": "write", "metadata": "read"},
    "events": ["check_run", "check_suite", "deployment", "deployment_status", "workflow_run"],
}


#: A repository's link fields (``{name}_url`` → ``…/repos/{full_name}/{name}``) and templated ones.
_REPO_LINKS: Final = (
    "forks",
    "teams",
    "hooks",
    "events",
    "tags",
    "languages",
    "stargazers",
    "contributors",
    "subscribers",
    "subscription",
    "merges",
    "downloads",
    "deployments",
)
_REPO_TEMPLATE_LINKS: Final = {
    "archive": "{archive_format}{/ref}",
    "assignees": "assignees{/user}",
    "blobs": "git/blobs{/sha}",
    "branches": "branches{/branch}",
    "collaborators": "collaborators{/collaborator}",
    "comments": "comments{/number}",
    "commits": "commits{/sha}",
    "compare": "compare/{base}...{head}",
    "contents": "contents/{+path}",
    "git_commits": "git/commits{/sha}",
    "git_refs": "git/refs{/sha}",
    "git_tags": "git/tags{/sha}",
    "issue_comment": "issues/comments{/number}",
    "issue_events": "issues/events{/number}",
    "issues": "issues{/number}",
    "keys": "keys{/key_id}",
    "labels": "labels{/name}",
    "milestones": "milestones{/number}",
    "notifications": "notifications{?since,all,participating}",
    "pulls": "pulls{/number}",
    "releases": "releases{/id}",
    "statuses": "statuses/{sha}",
    "trees": "git/trees{/sha}",
}


def iso(value: datetime) -> str:
    """GitHub's timestamp format: seconds, ``Z``."""
    return format_rfc3339(value.replace(microsecond=0))


def node_id(kind: str, number: int) -> str:
    """A global node id in GitHub's new style (``DE_kwDO…``), stable for a kind and number."""
    prefix = {
        "Deployment": "DE",
        "DeploymentStatus": "DES",
        "WorkflowRun": "WFR",
        "Workflow": "W",
    }.get(kind, kind[:3].upper())
    return f"{prefix}_kwDO{base64.b64encode(f'{kind}:{number}'.encode()).decode().rstrip('=')}"


def user_json(login: str, base: str) -> dict[str, Any]:
    """A ``simple-user`` object, with every field GitHub's schema requires."""
    number = int(hashlib.sha256(login.encode()).hexdigest()[:7], 16)
    bot = login.endswith("[bot]")
    api = f"{base}/users/{login}"
    return {
        "login": login,
        "id": number,
        "node_id": node_id("User", number),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{number}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": "Bot" if bot else "User",
        "site_admin": False,
    }


def _app_json(base: str) -> dict[str, Any]:
    owner = user_json("github", base)
    owner["type"] = "Organization"
    return {**ACTIONS_APP, "owner": owner}


@dataclass
class Workflow:
    """A workflow file in ``.github/workflows``."""

    id: int
    name: str
    path: str
    created_at: datetime

    def to_json(self, repo: Repo, base: str, web: str) -> dict[str, Any]:
        """The ``workflow`` object."""
        return {
            "id": self.id,
            "node_id": node_id("Workflow", self.id),
            "name": self.name,
            "path": self.path,
            "state": "active",
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
            "url": f"{base}/repos/{repo.full_name}/actions/workflows/{self.id}",
            "html_url": f"{web}/{repo.full_name}/blob/{repo.default_branch}/{self.path}",
            "badge_url": f"{web}/{repo.full_name}/workflows/{self.name}/badge.svg",
        }


@dataclass
class Run:
    """A workflow run; ``attempts`` holds the state of every attempt, the last being current."""

    id: int
    workflow_id: int
    run_number: int
    head_sha: str
    head_branch: str
    event: str
    actor: str
    created_at: datetime
    attempts: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current(self) -> dict[str, Any]:
        """The latest attempt."""
        return self.attempts[-1]

    def to_json(
        self, repo: Repo, workflow: Workflow, base: str, web: str, attempt: int | None = None
    ) -> dict[str, Any]:
        """The ``workflow-run`` object (of one attempt when ``attempt`` is given)."""
        state = self.attempts[(attempt or len(self.attempts)) - 1]
        api = f"{base}/repos/{repo.full_name}/actions/runs/{self.id}"
        return {
            "id": self.id,
            "name": workflow.name,
            "node_id": node_id("WorkflowRun", self.id),
            "head_branch": self.head_branch,
            "head_sha": self.head_sha,
            "path": workflow.path,
            "display_title": f"{workflow.name} for {self.head_sha[:7]}",
            "run_number": self.run_number,
            "event": self.event,
            "status": state["status"],
            "conclusion": state["conclusion"],
            "workflow_id": self.workflow_id,
            "check_suite_id": self.id * 10 + state["attempt"],
            "url": api,
            "html_url": f"{web}/{repo.full_name}/actions/runs/{self.id}",
            "pull_requests": [],
            "created_at": iso(self.created_at),
            "updated_at": iso(state["updated_at"]),
            "actor": user_json(self.actor, base),
            "triggering_actor": user_json(state["triggering_actor"], base),
            "run_attempt": state["attempt"],
            "run_started_at": iso(state["run_started_at"]),
            "jobs_url": f"{api}/jobs",
            "logs_url": f"{api}/logs",
            "cancel_url": f"{api}/cancel",
            "rerun_url": f"{api}/rerun",
            "previous_attempt_url": f"{api}/attempts/{state['attempt'] - 1}"
            if state["attempt"] > 1
            else None,
            "workflow_url": f"{base}/repos/{repo.full_name}/actions/workflows/{self.workflow_id}",
            "head_commit": {
                "id": self.head_sha,
                "tree_id": self.head_sha[::-1],
                "message": "deploy",
                "timestamp": iso(self.created_at),
                "author": {"name": self.actor, "email": f"{self.actor}@users.noreply.github.com"},
                "committer": {"name": "GitHub", "email": "noreply@github.com"},
            },
            "artifacts_url": f"{api}/artifacts",
            "check_suite_url": f"{base}/repos/{repo.full_name}/check-suites/{self.id * 10 + state['attempt']}",
            "repository": repo.to_json(base, web, short=True),
            "head_repository": repo.to_json(base, web, short=True),
        }

    def jobs_json(
        self, repo: Repo, workflow: Workflow, base: str, web: str, attempt: int | None = None
    ) -> list[dict[str, Any]]:
        """The ``job`` objects of one attempt, as GitHub's jobs list shows them.

        An attempt without jobs of its own set (see ``GitHubEmulator.set_job``) has one, ``deploy``,
        following the run. A job cancelled before a runner took it has ``started_at`` equal to its
        creation and ``completed_at`` set; one still queued has ``completed_at: null``.
        """
        state = self.attempts[(attempt or len(self.attempts)) - 1]
        number = state["attempt"]
        created = state["run_started_at"]
        jobs: list[dict[str, Any]] = state.get("jobs") or []
        if jobs:
            return [
                self._job_json(
                    repo, workflow, base, web, number=number, index=index, job=job, created=created
                )
                for index, job in enumerate(jobs)
            ]
        started = state.get("job_started_at")
        status = state["status"]
        job_status = (
            "completed"
            if status == "completed"
            else "in_progress"
            if started is not None
            else "queued"
            if status != "waiting"
            else "waiting"
        )
        conclusion = state["conclusion"] if job_status == "completed" else None
        if conclusion in ("action_required", "stale", "startup_failure"):
            conclusion = "failure"
        job = {
            "name": "deploy",
            "status": job_status,
            "conclusion": conclusion,
            "started_at": started,
            "completed_at": state.get("job_completed_at"),
        }
        return [
            self._job_json(
                repo, workflow, base, web, number=number, index=0, job=job, created=created
            )
        ]

    def _job_json(
        self,
        repo: Repo,
        workflow: Workflow,
        base: str,
        web: str,
        *,
        number: int,
        index: int,
        job: dict[str, Any],
        created: datetime,
    ) -> dict[str, Any]:
        """One ``job`` object; a job no runner took yet has no runner and ``started_at`` = creation."""
        job_id = (self.id * 100 + number) * 100 + index if index else self.id * 100 + number
        started: datetime | None = job["started_at"]
        completed: datetime | None = job["completed_at"]
        return {
            "id": job_id,
            "run_id": self.id,
            "workflow_name": workflow.name,
            "head_branch": self.head_branch,
            "run_url": f"{base}/repos/{repo.full_name}/actions/runs/{self.id}",
            "run_attempt": number,
            "node_id": node_id("CheckRun", job_id),
            "head_sha": self.head_sha,
            "url": f"{base}/repos/{repo.full_name}/actions/jobs/{job_id}",
            "html_url": f"{web}/{repo.full_name}/actions/runs/{self.id}/job/{job_id}",
            "status": job["status"],
            "conclusion": job["conclusion"],
            "created_at": iso(created),
            "started_at": iso(started or created),
            "completed_at": iso(completed) if completed is not None else None,
            "name": job["name"],
            "steps": [],
            "check_run_url": f"{base}/repos/{repo.full_name}/check-runs/{job_id}",
            "labels": ["ubuntu-latest"],
            "runner_id": index + 1 if started is not None else None,
            "runner_name": f"GitHub Actions {index + 1}" if started is not None else None,
            "runner_group_id": 1 if started is not None else None,
            "runner_group_name": "GitHub Actions" if started is not None else None,
        }


@dataclass
class DeploymentStatus:
    """One status of a deployment."""

    id: int
    state: str
    created_at: datetime
    creator: str
    description: str = ""
    log_url: str = ""
    environment_url: str = ""


@dataclass
class Deployment:
    """A deployment; ``run_id`` is set when Actions made it."""

    id: int
    sha: str
    ref: str
    environment: str
    creator: str
    created_at: datetime
    task: str = "deploy"
    payload: dict[str, Any] | str = field(default_factory=dict)
    description: str | None = None
    run_id: int | None = None
    statuses: list[DeploymentStatus] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        """The GraphQL id."""
        return node_id("Deployment", self.id)

    @property
    def updated_at(self) -> datetime:
        """GitHub bumps a deployment's ``updated_at`` with each status."""
        return max([self.created_at, *(s.created_at for s in self.statuses)])

    def to_json(self, repo: Repo, base: str) -> dict[str, Any]:
        """The ``deployment`` object."""
        url = f"{base}/repos/{repo.full_name}/deployments/{self.id}"
        return {
            "url": url,
            "id": self.id,
            "node_id": self.node_id,
            "task": self.task,
            "original_environment": self.environment,
            "environment": self.environment,
            "description": self.description,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "statuses_url": f"{url}/statuses",
            "repository_url": f"{base}/repos/{repo.full_name}",
            "creator": user_json(self.creator, base),
            "sha": self.sha,
            "ref": self.ref,
            "payload": self.payload,
            "transient_environment": False,
            "production_environment": self.environment.lower() in ("prod", "production"),
            "performed_via_github_app": _app_json(base) if self.run_id is not None else None,
        }

    def status_json(self, status: DeploymentStatus, repo: Repo, base: str) -> dict[str, Any]:
        """A ``deployment-status`` object."""
        url = f"{base}/repos/{repo.full_name}/deployments/{self.id}"
        return {
            "url": f"{url}/statuses/{status.id}",
            "id": status.id,
            "node_id": node_id("DeploymentStatus", status.id),
            "state": status.state,
            "creator": user_json(status.creator, base),
            "description": status.description,
            "environment": self.environment,
            "target_url": status.log_url,
            "created_at": iso(status.created_at),
            "updated_at": iso(status.created_at),
            "deployment_url": url,
            "repository_url": f"{base}/repos/{repo.full_name}",
            "environment_url": status.environment_url,
            "log_url": status.log_url,
            "performed_via_github_app": _app_json(base) if self.run_id is not None else None,
        }

    def status_graphql(self, status: DeploymentStatus) -> dict[str, Any]:
        """A GraphQL ``DeploymentStatus`` node (the fields the fetcher asks for)."""
        return {
            "state": status.state.upper(),
            "createdAt": iso(status.created_at),
            "updatedAt": iso(status.created_at),
            "description": status.description,
            "logUrl": status.log_url or None,
            "environmentUrl": status.environment_url or None,
            "creator": {"login": status.creator},
        }


@dataclass
class Repo:
    """A repository and everything in it."""

    id: int
    owner: str
    name: str
    owner_is_org: bool = True
    default_branch: str = "main"
    archived: bool = False
    deleted: bool = False
    workflows: dict[int, Workflow] = field(default_factory=dict)
    runs: dict[int, Run] = field(default_factory=dict)
    deployments: dict[int, Deployment] = field(default_factory=dict)
    #: Workflow file text per path (every ref), and per (path, sha) where a commit differs.
    files: dict[str, str] = field(default_factory=dict)
    files_at: dict[tuple[str, str], str] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def full_name(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"

    def to_json(self, base: str, web: str, *, short: bool = False) -> dict[str, Any]:
        """The ``repository`` object (``minimal-repository`` when ``short``)."""
        owner = user_json(self.owner, base)
        owner["type"] = "Organization" if self.owner_is_org else "User"
        out: dict[str, Any] = {
            "id": self.id,
            "node_id": node_id("Repository", self.id),
            "name": self.name,
            "full_name": self.full_name,
            "private": True,
            "owner": owner,
            "html_url": f"{web}/{self.full_name}",
            "url": f"{base}/repos/{self.full_name}",
            "fork": False,
        }
        api = f"{base}/repos/{self.full_name}"
        out["description"] = None
        out |= {f"{name}_url": f"{api}/{name}" for name in _REPO_LINKS}
        out |= {f"{name}_url": f"{api}/{path}" for name, path in _REPO_TEMPLATE_LINKS.items()}
        if not short:
            host = web.split("://", 1)[-1].rstrip("/")
            created = iso(self.created_at) if self.created_at is not None else None
            out |= {
                "archived": self.archived,
                "disabled": False,
                "default_branch": self.default_branch,
                "visibility": "private",
                # The rest of GitHub's ``repository`` object (required by its schema); the
                # installation's repository list sends it whole.
                "clone_url": f"{web}/{self.full_name}.git",
                "git_url": f"git://{host}/{self.full_name}.git",
                "ssh_url": f"git@{host}:{self.full_name}.git",
                "svn_url": f"{web}/{self.full_name}",
                "mirror_url": None,
                "homepage": None,
                "language": None,
                "license": None,
                "size": 0,
                "forks": 0,
                "forks_count": 0,
                "open_issues": 0,
                "open_issues_count": 0,
                "stargazers_count": 0,
                "watchers": 0,
                "watchers_count": 0,
                "has_issues": True,
                "has_projects": True,
                "has_wiki": True,
                "has_pages": False,
                "has_downloads": True,
                "created_at": created,
                "updated_at": created,
                "pushed_at": created,
            }
        return out

    def workflow_by(self, key: str) -> Workflow | None:
        """A workflow by id or file name (the API takes both)."""
        if key.isdigit():
            return self.workflows.get(int(key))
        for wf in self.workflows.values():
            if wf.path.rsplit("/", 1)[-1] == key:
                return wf
        return None

    def file_at(self, path: str, ref: str | None) -> str | None:
        """A file's text at a ref."""
        if ref and (path, ref) in self.files_at:
            return self.files_at[(path, ref)]
        return self.files.get(path)

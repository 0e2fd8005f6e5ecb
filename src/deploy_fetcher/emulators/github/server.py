"""A GitHub REST (and a sliver of GraphQL) emulator on 127.0.0.1.

It serves what the GitHub adapter reads, in GitHub's shapes, at ``/`` and under the Enterprise Server
prefix ``/api/v3`` (GraphQL at ``/graphql`` and ``/api/graphql``):

* deployments and their statuses, workflows, workflow runs (with ``created`` windows, attempts and the
  1 000-result cap of filtered listings), review logs (approvals), file contents, repository lists of
  organisations, users and App installations, ``/rate_limit``;
* ``Link`` pagination; weak ETags on every ``GET`` and ``304 Not Modified`` for a matching
  ``If-None-Match``, which — as on GitHub — costs no quota;
* per-credential quota with ``x-ratelimit-*`` headers (or none, like many GHES installs) and the
  403 GitHub sends when it is spent;
* personal tokens and GitHub Apps: a JWT signed RS256 by the app's key (checked against its public
  key) buys installation tokens that expire on the emulator's clock;
* GraphQL: only ``nodes(ids:)`` on ``Deployment`` with ``databaseId`` and ``statuses`` — the one query
  the adapter sends; anything else gets a GraphQL error.

Time is the emulator's own (``start`` + what :meth:`advance` added); advancing it plays the scheduled
pipeline steps (see :mod:`.scenario`), so polls keep seeing new deployments and status changes.
Every request is logged, and :meth:`charged` says which ones cost quota.
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jwt

from deploy_fetcher.emulators._server import EmulatorServer, Request, Response, json_response
from deploy_fetcher.emulators.github._state import (
    Deployment,
    DeploymentStatus,
    Repo,
    Run,
    Workflow,
    iso,
)
from deploy_fetcher.model import parse_timestamp

if TYPE_CHECKING:
    from deploy_fetcher.emulators.github.scenario import Scenario

__all__ = ["ChargedRequest", "GitHubEmulator"]

_DOCS = "https://docs.github.com/rest"
_PREFIXES = ("", "/api/v3")
_LIST_CAP = 1000
_WINDOW = 3600
_NODES_QUERY = re.compile(r"nodes\s*\(\s*ids\s*:")
_OBJECT_FIELD = re.compile(r"(\w+)\s*:\s*object\s*\(\s*expression\s*:\s*\$(\w+)\s*\)")


@dataclass(frozen=True)
class ChargedRequest:
    """A request that cost quota."""

    method: str
    path: str
    resource: str
    credential: str


@dataclass
class _Quota:
    limit: int
    used: int = 0
    reset: datetime | None = None


@dataclass
class _App:
    app_id: int
    public_key: str
    installations: dict[int, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Credential:
    key: str
    repos: frozenset[str] | None  # lower-case full names; None = every repository


Handler = Callable[[Request, dict[str, str], _Credential], Response]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(
        {"message": message, "documentation_url": _DOCS, "status": str(status)}, status, headers
    )


def _parse_created(expr: str) -> tuple[datetime | None, datetime | None, bool, bool]:
    """``>=X``, ``>X``, ``<=X``, ``<X``, ``X..Y`` or ``X`` → (low, high, low_open, high_open)."""
    if ".." in expr:
        low, high = expr.split("..", 1)
        return (
            None if low == "*" else parse_timestamp(low),
            None if high == "*" else parse_timestamp(high),
            False,
            False,
        )
    for op in (">=", "<=", ">", "<"):
        if expr.startswith(op):
            when = parse_timestamp(expr[len(op) :])
            if op.startswith(">"):
                return when, None, op == ">", False
            return None, when, False, op == "<"
    when = parse_timestamp(expr)
    return when, when + timedelta(days=1), False, True


class GitHubEmulator(EmulatorServer):
    """The emulator; see the module docstring. Helpers for tests are plain methods on it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = "emulator-token",  # noqa: S107 - the emulator's well-known test token
        scenario: str | Scenario | None = "demo",
        seed: int = 0,
        start: datetime | None = None,
        rate_limit: int = 5000,
        rate_limit_headers: bool = True,
        token_ttl: timedelta = timedelta(hours=1),
        secondary_points_per_minute: int | None = None,
    ) -> None:
        super().__init__(host, port)
        self.start_time = (start or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        self._offset = timedelta(0)
        self.state_lock = threading.RLock()
        self.repos: dict[str, Repo] = {}
        self.tokens: dict[str, frozenset[str] | None] = {token: None}
        self.apps: dict[int, _App] = {}
        self.installation_tokens: dict[str, tuple[int, datetime]] = {}
        self.rate_limit = rate_limit
        self.rate_limit_headers = rate_limit_headers
        #: GitHub's secondary limit on REST points per credential in any 60 s (None: not enforced).
        self.secondary_points_per_minute = secondary_points_per_minute
        self._points: dict[str, collections.deque[tuple[float, int]]] = {}
        #: Answers refused for the secondary limit.
        self.secondary_refusals = 0
        self.token_ttl = token_ttl
        self.forbidden: list[tuple[str, re.Pattern[str]]] = []
        self.charged_log: list[ChargedRequest] = []
        self.tokens_issued = 0
        self._quotas: dict[tuple[str, str], _Quota] = {}
        self._ids = itertools.count(1_000_001)
        self._timeline: list[tuple[datetime, int, Callable[[datetime], object]]] = []
        self._seq = itertools.count()
        self.seed = seed
        self._register_routes()
        if scenario is not None:
            from deploy_fetcher.emulators.github.scenario import Scenario

            built = Scenario.named(scenario, seed=seed) if isinstance(scenario, str) else scenario
            built.apply(self)

    # -- time ------------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The emulator's clock."""
        return self.start_time + self._offset

    def server_time(self) -> datetime:
        """The ``Date`` of every answer: the emulator's clock."""
        return self.now()

    def advance(self, seconds: float) -> None:
        """Move the clock forward and play everything scheduled up to the new time."""
        with self.state_lock:
            self._offset += timedelta(seconds=seconds)
            self.run_due()

    def schedule(self, at: datetime, action: Callable[[datetime], object]) -> None:
        """Run ``action(at)`` once the clock reaches ``at`` (at once if it already has, on the next play)."""
        with self.state_lock:
            heapq.heappush(self._timeline, (at, next(self._seq), action))

    def run_due(self) -> None:
        """Play every scheduled action whose time has come, in time order."""
        with self.state_lock:
            now = self.now()
            while self._timeline and self._timeline[0][0] <= now:
                at, _, action = heapq.heappop(self._timeline)
                action(at)

    def next_id(self) -> int:
        """A fresh id (deployments, statuses, runs, workflows share one sequence, as ids do)."""
        return next(self._ids)

    # -- setup helpers -----------------------------------------------------------------------------
    def add_repo(
        self, full_name: str, *, owner_is_org: bool = True, archived: bool = False
    ) -> Repo:
        """Create a repository (idempotent)."""
        with self.state_lock:
            key = full_name.lower()
            if key not in self.repos:
                owner, name = full_name.split("/", 1)
                self.repos[key] = Repo(
                    self.next_id(),
                    owner,
                    name,
                    owner_is_org=owner_is_org,
                    archived=archived,
                    created_at=self.now(),
                )
            return self.repos[key]

    def repo(self, full_name: str) -> Repo:
        """A repository by name (KeyError when unknown)."""
        return self.repos[full_name.lower()]

    def delete_repo(self, full_name: str) -> None:
        """Make a repository answer 404 from now on."""
        with self.state_lock:
            self.repo(full_name).deleted = True

    def forbid(self, full_name: str, path_pattern: str = ".*") -> None:
        """Answer 403 "Resource not accessible" for a repository's paths matching ``path_pattern``."""
        with self.state_lock:
            self.forbidden.append((full_name.lower(), re.compile(path_pattern)))

    def add_workflow(self, full_name: str, name: str, file_name: str, text: str = "") -> Workflow:
        """Add a workflow (and its file, when ``text`` is given)."""
        with self.state_lock:
            repo = self.add_repo(full_name)
            path = f".github/workflows/{file_name}"
            for wf in repo.workflows.values():
                if wf.path == path:
                    return wf
            wf = Workflow(self.next_id(), name, path, self.now() - timedelta(days=90))
            repo.workflows[wf.id] = wf
            if text:
                repo.files[path] = text
            return wf

    def add_run(
        self,
        full_name: str,
        workflow: Workflow,
        *,
        at: datetime,
        sha: str,
        branch: str = "main",
        actor: str = "octocat",
        event: str = "push",
        status: str = "queued",
    ) -> Run:
        """Create a workflow run (attempt 1)."""
        with self.state_lock:
            repo = self.add_repo(full_name)
            number = 1 + sum(1 for r in repo.runs.values() if r.workflow_id == workflow.id)
            run = Run(self.next_id(), workflow.id, number, sha, branch, event, actor, at)
            run.attempts.append(
                {
                    "attempt": 1,
                    "status": status,
                    "conclusion": None,
                    "run_started_at": at,
                    "updated_at": at,
                    "triggering_actor": actor,
                }
            )
            repo.runs[run.id] = run
            return run

    def set_run(
        self,
        full_name: str,
        run_id: int,
        *,
        status: str,
        conclusion: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Change the current attempt's status (and conclusion)."""
        with self.state_lock:
            attempt = self.repo(full_name).runs[run_id].current
            when = at or self.now()
            if status == "in_progress" and attempt.get("job_started_at") is None:
                # The job starts now; the run's run_started_at stays its creation (as on GitHub).
                attempt["job_started_at"] = when
            if status == "completed":
                attempt["job_completed_at"] = when
            attempt["status"] = status
            attempt["conclusion"] = conclusion
            attempt["updated_at"] = when

    def set_job(
        self,
        full_name: str,
        run_id: int,
        name: str,
        *,
        status: str,
        conclusion: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Set one job of the current attempt (created on first use), for runs of several jobs.

        An attempt with jobs set lists exactly those (a real run lists each of its jobs with its
        own start and end: see the recorded ``run_3881497935_jobs.json``); ``set_run`` still moves
        the run itself.
        """
        with self.state_lock:
            jobs = self.repo(full_name).runs[run_id].current.setdefault("jobs", [])
            job = next((j for j in jobs if j["name"] == name), None)
            if job is None:
                job = {"name": name, "started_at": None, "completed_at": None}
                jobs.append(job)
            when = at or self.now()
            if status in ("in_progress", "completed") and job["started_at"] is None:
                job["started_at"] = when
            if status == "completed":
                job["completed_at"] = when
            job["status"] = status
            job["conclusion"] = conclusion if status == "completed" else None

    def touch_run(self, full_name: str, run_id: int, *, at: datetime | None = None) -> None:
        """Move a run's ``updated_at`` without changing its state.

        GitHub does this long after a run completed (logs expire, artifacts are deleted, a check
        suite is re-requested): a recorded real response shows it 13 months after completion.
        """
        with self.state_lock:
            self.repo(full_name).runs[run_id].current["updated_at"] = at or self.now()

    def rerun(
        self, full_name: str, run_id: int, *, at: datetime | None = None, actor: str = "octocat"
    ) -> int:
        """Start a new attempt of a run; returns its number."""
        with self.state_lock:
            run = self.repo(full_name).runs[run_id]
            when = at or self.now()
            number = int(run.current["attempt"]) + 1
            run.attempts.append(
                {
                    "attempt": number,
                    "status": "queued",
                    "conclusion": None,
                    "run_started_at": when,
                    "updated_at": when,
                    "triggering_actor": actor,
                }
            )
            return number

    def add_approval(
        self, full_name: str, run_id: int, environment: str, state: str, *, user: str = "reviewer"
    ) -> None:
        """Record a review (``approved`` / ``rejected``) of a run's environment."""
        with self.state_lock:
            repo = self.repo(full_name)
            base, web = self._bases("")
            from deploy_fetcher.emulators.github._state import user_json

            repo.runs[run_id].approvals.append(
                {
                    "state": state,
                    "comment": f"{state} by {user}",
                    "environments": [
                        {
                            "id": int(hashlib.sha256(environment.encode()).hexdigest()[:6], 16),
                            "name": environment,
                            "url": f"{base}/repos/{repo.full_name}/environments/{environment}",
                            "html_url": f"{web}/{repo.full_name}/deployments/activity_log?environments_filter={environment}",
                        }
                    ],
                    "user": user_json(user, base),
                }
            )

    def add_deployment(
        self,
        full_name: str,
        environment: str,
        *,
        sha: str,
        ref: str = "main",
        at: datetime | None = None,
        creator: str = "deploy-bot",
        run: Run | None = None,
        task: str = "deploy",
        payload: dict[str, Any] | str | None = None,
        statuses: list[tuple[str, datetime]] | None = None,
    ) -> Deployment:
        """Create a deployment (by a tool, or by Actions when ``run`` is given), with statuses."""
        with self.state_lock:
            repo = self.add_repo(full_name)
            dep = Deployment(
                self.next_id(),
                sha,
                ref,
                environment,
                "github-actions[bot]" if run is not None else creator,
                at or self.now(),
                task=task,
                payload=payload if payload is not None else {},
                run_id=run.id if run is not None else None,
            )
            repo.deployments[dep.id] = dep
            for state, when in statuses or []:
                self.add_status(full_name, dep.id, state, at=when)
            return dep

    def add_status(
        self, full_name: str, deployment_id: int, state: str, *, at: datetime | None = None
    ) -> DeploymentStatus:
        """Add a status to a deployment (Actions deployments link their run in ``log_url``)."""
        with self.state_lock:
            repo = self.repo(full_name)
            dep = repo.deployments[deployment_id]
            _, web = self._bases("")
            if dep.run_id is not None:
                log_url = f"{web}/{repo.full_name}/actions/runs/{dep.run_id}/job/{dep.id + 7}"
                creator = "github-actions[bot]"
            else:
                log_url = f"https://deploy.example.com/{repo.name}/{dep.id}"
                creator = dep.creator
            status = DeploymentStatus(
                self.next_id(),
                state,
                at or self.now(),
                creator,
                description=f"Deployment {state}",
                log_url=log_url,
                environment_url=f"https://{dep.environment}.{repo.name}.example.com",
            )
            dep.statuses.append(status)
            return status

    def install_app(
        self, app_id: int, public_key_pem: str, installation_id: int, repos: list[str]
    ) -> None:
        """Register a GitHub App (its public key) and an installation covering ``repos``."""
        with self.state_lock:
            app = self.apps.setdefault(app_id, _App(app_id, public_key_pem))
            app.installations[installation_id] = [r.lower() for r in repos]

    def add_token(self, token: str, repos: list[str] | None = None) -> None:
        """Accept another personal token (limited to ``repos`` when given)."""
        with self.state_lock:
            self.tokens[token] = frozenset(r.lower() for r in repos) if repos is not None else None

    # -- accounting --------------------------------------------------------------------------------
    def charged(self, pattern: str = ".*", resource: str | None = None) -> list[ChargedRequest]:
        """Requests that cost quota, whose path matches ``pattern``."""
        with self._lock:
            return [
                c
                for c in self.charged_log
                if re.search(pattern, c.path) and (resource is None or c.resource == resource)
            ]

    def reset_log(self) -> None:
        """Forget the request log and the charged log."""
        with self._lock:
            super().reset_log()
            self.charged_log.clear()

    # -- routing -----------------------------------------------------------------------------------
    def _register_routes(self) -> None:
        api = self._api
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/repos/{owner}/{repo}", self._get_repo),
            ("GET", "/repos/{owner}/{repo}/deployments", self._list_deployments),
            ("GET", "/repos/{owner}/{repo}/deployments/{id}", self._get_deployment),
            ("GET", "/repos/{owner}/{repo}/deployments/{id}/statuses", self._list_statuses),
            ("GET", "/repos/{owner}/{repo}/actions/workflows", self._list_workflows),
            ("GET", "/repos/{owner}/{repo}/actions/workflows/{workflow}/runs", self._list_runs),
            ("GET", "/repos/{owner}/{repo}/actions/runs", self._list_runs),
            ("GET", "/repos/{owner}/{repo}/actions/runs/{id}", self._get_run),
            ("GET", "/repos/{owner}/{repo}/actions/runs/{id}/attempts/{attempt}", self._get_run),
            ("GET", "/repos/{owner}/{repo}/actions/runs/{id}/approvals", self._approvals),
            ("GET", "/repos/{owner}/{repo}/actions/runs/{id}/jobs", self._jobs),
            ("GET", "/repos/{owner}/{repo}/actions/runs/{id}/attempts/{attempt}/jobs", self._jobs),
            ("GET", "/repos/{owner}/{repo}/contents/{path:path}", self._contents),
            ("GET", "/orgs/{owner}/repos", self._owner_repos),
            ("GET", "/users/{owner}/repos", self._owner_repos),
            ("GET", "/installation/repositories", self._installation_repos),
        ]
        for prefix in _PREFIXES:
            for method, pattern, handler in routes:
                self.route(method, prefix + pattern, api(handler))
            self.route("GET", prefix + "/rate_limit", self._rate_limit)
            self.route("POST", prefix + "/app/installations/{id}/access_tokens", self._access_token)
        for path in ("/graphql", "/api/graphql"):
            self.route("POST", path, self._api(self._graphql, resource="graphql"))

    def not_found(self, _request: Request) -> Response:
        """GitHub's 404 body."""
        return _error(404, "Not Found")

    def _bases(self, prefix: str) -> tuple[str, str]:
        return self.url(prefix), self.url("")

    @staticmethod
    def _prefix(request: Request) -> str:
        return "/api/v3" if request.path.startswith("/api/v3/") else ""

    # -- auth, quota, etags ------------------------------------------------------------------------
    def _authenticate(self, request: Request) -> _Credential | Response:
        header = request.header("authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not value:
            return _error(401, "Requires authentication")
        if value in self.tokens:
            return _Credential(
                f"token:{hashlib.sha256(value.encode()).hexdigest()[:8]}", self.tokens[value]
            )
        grant = self.installation_tokens.get(value)
        if grant is not None:
            installation, expires = grant
            if expires <= self.now():
                return _error(401, "Bad credentials")
            for app in self.apps.values():
                if installation in app.installations:
                    return _Credential(
                        f"installation:{installation}", frozenset(app.installations[installation])
                    )
        return _error(401, "Bad credentials")

    def _quota(self, credential: str, resource: str) -> _Quota:
        key = (credential, resource)
        quota = self._quotas.get(key)
        now = self.now()
        if quota is None or (quota.reset is not None and quota.reset <= now):
            quota = _Quota(self.rate_limit, 0, now + timedelta(seconds=_WINDOW))
            self._quotas[key] = quota
        return quota

    def _secondary(self, credential: str, request: Request) -> Response | None:
        """GitHub's secondary limit on REST points per credential and minute, when enforced.

        A ``GET`` costs one point and a write five, whatever the answer (a ``304`` too); over the
        limit, the 403 GitHub sends, with ``retry-after``.
        """
        if self.secondary_points_per_minute is None or request.path.endswith("/graphql"):
            return None
        now = time.monotonic()
        points = 1 if request.method in {"GET", "HEAD", "OPTIONS"} else 5
        window = self._points.setdefault(credential, collections.deque())
        while window and window[0][0] <= now - 60:
            window.popleft()
        if sum(p for _, p in window) + points > self.secondary_points_per_minute:
            self.secondary_refusals += 1
            return _error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                "try again.",
                {"retry-after": "60"},
            )
        window.append((now, points))
        return None

    def _limit_headers(self, quota: _Quota, resource: str) -> dict[str, str]:
        if not self.rate_limit_headers:
            return {}
        assert quota.reset is not None  # noqa: S101 - set on creation
        return {
            "x-ratelimit-limit": str(quota.limit),
            "x-ratelimit-remaining": str(max(0, quota.limit - quota.used)),
            "x-ratelimit-used": str(quota.used),
            "x-ratelimit-reset": str(int(quota.reset.timestamp())),
            "x-ratelimit-resource": resource,
        }

    def _api(
        self, handler: Handler, *, resource: str = "core"
    ) -> Callable[[Request, dict[str, str]], Response]:
        def wrapped(request: Request, params: dict[str, str]) -> Response:
            with self.state_lock:
                credential = self._authenticate(request)
                if isinstance(credential, Response):
                    return credential
                refused = self._secondary(credential.key, request)
                if refused is not None:
                    return refused
                quota = self._quota(credential.key, resource)
                if self.rate_limit_headers and quota.used >= quota.limit:
                    return _error(
                        403,
                        f"API rate limit exceeded for {credential.key.split(':')[0]}.",
                        self._limit_headers(quota, resource),
                    )
                response = self._guarded(handler, request, params, credential)
                charged = True
                if request.method == "GET" and response.status == 200:
                    etag = 'W/"' + hashlib.sha256(response.body).hexdigest()[:40] + '"'
                    response.headers["ETag"] = etag
                    sent = request.header("if-none-match") or ""
                    if etag in (tag.strip() for tag in sent.split(",")):
                        response = Response(304, b"", {"ETag": etag})
                        charged = False
                if charged:
                    quota.used += 1
                    with self._lock:
                        self.charged_log.append(
                            ChargedRequest(request.method, request.path, resource, credential.key)
                        )
                response.headers.update(self._limit_headers(quota, resource))
                return response

        return wrapped

    def _guarded(
        self, handler: Handler, request: Request, params: dict[str, str], credential: _Credential
    ) -> Response:
        owner, name = params.get("owner"), params.get("repo")
        if owner and name:
            repo = self.repos.get(f"{owner}/{name}".lower())
            if (
                repo is None
                or repo.deleted
                or (credential.repos is not None and repo.full_name.lower() not in credential.repos)
            ):
                return _error(404, "Not Found")
            rest = request.path.split(f"/{name}", 1)[-1]
            for forbidden_repo, pattern in self.forbidden:
                if forbidden_repo == repo.full_name.lower() and pattern.search(rest or "/"):
                    return _error(403, "Resource not accessible by personal access token")
        return handler(request, params, credential)

    # -- pagination --------------------------------------------------------------------------------
    def _page(self, request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        try:
            per_page = max(1, min(100, int(request.arg("per_page", "30") or 30)))
            page = max(1, int(request.arg("page", "1") or 1))
        except ValueError:
            per_page, page = 30, 1
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def link(number: int, rel: str) -> str:
            query = {k: v[0] for k, v in request.query.items() if k != "page"}
            query["page"] = str(number)
            return f'<{self.url(request.path)}?{urlencode(sorted(query.items()))}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # -- handlers ----------------------------------------------------------------------------------
    def _repo_of(self, params: dict[str, str]) -> Repo:
        return self.repos[f"{params['owner']}/{params['repo']}".lower()]

    def _get_repo(self, request: Request, params: dict[str, str], _c: _Credential) -> Response:
        base, web = self._bases(self._prefix(request))
        return json_response(self._repo_of(params).to_json(base, web))

    def _list_deployments(
        self, request: Request, params: dict[str, str], _c: _Credential
    ) -> Response:
        repo = self._repo_of(params)
        base, _ = self._bases(self._prefix(request))
        items = sorted(repo.deployments.values(), key=lambda d: (d.created_at, d.id), reverse=True)
        for key in ("sha", "ref", "task", "environment"):
            wanted = request.arg(key)
            if wanted:
                items = [d for d in items if str(getattr(d, key)) == wanted]
        chunk, headers = self._page(request, items)
        return json_response([d.to_json(repo, base) for d in chunk], headers=headers)

    def _deployment(self, params: dict[str, str]) -> Deployment | None:
        repo = self._repo_of(params)
        return repo.deployments.get(int(params["id"])) if params["id"].isdigit() else None

    def _get_deployment(
        self, request: Request, params: dict[str, str], _c: _Credential
    ) -> Response:
        dep = self._deployment(params)
        if dep is None:
            return _error(404, "Not Found")
        base, _ = self._bases(self._prefix(request))
        return json_response(dep.to_json(self._repo_of(params), base))

    def _list_statuses(self, request: Request, params: dict[str, str], _c: _Credential) -> Response:
        dep = self._deployment(params)
        if dep is None:
            return _error(404, "Not Found")
        repo = self._repo_of(params)
        base, _ = self._bases(self._prefix(request))
        items = sorted(dep.statuses, key=lambda s: (s.created_at, s.id), reverse=True)
        chunk, headers = self._page(request, items)
        return json_response([dep.status_json(s, repo, base) for s in chunk], headers=headers)

    def _list_workflows(
        self, request: Request, params: dict[str, str], _c: _Credential
    ) -> Response:
        repo = self._repo_of(params)
        base, web = self._bases(self._prefix(request))
        items = sorted(repo.workflows.values(), key=lambda w: w.id)
        chunk, headers = self._page(request, items)
        body = {"total_count": len(items), "workflows": [w.to_json(repo, base, web) for w in chunk]}
        return json_response(body, headers=headers)

    def _list_runs(self, request: Request, params: dict[str, str], _c: _Credential) -> Response:
        repo = self._repo_of(params)
        base, web = self._bases(self._prefix(request))
        runs = list(repo.runs.values())
        if "workflow" in params:
            wf = repo.workflow_by(params["workflow"])
            if wf is None:
                return _error(404, "Not Found")
            runs = [r for r in runs if r.workflow_id == wf.id]
        filtered = False
        if request.arg("branch"):
            runs = [r for r in runs if r.head_branch == request.arg("branch")]
            filtered = True
        if request.arg("event"):
            runs = [r for r in runs if r.event == request.arg("event")]
            filtered = True
        status = request.arg("status")
        if status:
            runs = [r for r in runs if status in (r.current["status"], r.current["conclusion"])]
            filtered = True
        created = request.arg("created")
        if created:
            try:
                low, high, low_open, high_open = _parse_created(created)
            except ValueError:
                return _error(422, f"Invalid created filter: {created}")
            runs = [
                r
                for r in runs
                if (low is None or (r.created_at > low if low_open else r.created_at >= low))
                and (high is None or (r.created_at < high if high_open else r.created_at <= high))
            ]
            filtered = True
        runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        total = len(runs)
        if filtered:
            runs = runs[:_LIST_CAP]
        chunk, headers = self._page(request, runs)
        body = {
            "total_count": total,
            "workflow_runs": [
                r.to_json(repo, repo.workflows[r.workflow_id], base, web) for r in chunk
            ],
        }
        return json_response(body, headers=headers)

    def _get_run(self, request: Request, params: dict[str, str], _c: _Credential) -> Response:
        repo = self._repo_of(params)
        run = repo.runs.get(int(params["id"])) if params["id"].isdigit() else None
        if run is None:
            return _error(404, "Not Found")
        attempt = int(params["attempt"]) if params.get("attempt", "").isdigit() else None
        if attempt is not None and not 1 <= attempt <= len(run.attempts):
            return _error(404, "Not Found")
        base, web = self._bases(self._prefix(request))
        return json_response(run.to_json(repo, repo.workflows[run.workflow_id], base, web, attempt))

    def _jobs(self, request: Request, params: dict[str, str], _c: _Credential) -> Response:
        repo = self._repo_of(params)
        run = repo.runs.get(int(params["id"])) if params["id"].isdigit() else None
        if run is None:
            return _error(404, "Not Found")
        attempt = int(params["attempt"]) if params.get("attempt", "").isdigit() else None
        if attempt is not None and not 1 <= attempt <= len(run.attempts):
            return _error(404, "Not Found")
        base, web = self._bases(self._prefix(request))
        jobs = run.jobs_json(repo, repo.workflows[run.workflow_id], base, web, attempt)
        return json_response({"total_count": len(jobs), "jobs": jobs})

    def _approvals(self, _request: Request, params: dict[str, str], _c: _Credential) -> Response:
        repo = self._repo_of(params)
        run = repo.runs.get(int(params["id"])) if params["id"].isdigit() else None
        if run is None:
            return _error(404, "Not Found")
        return json_response(list(reversed(run.approvals)))

    def _contents(self, request: Request, params: dict[str, str], _c: _Credential) -> Response:
        import base64

        repo = self._repo_of(params)
        path = params["path"]
        text = repo.file_at(path, request.arg("ref"))
        if text is None:
            return _error(404, "Not Found")
        raw = text.encode()
        blob = hashlib.sha1(b"blob %d\0" % len(raw) + raw, usedforsecurity=False).hexdigest()
        encoded = base64.b64encode(raw).decode()
        base, web = self._bases(self._prefix(request))
        ref = request.arg("ref") or repo.default_branch
        url = f"{base}/repos/{repo.full_name}/contents/{path}?ref={ref}"
        return json_response(
            {
                "type": "file",
                "encoding": "base64",
                "size": len(raw),
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "content": "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60))
                + "\n",
                "sha": blob,
                "url": url,
                "git_url": f"{base}/repos/{repo.full_name}/git/blobs/{blob}",
                "html_url": f"{web}/{repo.full_name}/blob/{ref}/{path}",
                "download_url": None,
                "_links": {
                    "self": url,
                    "git": f"{base}/repos/{repo.full_name}/git/blobs/{blob}",
                    "html": f"{web}/{repo.full_name}/blob/{ref}/{path}",
                },
            }
        )

    def _visible(self, credential: _Credential) -> list[Repo]:
        return [
            r
            for r in sorted(self.repos.values(), key=lambda r: r.full_name.lower())
            if not r.deleted
            and (credential.repos is None or r.full_name.lower() in credential.repos)
        ]

    def _owner_repos(
        self, request: Request, params: dict[str, str], credential: _Credential
    ) -> Response:
        owner = params["owner"].lower()
        org = request.path.endswith(f"/orgs/{params['owner']}/repos")
        repos = [
            r
            for r in self._visible(credential)
            if r.owner.lower() == owner and r.owner_is_org == org
        ]
        if not repos and not any(
            r.owner.lower() == owner and r.owner_is_org == org for r in self.repos.values()
        ):
            return _error(404, "Not Found")
        base, web = self._bases(self._prefix(request))
        chunk, headers = self._page(request, repos)
        return json_response([r.to_json(base, web) for r in chunk], headers=headers)

    def _installation_repos(
        self, request: Request, _params: dict[str, str], credential: _Credential
    ) -> Response:
        if not credential.key.startswith("installation:"):
            return _error(403, "This endpoint requires an installation token")
        repos = self._visible(credential)
        base, web = self._bases(self._prefix(request))
        chunk, headers = self._page(request, repos)
        body = {"total_count": len(repos), "repositories": [r.to_json(base, web) for r in chunk]}
        return json_response(body, headers=headers)

    def _rate_limit(self, request: Request, _params: dict[str, str]) -> Response:
        with self.state_lock:
            credential = self._authenticate(request)
            if isinstance(credential, Response):
                return credential
            resources = {}
            for resource in ("core", "graphql"):
                quota = self._quota(credential.key, resource)
                assert quota.reset is not None  # noqa: S101
                resources[resource] = {
                    "limit": quota.limit,
                    "used": quota.used,
                    "remaining": max(0, quota.limit - quota.used),
                    "reset": int(quota.reset.timestamp()),
                }
            return json_response({"resources": resources, "rate": resources["core"]})

    def _access_token(self, request: Request, params: dict[str, str]) -> Response:
        header = request.header("authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            return _error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(value, options={"verify_signature": False})
            app = self.apps.get(int(claims.get("iss", 0)))
            if app is None:
                return _error(401, "Integration not found")
            jwt.decode(
                value,
                app.public_key,
                algorithms=["RS256"],
                leeway=60,
                options={"require": ["exp", "iat", "iss"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            return _error(401, f"A JSON web token could not be decoded ({type(exc).__name__})")
        installation = int(params["id"]) if params["id"].isdigit() else -1
        if installation not in app.installations:
            return _error(404, "Not Found")
        with self.state_lock:
            token = "ghs_" + secrets.token_hex(18)
            expires = self.now() + self.token_ttl
            self.installation_tokens[token] = (installation, expires)
            self.tokens_issued += 1
        return json_response(
            {
                "token": token,
                "expires_at": iso(expires),
                "permissions": {
                    "actions": "read",
                    "deployments": "read",
                    "contents": "read",
                    "metadata": "read",
                },
                "repository_selection": "selected",
            },
            201,
        )

    def _graphql(
        self, request: Request, _params: dict[str, str], credential: _Credential
    ) -> Response:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _error(400, "Problems parsing JSON")
        query = str(body.get("query", ""))
        variables = body.get("variables") or {}
        if _OBJECT_FIELD.search(query) and "repository(" in query:
            return self._graphql_objects(query, variables, credential)
        ids = variables.get("ids")
        if (
            not _NODES_QUERY.search(query)
            or "on Deployment" not in query
            or not isinstance(ids, list)
        ):
            return json_response(
                {
                    "errors": [
                        {
                            "message": "this emulator answers only nodes(ids:) on Deployment "
                            "and repository { object(expression:) } queries"
                        }
                    ]
                }
            )
        by_node = {
            d.node_id: d
            for r in self.repos.values()
            if not r.deleted
            for d in r.deployments.values()
        }
        nodes: list[Any] = []
        errors: list[dict[str, Any]] = []
        for index, ident in enumerate(ids):
            dep = by_node.get(ident)
            if dep is None:
                nodes.append(None)
                errors.append(
                    {
                        "type": "NOT_FOUND",
                        "path": ["nodes", index],
                        "message": f"Could not resolve to a node with the global id of '{ident}'.",
                    }
                )
                continue
            ordered = sorted(dep.statuses, key=lambda s: (s.created_at, s.id))
            nodes.append(
                {
                    "databaseId": dep.id,
                    "statuses": {
                        "pageInfo": {"hasNextPage": len(ordered) > 100},
                        "nodes": [dep.status_graphql(s) for s in ordered[:100]],
                    },
                }
            )
        out: dict[str, Any] = {"data": {"nodes": nodes}}
        if errors:
            out["errors"] = errors
        return json_response(out)

    def _graphql_objects(
        self, query: str, variables: dict[str, Any], credential: _Credential
    ) -> Response:
        """``repository(owner:, name:) { fN: object(expression: "<sha>:<path>") { ... on Blob { text } } }``."""
        owner, name = variables.get("owner"), variables.get("name")
        repo = self.repos.get(f"{owner}/{name}".lower())
        visible = repo is not None and not repo.deleted
        if repo is not None and credential.repos is not None:
            visible = visible and repo.full_name.lower() in credential.repos
        if repo is None or not visible:
            return json_response(
                {
                    "data": {"repository": None},
                    "errors": [
                        {
                            "type": "NOT_FOUND",
                            "path": ["repository"],
                            "message": f"Could not resolve to a Repository with the name '{owner}/{name}'.",
                        }
                    ],
                }
            )
        found: dict[str, Any] = {}
        for alias, variable in _OBJECT_FIELD.findall(query):
            expression = str(variables.get(variable, ""))
            ref, _, path = expression.partition(":")
            text = repo.file_at(path, ref) if path else None
            found[alias] = {"text": text} if text is not None else None
        return json_response({"data": {"repository": found}})

"""A GitLab REST v4 emulator: the endpoints the adapter reads, with GitLab's shapes and habits.

Served under ``{prefix}/api/v4`` (an empty prefix for gitlab.com-style URLs, ``/gitlab`` for a
self-managed instance behind a path). What it reproduces because clients depend on it:

* auth: ``PRIVATE-TOKEN`` or ``Authorization: Bearer``; ``401 {"message": "401 Unauthorized"}``;
  a token without ``read_api`` gets ``403 insufficient_scope``;
* offset pagination: ``per_page`` (default 20, at most 100), ``page``, and the ``x-page``,
  ``x-per-page``, ``x-next-page``, ``x-prev-page``, ``x-total``, ``x-total-pages`` and ``Link``
  headers, links built from the ``Host`` the client used;
* the deployments finder's rules: ``updated_after``/``updated_before`` (inclusive) only with
  ``order_by=updated_at`` (else 400), ``finished_*`` only with ``order_by=finished_at`` and
  ``status=success``, ordering by ``updated_at`` with ``id desc`` as tie-breaker;
* rate limits per token and real minute: ``RateLimit-Limit``, ``-Observed``, ``-Remaining``,
  ``-Reset``, ``-ResetTime`` on every answer, ``429`` + ``Retry-After`` past the limit;
* time: the world's state is derived from the emulator clock (see :mod:`.model`), which
  :meth:`advance` moves, creating new pipelines as the scenario says.

Requests are logged by the base class; :meth:`GitLabEmulator.charged` counts those GitLab would
count against the rate limit (every authenticated API request).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any, Final
from urllib.parse import unquote, urlencode

from deploy_fetcher.emulators._server import (
    EmulatorServer,
    LoggedRequest,
    Request,
    Response,
    json_response,
)
from deploy_fetcher.emulators.gitlab.model import (
    DEPLOYMENT_STATUSES,
    Deployment,
    Pipeline,
    Project,
    World,
    ts,
)
from deploy_fetcher.emulators.gitlab.scenario import (
    Gate,
    Outcome,
    Scenario,
    cancel,
    decide,
    plan_pipeline,
)
from deploy_fetcher.model import parse_timestamp

__all__ = ["GitLabEmulator"]

API: Final = "/api/v4"
_DEPLOYMENT_ORDER: Final = frozenset(
    {"id", "iid", "created_at", "updated_at", "finished_at", "ref"}
)
_PIPELINE_ORDER: Final = frozenset({"id", "status", "ref", "updated_at", "user_id"})
_PIPELINE_STATUSES: Final = frozenset(
    {
        "created",
        "waiting_for_resource",
        "preparing",
        "pending",
        "running",
        "success",
        "failed",
        "canceled",
        "canceling",
        "skipped",
        "manual",
        "scheduled",
    }
)

Handler = Callable[[Request, dict[str, str]], Response]


class _BadRequest(Exception):
    def __init__(self, body: dict[str, str]) -> None:
        super().__init__(str(body))
        self.body = body


class GitLabEmulator(EmulatorServer):
    """An emulated GitLab instance on 127.0.0.1."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = "emulator-token",  # noqa: S107 - the emulator's public demo token
        scenario: str | Scenario = "demo",
        seed: int = 0,
        start: datetime | None = None,
        prefix: str = "",
        rate_limit: int = 2000,
        scopes: Sequence[str] = ("api", "read_api"),
    ) -> None:
        super().__init__(host, port)
        self.token = token
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.rate_limit = rate_limit
        self.scopes = set(scopes)
        self.origin = (start or datetime.now(UTC)).astimezone(UTC)
        self.offset = timedelta(0)
        self.rng = random.Random(seed)
        self.scenario = (
            scenario if isinstance(scenario, Scenario) else Scenario.named(scenario, seed)
        )
        self.world = World()
        self._world_lock = threading.RLock()
        self._window: tuple[int, dict[str, int]] = (0, {})
        with self._world_lock:
            self.scenario.build(self.world, self.origin, self.rng)
        base = self.prefix + API
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/user", self._user),
            ("GET", "/version", self._version),
            ("GET", "/projects/{project}", self._project),
            ("GET", "/projects/{project}/deployments", self._deployments),
            ("GET", "/projects/{project}/deployments/{deployment}", self._deployment),
            ("POST", "/projects/{project}/deployments/{deployment}/approval", self._approval),
            ("GET", "/projects/{project}/pipelines", self._pipelines),
            ("GET", "/projects/{project}/pipelines/{pipeline}", self._pipeline),
            ("GET", "/projects/{project}/pipelines/{pipeline}/jobs", self._jobs),
            ("GET", "/groups/{group}", self._group),
            ("GET", "/groups/{group}/projects", self._group_projects),
        ]
        for method, pattern, handler in routes:
            self.route(method, base + pattern, self._api(handler))

    def start(self) -> str:
        """Serve in a background thread; returns the base URL."""
        url = super().start()
        if self._server is not None:
            # Headers and body leave in two writes; with Nagle on, each answer waits for the
            # client's delayed ACK (about 40 ms) and request-count benchmarks would time that.
            self._server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        return url

    # -- time -----------------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """The emulator's clock."""
        return self.origin + self.offset

    def server_time(self) -> datetime:
        """The ``Date`` of every answer: the emulator's clock."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock; pipelines the scenario plans in that time are created."""
        with self._world_lock:
            self.offset += timedelta(seconds=seconds)
            self.scenario.advance(self.world, self.now, self.rng)

    # -- helpers for tests and demos --------------------------------------------------------------------
    def add_project(self, path: str) -> Project:
        """Create an empty project (its groups too)."""
        with self._world_lock:
            return self.world.add_project(path, self.now - timedelta(days=30))

    def add_pipeline(
        self,
        project: str,
        *,
        environments: Sequence[str] = ("staging", "production"),
        outcomes: dict[str, Outcome] | None = None,
        gates: dict[str, Gate] | None = None,
        ref: str = "main",
        tag: bool = False,
        source: str = "push",
        user: str | None = None,
        deploy_job: bool = False,
        ago: float = 0.0,
    ) -> Pipeline:
        """Start a pipeline ``ago`` seconds before now, deploying to ``environments`` in order.

        Its jobs and deployments progress as the clock advances; ``gates`` put an approval in front
        of an environment (``"manual"``: until :meth:`approve` / :meth:`reject`).
        """
        with self._world_lock:
            found = self.world.project(project) or self.world.add_project(
                project, self.now - timedelta(days=30)
            )
            return plan_pipeline(
                self.world,
                found,
                self.now - timedelta(seconds=ago),
                self.rng,
                ref=ref,
                tag=tag,
                source=source,
                user=user,
                environments=environments,
                outcomes=outcomes,
                gates=gates,
                deploy_job=deploy_job,
            )

    def deployments_of(self, pipeline: Pipeline) -> dict[str, Deployment]:
        """Environment name → the pipeline's deployment there."""
        with self._world_lock:
            return {
                d.environment.name: d
                for d in pipeline.project.deployments
                if d.job is not None and d.job.pipeline is pipeline
            }

    def approve(self, deployment: Deployment | int, user: str = "erin") -> None:
        """Approve a blocked deployment now; its job is enqueued."""
        self._decide(deployment, user, "approved")

    def reject(self, deployment: Deployment | int, user: str = "erin") -> None:
        """Reject a blocked deployment now; its job fails with ``deployment_rejected``."""
        self._decide(deployment, user, "rejected")

    def cancel(self, deployment: Deployment | int) -> None:
        """Cancel a deployment's job now."""
        with self._world_lock:
            cancel(self._find(deployment), self.now)

    def set_forbidden(self, project: str, forbidden: bool = True) -> None:
        """Make a project answer 403 (visible but not readable by the token)."""
        with self._world_lock:
            found = self.world.project(project)
            if found is None:
                raise KeyError(project)
            found.forbidden = forbidden

    def charged(self) -> list[LoggedRequest]:
        """Requests GitLab counts against the rate limit: authenticated API calls."""
        return [r for r in self.requests_to("^" + self.prefix + API + "/") if r.status != 401]

    def _find(self, deployment: Deployment | int) -> Deployment:
        if isinstance(deployment, Deployment):
            return deployment
        found = self.world.deployments.get(deployment)
        if found is None:
            raise KeyError(deployment)
        return found

    def _decide(self, deployment: Deployment | int, user: str, status: Any) -> None:
        with self._world_lock:
            decide(
                self.world,
                self._find(deployment),
                approver=user,
                status=status,
                at=self.now,
                rng=self.rng,
            )

    # -- the API wrapper: auth, scopes, rate limit ------------------------------------------------------
    def _api(self, handler: Handler) -> Handler:
        def wrapped(request: Request, params: dict[str, str]) -> Response:
            token = request.header("private-token")
            bearer = request.header("authorization") or ""
            if token is None and bearer.lower().startswith("bearer "):
                token = bearer[7:].strip()
            if token != self.token:
                return json_response({"message": "401 Unauthorized"}, 401)
            limited = self._count(token)
            if limited is not None:
                return limited
            if not (self.scopes & {"api", "read_api"}) and handler != self._user:
                response = json_response(
                    {
                        "error": "insufficient_scope",
                        "error_description": "The request requires higher privileges than "
                        "provided by the access token.",
                        "scope": "api read_api",
                    },
                    403,
                )
            else:
                try:
                    with self._world_lock:
                        response = handler(request, params)
                except _BadRequest as exc:
                    response = json_response(exc.body, 400)
            response.headers.update(self._rate_headers(token))
            return response

        return wrapped

    def _count(self, token: str) -> Response | None:
        window = int(time.time() // 60)
        with self._lock:
            current, counts = self._window
            if current != window:
                counts = {}
                self._window = (window, counts)
            counts[token] = counts.get(token, 0) + 1
            over = counts[token] > self.rate_limit
        if over:
            reset = (window + 1) * 60  # Retry-After is relative: no clock to agree with
            headers = {
                **self._rate_headers(token),
                "Retry-After": str(max(math.ceil(reset - time.time()), 1)),
                "Content-Type": "text/plain",
            }
            return Response(429, b"Retry later", headers)
        return None

    def _rate_headers(self, token: str) -> dict[str, str]:
        window, counts = self._window
        used = counts.get(token, 0)
        # The window is a real minute, but a real server states its reset on the clock of its
        # ``Date``: the emulator's clock, which stands still or lags while a test holds it. A reset
        # on the wall clock read against a ``Date`` 25 minutes behind told clients to wait 25
        # minutes for a one-minute window.
        reset = round(self.now.timestamp() + (window + 1) * 60 - time.time())
        return {
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(self.rate_limit),
            "RateLimit-Observed": str(used),
            "RateLimit-Remaining": str(max(self.rate_limit - used, 0)),
            "RateLimit-Reset": str(reset),
            "RateLimit-ResetTime": formatdate(reset, usegmt=True),
        }

    # -- shapes and paging ------------------------------------------------------------------------------
    def _base(self, request: Request) -> str:
        host = request.header("host") or f"{self.host}:{self.port}"
        return f"http://{host}{self.prefix}"

    def not_found(self, _request: Request) -> Response:
        """GitLab's answer to an unknown route."""
        return json_response({"error": "404 Not Found"}, 404)

    def _page(self, request: Request, items: list[Any], render: Callable[[Any], Any]) -> Response:
        per_page = min(max(_int_arg(request, "per_page", 20), 1), 100)
        page = max(_int_arg(request, "page", 1), 1)
        total = len(items)
        pages = max(math.ceil(total / per_page), 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-total": str(total),
            "x-total-pages": str(pages),
            "x-next-page": str(page + 1) if page < pages else "",
            "x-prev-page": str(page - 1) if page > 1 else "",
        }
        base = self._base(request).removesuffix(self.prefix) + request.path
        query = {k: v[0] for k, v in request.query.items() if k != "page"}
        query["per_page"] = str(per_page)

        def link(number: int, rel: str) -> str:
            return f'<{base}?{urlencode({**query, "page": str(number)})}>; rel="{rel}"'

        links = []
        if page > 1:
            links.append(link(page - 1, "prev"))
        if page < pages:
            links.append(link(page + 1, "next"))
        links += [link(1, "first"), link(pages, "last")]
        headers["Link"] = ", ".join(links)
        return json_response([render(item) for item in chunk], headers=headers)

    def _project_or_404(self, params: dict[str, str]) -> Project | Response:
        project = self.world.project(unquote(params["project"]))
        if project is None or project.created_at > self.now:
            return json_response({"message": "404 Project Not Found"}, 404)
        if project.forbidden:
            return json_response({"message": "403 Forbidden"}, 403)
        return project

    # -- endpoints --------------------------------------------------------------------------------------
    def _user(self, request: Request, _params: dict[str, str]) -> Response:
        user = self.world.user("fetcher-bot")
        return json_response(
            {**user.json(self._base(request)), "bot": True, "created_at": ts(self.origin)}
        )

    def _version(self, _request: Request, _params: dict[str, str]) -> Response:
        return json_response({"version": "17.5.0-ee", "revision": "emulator", "enterprise": True})

    def _project(self, request: Request, params: dict[str, str]) -> Response:
        project = self._project_or_404(params)
        if isinstance(project, Response):
            return project
        return json_response(project.json(self._base(request)))

    def _deployments(self, request: Request, params: dict[str, str]) -> Response:
        project = self._project_or_404(params)
        if isinstance(project, Response):
            return project
        now = self.now
        order_by = request.arg("order_by", "id") or "id"
        sort = request.arg("sort", "asc") or "asc"
        status = request.arg("status")
        environment = request.arg("environment")
        if order_by not in _DEPLOYMENT_ORDER:
            raise _BadRequest({"error": "order_by does not have a valid value"})
        if sort not in {"asc", "desc"}:
            raise _BadRequest({"error": "sort does not have a valid value"})
        if status is not None and status not in DEPLOYMENT_STATUSES:
            raise _BadRequest({"error": "status does not have a valid value"})
        after = _time_arg(request, "updated_after")
        before = _time_arg(request, "updated_before")
        finished_after = _time_arg(request, "finished_after")
        finished_before = _time_arg(request, "finished_before")
        if (after or before) and order_by != "updated_at":
            raise _BadRequest(
                {"message": "400 Bad request - `updated_at` filter requires `updated_at` sort"}
            )
        if (finished_after or finished_before) and (
            order_by != "finished_at" or status != "success"
        ):
            raise _BadRequest(
                {
                    "message": "400 Bad request - `finished_at` filter requires `finished_at` sort "
                    "and `success` status"
                }
            )
        items = _filter_deployments(
            [d for d in project.deployments if d.visible(now)],
            now,
            environment=environment,
            status=status,
            updated=(after, before),
            finished=(finished_after, finished_before),
        )
        items = _sort_deployments(items, order_by, sort, now)
        base = self._base(request)
        return self._page(request, items, lambda d: d.json(now, base))

    def _deployment(self, request: Request, params: dict[str, str]) -> Response:
        project = self._project_or_404(params)
        if isinstance(project, Response):
            return project
        found = self._deployment_in(project, params["deployment"])
        if found is None:
            return json_response({"message": "404 Not found"}, 404)
        return json_response(found.json(self.now, self._base(request), detail=True))

    def _approval(self, request: Request, params: dict[str, str]) -> Response:
        project = self._project_or_404(params)
        if isinstance(project, Response):
            return project
        found = self._deployment_in(project, params["deployment"])
        if found is None:
            return json_response({"message": "404 Not found"}, 404)
        try:
            body = request.json() or {}
        except ValueError:
            body = {}
        status = body.get("status") or request.arg("status")
        if status not in {"approved", "rejected"}:
            raise _BadRequest({"error": "status does not have a valid value"})
        try:
            decide(
                self.world,
                found,
                approver=str(body.get("represented_as") or "erin"),
                status="approved" if status == "approved" else "rejected",
                at=self.now,
                rng=self.rng,
                comment=body.get("comment"),
            )
        except ValueError as exc:
            return json_response({"message": str(exc)}, 400)
        approval = found.approvals[-1]
        base = self._base(request)
        return json_response(
            {
                "user": approval.user.json(base),
                "status": approval.status,
                "created_at": ts(approval.at),
                "comment": approval.comment,
            },
            201,
        )

    def _pipelines(self, request: Request, params: dict[str, str]) -> Response:
        project = self._project_or_404(params)
        if isinstance(project, Response):
            return project
        now = self.now
        order_by = request.arg("order_by", "id") or "id"
        sort = request.arg("sort", "desc") or "desc"
        if order_by not in _PIPELINE_ORDER:
            raise _BadRequest({"error": "order_by does not have a valid value"})
        if sort not in {"asc", "desc"}:
            raise _BadRequest({"error": "sort does not have a valid value"})
        status = request.arg("status")
        if status is not None and status not in _PIPELINE_STATUSES:
            raise _BadRequest({"error": "status does not have a valid value"})
        after = _time_arg(request, "updated_after")
        before = _time_arg(request, "updated_before")
        items = [p for p in project.pipelines if p.visible(now)]
        for key in ("ref", "source", "sha"):
            value = request.arg(key)
            if value:
                items = [p for p in items if getattr(p, key) == value]
        if status:
            items = [p for p in items if p.status(now) == status]
        if after:
            items = [p for p in items if p.updated_at(now) >= after]
        if before:
            items = [p for p in items if p.updated_at(now) <= before]
        items = _sort_pipelines(items, order_by, sort, now)
        base = self._base(request)
        return self._page(request, items, lambda p: p.basic_json(now, base))

    def _pipeline(self, request: Request, params: dict[str, str]) -> Response:
        project = self._project_or_404(params)
        if isinstance(project, Response):
            return project
        pipeline = self._pipeline_in(project, params["pipeline"])
        if pipeline is None:
            return json_response({"message": "404 Not found"}, 404)
        return json_response(pipeline.detail_json(self.now, self._base(request)))

    def _jobs(self, request: Request, params: dict[str, str]) -> Response:
        project = self._project_or_404(params)
        if isinstance(project, Response):
            return project
        pipeline = self._pipeline_in(project, params["pipeline"])
        if pipeline is None:
            return json_response({"message": "404 Not found"}, 404)
        now = self.now
        jobs = sorted(pipeline.jobs, key=lambda j: -j.id)
        base = self._base(request)
        return self._page(request, jobs, lambda j: j.json(now, base))

    def _group(self, request: Request, params: dict[str, str]) -> Response:
        group = self.world.groups.get(unquote(params["group"]))
        if group is None:
            return json_response({"message": "404 Group Not Found"}, 404)
        return json_response(group.json(self._base(request)))

    def _group_projects(self, request: Request, params: dict[str, str]) -> Response:
        key = unquote(params["group"])
        group = self.world.groups.get(key) or next(
            (g for g in self.world.groups.values() if str(g.id) == key), None
        )
        if group is None:
            return json_response({"message": "404 Group Not Found"}, 404)
        subgroups = (request.arg("include_subgroups") or "false").lower() == "true"
        simple = (request.arg("simple") or "false").lower() == "true"
        items = sorted(
            (
                p
                for p in self.world.group_projects(group, subgroups=subgroups)
                if p.created_at <= self.now
            ),
            key=lambda p: p.id,
        )
        base = self._base(request)
        return self._page(request, items, lambda p: p.json(base, simple=simple))

    @staticmethod
    def _deployment_in(project: Project, key: str) -> Deployment | None:
        return next((d for d in project.deployments if str(d.id) == key), None)

    @staticmethod
    def _pipeline_in(project: Project, key: str) -> Pipeline | None:
        return next((p for p in project.pipelines if str(p.id) == key), None)


def _int_arg(request: Request, name: str, default: int) -> int:
    value = request.arg(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadRequest({"error": f"{name} is invalid"}) from None


def _time_arg(request: Request, name: str) -> datetime | None:
    value = request.arg(name)
    if not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        raise _BadRequest({"error": f"{name} is invalid"}) from None


def _sort_deployments(
    items: list[Deployment], order_by: str, sort: str, now: datetime
) -> list[Deployment]:
    """The deployments finder's ordering (``updated_at`` gets ``id desc`` as tie-breaker)."""
    descending = sort == "desc"
    if order_by == "updated_at":
        ordered = sorted(items, key=lambda d: -d.id)
        ordered.sort(key=lambda d: d.updated_at(now), reverse=descending)
        return ordered
    if order_by == "finished_at":
        return sorted(
            items,
            key=lambda d: (d.job.finished_at(now) if d.job else None) or d.updated_at(now),
            reverse=descending,
        )
    if order_by == "ref":
        return sorted(items, key=lambda d: (d.ref, d.id), reverse=descending)
    return sorted(items, key=lambda d: d.id, reverse=descending)


def _filter_deployments(
    items: list[Deployment],
    now: datetime,
    *,
    environment: str | None,
    status: str | None,
    updated: tuple[datetime | None, datetime | None],
    finished: tuple[datetime | None, datetime | None],
) -> list[Deployment]:
    """The deployments finder's filters (time bounds inclusive, as ``UpdatedAtFilterable``)."""
    if environment:
        items = [d for d in items if d.environment.name == environment]
    if status:
        items = [d for d in items if d.status(now) == status]
    low, high = updated
    items = [
        d
        for d in items
        if (low is None or d.updated_at(now) >= low) and (high is None or d.updated_at(now) <= high)
    ]
    low, high = finished
    if low or high:
        ends = {d.id: d.job.finished_at(now) if d.job else None for d in items}
        items = [
            d
            for d in items
            if (end := ends[d.id]) is not None
            and (low is None or end >= low)
            and (high is None or end <= high)
        ]
    return items


def _sort_pipelines(
    items: list[Pipeline], order_by: str, sort: str, now: datetime
) -> list[Pipeline]:
    """The pipelines finder's ordering (``id`` as tie-breaker in the sort's direction)."""
    descending = sort == "desc"
    if order_by == "updated_at":
        return sorted(items, key=lambda p: (p.updated_at(now), p.id), reverse=descending)
    if order_by == "status":
        return sorted(items, key=lambda p: (p.status(now), p.id), reverse=descending)
    if order_by == "ref":
        return sorted(items, key=lambda p: (p.ref, p.id), reverse=descending)
    if order_by == "user_id":
        return sorted(items, key=lambda p: (p.user.id, p.id), reverse=descending)
    return sorted(items, key=lambda p: p.id, reverse=descending)

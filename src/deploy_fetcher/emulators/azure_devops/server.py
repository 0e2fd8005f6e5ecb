"""An Azure DevOps emulator: the REST API 7.1 shapes the adapter reads, served over real HTTP.

Organization endpoints live under ``/{org}/...`` and Release Management under ``/vsrm/{org}/...``
(standing in for ``vsrm.dev.azure.com``), so a client that sends release calls to the organization
host gets the 404 it would get for real. Like the service it

* wants ``api-version`` on every call (400 without it) and the ``-preview`` flag on preview resources;
* answers lists as ``{count, value}`` with ``x-ms-continuationtoken`` when more follows;
* takes a PAT as Basic auth (any user name) or the same token as Bearer; a request without
  credentials gets the 203 sign-in page, a wrong or expired token a 401 (or the 203 page, as some
  bad PATs do, when ``auth_failure = "203"``);
* meters requests in TSTUs over a sliding five minutes of emulator time: ``X-RateLimit-*`` headers
  once half the budget is used, 429 with ``Retry-After`` when it is spent;
* writes timestamps with seven fractional digits.

State is computed from the scenario's plans at the emulator's clock (see :mod:`.scenario`); ids of
environment deployment records and release deployments are handed out in the order things happen.
"""

from __future__ import annotations

import base64
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from deploy_fetcher.emulators._server import EmulatorServer, Request, Response, json_response
from deploy_fetcher.emulators.azure_devops.scenario import (
    DeploymentView,
    Release,
    ReleaseEnvSpec,
    Run,
    RunView,
    Scenario,
    StageView,
    release_view,
    run_view,
)
from deploy_fetcher.model import parse_timestamp, utc_now

__all__ = ["AzureDevOpsEmulator"]

RELEASE_PREFIX: Final = "/vsrm"
_PREVIEW_RESOURCES: Final = (
    "environments",
    "environmentdeploymentrecords",
    "release/deployments",
    "connectionData",
)
_WINDOW: Final = timedelta(minutes=5)
_NAMESPACE: Final = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
_NOT_CHARGED: Final = frozenset({203, 401, 429})
#: The service's "never" (``queuedOn`` in every published release deployment example).
NEVER: Final = "0001-01-01T00:00:00"
#: A release environment's approvals are created this long after its ``startedOn`` (as recorded).
_APPROVAL_CREATED: Final = timedelta(milliseconds=650)
#: An automated approval is decided this long after its creation.
_AUTOMATED_DECISION: Final = timedelta(milliseconds=47)


def ado_time(value: datetime | None) -> str | None:
    """Azure DevOps' timestamp format: UTC, seven fractional digits, ``Z``."""
    if value is None:
        return None
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}0Z"


def _error(status: int, message: str, type_key: str) -> Response:
    body = {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeName": f"Microsoft.VisualStudio.Services.WebApi.{type_key}, Microsoft.VisualStudio.Services.WebApi",
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    }
    return json_response(body, status)


_SIGN_IN_PAGE: Final = (
    b"<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head>"
    b"<body>Sign in to your account</body></html>"
)


@dataclass
class _Page:
    items: list[dict[str, Any]]
    token: str | None


def _paginate(items: list[dict[str, Any]], token: str | None, top: int) -> _Page:
    """Slice a sorted list; the token is the id of the first item of the next page."""
    start = 0
    if token:
        ids = [str(item["id"]) for item in items]
        start = ids.index(token) if token in ids else len(items)
    chunk = items[start : start + top]
    rest = items[start + top :]
    return _Page(chunk, str(rest[0]["id"]) if rest else None)


def _list(page: _Page, headers: dict[str, str] | None = None) -> Response:
    out = dict(headers or {})
    if page.token:
        out["x-ms-continuationtoken"] = page.token
    return json_response({"count": len(page.items), "value": page.items}, headers=out)


def _int_arg(request: Request, name: str, default: int, cap: int) -> int:
    raw = request.arg(name)
    try:
        value = int(raw) if raw not in (None, "") else default
    except ValueError:
        value = default
    return max(1, min(value, cap))


def _time_arg(request: Request, name: str) -> datetime | None:
    raw = request.arg(name)
    return parse_timestamp(raw) if raw else None


def _within(stamp: datetime | None, low: datetime | None, high: datetime | None) -> bool:
    """``minTime`` is inclusive, ``maxTime`` exclusive; without a time an item passes no filter."""
    if low is None and high is None:
        return True
    if stamp is None:
        return False
    return (low is None or stamp >= low) and (high is None or stamp < high)


class AzureDevOpsEmulator(EmulatorServer):
    """Azure DevOps Services for one organization, its projects and their pipelines."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = "emulator-token",  # noqa: S107 - the emulator's well-known demo token
        scenario: str | Scenario = "demo",
        seed: int = 0,
        start: datetime | None = None,
        tstu_limit: float = 200.0,
        tstu_per_request: float = 0.1,
        list_running_records: bool = True,
    ) -> None:
        super().__init__(host, port)
        self.start_time = start or utc_now()
        self._offset = 0.0
        if isinstance(scenario, Scenario):
            self.scenario = scenario
        elif scenario == "demo":
            self.scenario = Scenario.demo(start=self.start_time, seed=seed)
        elif scenario == "bench":
            self.scenario = Scenario.bench(start=self.start_time, seed=seed)
        elif scenario == "empty":
            self.scenario = Scenario.empty(seed=seed)
        else:
            msg = f"unknown scenario {scenario!r} (demo, bench, empty)"
            raise ValueError(msg)
        self.token = token
        self.token_valid = True
        #: How a wrong token is answered: "401", or "203" (the sign-in page some bad PATs get).
        self.auth_failure = "401"
        self.tstu_limit = tstu_limit
        self.tstu_per_request = tstu_per_request
        #: False: a deployment record is listed only once its run has finished.
        self.list_running_records = list_running_records
        self._usage: deque[tuple[datetime, float]] = deque()
        self._record_ids: dict[tuple[int, str], int] = {}
        #: Runs completed when last materialized: no job of theirs can still appear, so a request
        #: does not walk them again (each request would otherwise cost a walk over every run).
        self._settled_runs: set[int] = set()
        self._deployment_ids: dict[tuple[int, str], int] = {}
        self._next_record = 5000
        self._next_deployment = 700
        org = "/{org}"
        project = org + "/{project}/_apis"
        self.route("GET", org + "/_apis/connectionData", self._connection_data)
        self.route("GET", org + "/_apis/projects", self._projects)
        self.route("GET", org + "/_apis/projects/{project}", self._project)
        self.route("GET", project + "/distributedtask/environments", self._environments)
        self.route(
            "GET",
            project + "/distributedtask/environments/{env}/environmentdeploymentrecords",
            self._records,
        )
        self.route("GET", project + "/build/definitions", self._definitions)
        self.route("GET", project + "/build/builds", self._builds)
        self.route("GET", project + "/build/builds/{build}", self._build)
        self.route("GET", project + "/build/builds/{build}/timeline", self._timeline)
        self.route(
            "GET", RELEASE_PREFIX + org + "/{project}/_apis/release/deployments", self._deployments
        )

    # -- clock and scenario helpers -----------------------------------------------------------------
    def now(self) -> datetime:
        """The emulator's clock."""
        return self.start_time + timedelta(seconds=self._offset)

    def server_time(self) -> datetime:
        """The ``Date`` of every answer: the emulator's clock."""
        return self.now()

    def advance(self, seconds: float) -> None:
        """Move the clock: runs progress, approvals get decided, the cadence adds new runs."""
        with self._lock:
            self._offset += seconds
            self.scenario.evolve(self.now())
            self._materialize()

    @property
    def organization_url(self) -> str:
        """What a source's ``organization_url`` should be."""
        return self.url(f"/{self.scenario.organization}")

    @property
    def release_url(self) -> str:
        """What a source's ``release_url`` should be."""
        return self.url(f"{RELEASE_PREFIX}/{self.scenario.organization}")

    def add_run(self, pipeline: int | str, *, ago: float = 0.0, **kwargs: Any) -> Run:
        """Queue a run ``ago`` seconds before now (see :meth:`Scenario.add_run` for the options)."""
        with self._lock:
            run = self.scenario.add_run(
                pipeline, queued=self.now() - timedelta(seconds=ago), **kwargs
            )
            self._materialize()
            return run

    def add_release(self, definition: int | str, *, ago: float = 0.0, **kwargs: Any) -> Release:
        """Create a release ``ago`` seconds before now."""
        with self._lock:
            release = self.scenario.add_release(
                definition, created=self.now() - timedelta(seconds=ago), **kwargs
            )
            self._materialize()
            return release

    def _run(self, run_id: int) -> Run:
        for run in self.scenario.runs:
            if run.id == run_id:
                return run
        raise KeyError(run_id)

    def _release(self, release_id: int) -> Release:
        for release in self.scenario.releases:
            if release.id == release_id:
                return release
        raise KeyError(release_id)

    def approve(self, run_id: int, stage: str) -> None:
        """Approve a stage's pending approval now."""
        with self._lock:
            self._run(run_id).decisions[stage] = ("approve", self.now())

    def reject(self, run_id: int, stage: str) -> None:
        """Reject a stage's pending approval now."""
        with self._lock:
            self._run(run_id).decisions[stage] = ("reject", self.now())

    def cancel(self, run_id: int) -> None:
        """Cancel a run now."""
        with self._lock:
            self._run(run_id).cancel_at = self.now()
            self._settled_runs.discard(run_id)

    def reject_release(self, release_id: int, environment: str) -> None:
        """Reject a release environment's pre-deployment approval now."""
        with self._lock:
            self._release(release_id).decisions[environment] = ("reject", self.now())

    def cancel_release(self, release_id: int) -> None:
        """Cancel a release now."""
        with self._lock:
            self._release(release_id).cancel_at = self.now()

    def expire_token(self) -> None:
        """Make the token invalid (an expired or revoked PAT)."""
        self.token_valid = False

    def charged(self) -> int:
        """Requests that cost quota (every authenticated API call that was not refused)."""
        return sum(1 for r in self.requests_to() if r.status not in _NOT_CHARGED)

    def run_view(self, run_id: int) -> RunView:
        """A run's state now (for tests)."""
        with self._lock:
            return run_view(self._run(run_id), self.now())

    # -- ids in the order things happen --------------------------------------------------------------
    def _materialize(self) -> None:
        now = self.now()
        self._number_jobs(now)
        deployments: list[tuple[datetime, int, str]] = []
        for release in self.scenario.releases:
            deployments += [(d.queued, release.id, d.env.name) for d in release_view(release, now)]
        for _, release_id, env_name in sorted(deployments):
            if (release_id, env_name) not in self._deployment_ids:
                self._next_deployment += 1
                self._deployment_ids[(release_id, env_name)] = self._next_deployment

    def _number_jobs(self, now: datetime) -> None:
        """Give each new deployment job its record id, in the order the jobs were queued."""
        jobs: list[tuple[datetime, int, int, str]] = []
        for run in self.scenario.runs:
            if run.id in self._settled_runs:
                continue
            view = run_view(run, now)
            for order, stage in enumerate(view.stages):
                if stage.spec.environment and stage.job is not None:
                    jobs.append((stage.job.queued, run.id, order, stage.spec.name))
            if view.status == "completed":
                self._settled_runs.add(run.id)
        for _, run_id, _, stage_name in sorted(jobs):
            if (run_id, stage_name) not in self._record_ids:
                self._next_record += 1
                self._record_ids[(run_id, stage_name)] = self._next_record

    # -- the gate every API call passes ------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        """Authentication, api-version and quota before routing; throttling headers after."""
        if request.path.startswith(self.CONTROL):
            return super().dispatch(request)
        refused = self._authenticate(request) or self._check_version(request)
        if refused is not None:
            return refused
        with self._lock:
            throttled, headers = self._charge()
            if throttled is not None:
                return throttled
            self._materialize()
            response = super().dispatch(request)
        response.headers.update(headers)
        return response

    def _authenticate(self, request: Request) -> Response | None:
        header = request.header("authorization") or ""
        if not header:
            return Response(203, _SIGN_IN_PAGE, {"Content-Type": "text/html; charset=utf-8"})
        scheme, _, value = header.partition(" ")
        token = ""
        if scheme.lower() == "basic":
            try:
                token = base64.b64decode(value).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                token = ""
        elif scheme.lower() == "bearer":
            token = value.strip()
        if token == self.token and self.token_valid:
            return None
        if self.auth_failure == "203":
            return Response(203, _SIGN_IN_PAGE, {"Content-Type": "text/html; charset=utf-8"})
        return Response(
            401,
            b"Access Denied: The Personal Access Token used has expired.",
            {"Content-Type": "text/plain; charset=utf-8", "WWW-Authenticate": 'Basic realm=""'},
        )

    def _check_version(self, request: Request) -> Response | None:
        version = request.arg("api-version")
        if not version:
            return _error(
                400,
                'No api-version was supplied for the "GET" request. The version must be supplied '
                'either as part of the Accept header (e.g. "application/json; api-version=1.0") or '
                "as a query parameter (e.g. '?api-version=1.0').",
                "VssVersionNotSpecifiedException",
            )
        number, _, preview = version.partition("-")
        try:
            major_minor = tuple(int(part) for part in number.split("."))
        except ValueError:
            major_minor = ()
        if not major_minor or major_minor > (7, 1):
            return _error(
                400,
                f"The requested REST API version of {version} is out of range for this server. "
                "The latest REST API version this server supports is 7.1.",
                "VssVersionOutOfRangeException",
            )
        if any(request.path.endswith(r) for r in _PREVIEW_RESOURCES) and not preview:
            return _error(
                400,
                f'The requested version "{version}" of the resource is under preview. The -preview '
                'flag must be supplied in the api-version for such requests. For example: "7.1-preview"',
                "VssInvalidPreviewVersionException",
            )
        return None

    def _charge(self) -> tuple[Response | None, dict[str, str]]:
        now = self.now()
        while self._usage and now - self._usage[0][0] >= _WINDOW:
            self._usage.popleft()
        used = sum(cost for _, cost in self._usage)
        if used + self.tstu_per_request > self.tstu_limit:
            oldest = self._usage[0][0] if self._usage else now
            retry = max(1, int((oldest + _WINDOW - now).total_seconds()) + 1)
            response = _error(
                429,
                "TF400733: The request has been canceled: Request was blocked due to exceeding "
                "usage of resource 'ATCPU' in namespace 'User'.",
                "RequestBlockedException",
            )
            response.headers.update(self._rate_headers(used, now))
            response.headers["Retry-After"] = str(retry)
            return response, {}
        self._usage.append((now, self.tstu_per_request))
        used += self.tstu_per_request
        if used < self.tstu_limit / 2:
            return None, {}
        return None, self._rate_headers(used, now)

    def _rate_headers(self, used: float, now: datetime) -> dict[str, str]:
        reset = (self._usage[-1][0] if self._usage else now) + _WINDOW
        headers = {
            "X-RateLimit-Resource": "ATCPU/User",
            "X-RateLimit-Limit": f"{self.tstu_limit:g}",
            "X-RateLimit-Remaining": f"{max(self.tstu_limit - used, 0):g}",
            "X-RateLimit-Reset": str(int(reset.timestamp())),
        }
        if used >= self.tstu_limit * 0.9:
            headers["X-RateLimit-Delay"] = "0.250"
        return headers

    def not_found(self, request: Request) -> Response:
        """404 in Azure DevOps' error shape."""
        return _error(
            404,
            f"The resource cannot be found. ({request.path})",
            "ResourceNotFoundException",
        )

    # -- shared shapes --------------------------------------------------------------------------------
    def _check(self, params: dict[str, str]) -> Response | None:
        if params.get("org") != self.scenario.organization:
            return self.not_found(Request("GET", "/" + params.get("org", ""), {}, {}, b""))
        project = params.get("project")
        if project is not None and project not in self.scenario.projects:
            return _error(
                404,
                f"TF200016: The following project does not exist: {project}. Verify that the name of "
                "the project is correct and that the project exists on the specified Azure DevOps "
                "Server.",
                "ProjectDoesNotExistException",
            )
        return None

    def _web(self, path: str) -> str:
        return self.url(f"/{self.scenario.organization}/{self.scenario.project}/{path}")

    def _project_ref(self) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid5(_NAMESPACE, self.scenario.project)),
            "name": self.scenario.project,
        }

    @staticmethod
    def _identity(name: str) -> dict[str, Any]:
        handle = name.lower().replace(" ", ".")
        return {
            "displayName": name,
            "uniqueName": f"{handle}@contoso.example",
            "id": str(uuid.uuid5(_NAMESPACE, handle)),
        }

    # -- organization and environments ------------------------------------------------------------
    def _connection_data(self, _request: Request, params: dict[str, str]) -> Response:
        """``ConnectionData`` (the Location area, 7.1-preview.1): who the credential is.

        The shape is the azure-devops Python SDK's ``ConnectionData`` and ``Identity`` models
        (``azure/devops/v7_1/location/models.py``): the identity's id, descriptors and display name,
        the organization's instance id, ``deploymentType`` ``hosted``.
        """
        refused = self._check(params)
        if refused is not None:
            return refused
        user_id = str(uuid.uuid5(_NAMESPACE, "fetcher-bot"))
        identity = {
            "id": user_id,
            "descriptor": f"Microsoft.IdentityModel.Claims.ClaimsIdentity;{user_id}\\fetcher-bot",
            "subjectDescriptor": f"aad.{user_id}",
            "providerDisplayName": "Fetcher Bot",
            "isActive": True,
            "properties": {"Account": {"$type": "System.String", "$value": "fetcher-bot"}},
            "resourceVersion": 2,
            "metaTypeId": 0,
        }
        instance = str(uuid.uuid5(_NAMESPACE, self.scenario.organization))
        return json_response(
            {
                "authenticatedUser": identity,
                "authorizedUser": identity,
                "instanceId": instance,
                "deploymentId": instance,
                "deploymentType": "hosted",
                "locationServiceData": {
                    "serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
                    "defaultAccessMappingMoniker": "PublicAccessMapping",
                    "lastChangeId": 1,
                    "lastChangeId64": 1,
                },
            }
        )

    def _projects(self, request: Request, params: dict[str, str]) -> Response:
        refused = self._check(params)
        if refused is not None:
            return refused
        items = [
            {"id": str(uuid.uuid5(_NAMESPACE, name)), "name": name, "state": "wellFormed"}
            for name in self.scenario.projects
        ]
        return _list(
            _paginate(items, request.arg("continuationToken"), _int_arg(request, "$top", 100, 500))
        )

    def _project(self, _request: Request, params: dict[str, str]) -> Response:
        refused = self._check(params)
        if refused is not None:
            return refused
        return json_response({**self._project_ref(), "state": "wellFormed"})

    def _environments(self, request: Request, params: dict[str, str]) -> Response:
        refused = self._check(params)
        if refused is not None:
            return refused
        name = request.arg("name")
        items = [
            {
                "id": env.id,
                "name": env.name,
                "description": "",
                "createdBy": self._identity("Project Admin"),
                "createdOn": ado_time(self.start_time - timedelta(days=90)),
                "lastModifiedBy": self._identity("Project Admin"),
                "lastModifiedOn": ado_time(self.start_time - timedelta(days=90)),
                "project": self._project_ref(),
            }
            for env in self.scenario.environments
            if name is None or env.name.lower() == name.lower()
        ]
        return _list(
            _paginate(items, request.arg("continuationToken"), _int_arg(request, "$top", 50, 1000))
        )

    def _record(self, view: RunView, order: int, stage: StageView) -> dict[str, Any] | None:
        run, job = view.run, stage.job
        env = next(
            (e for e in self.scenario.environments if e.name == stage.spec.environment), None
        )
        key = (run.id, stage.spec.name)
        if env is None or job is None or key not in self._record_ids:
            return None
        if not self.list_running_records and view.status != "completed":
            return None
        record: dict[str, Any] = {
            "id": self._record_ids[key],
            "requestIdentifier": str(uuid.uuid5(_NAMESPACE, f"request/{run.id}/{order}")),
            "environmentId": env.id,
            "serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
            "planType": "Build",
            "planId": str(uuid.uuid5(_NAMESPACE, f"plan/{run.id}")),
            "stageName": stage.spec.name,
            "jobName": f"Deploy{stage.spec.environment}",
            "stageAttempt": 1,
            "jobAttempt": 1,
            "definition": {
                "id": run.pipeline.id,
                "name": run.pipeline.name,
                "_links": {
                    "web": {"href": self._web(f"_build/definition?definitionId={run.pipeline.id}")}
                },
            },
            "owner": {
                "id": run.id,
                "name": run.number,
                "_links": {"web": {"href": self._web(f"_build/results?buildId={run.id}")}},
            },
            "queueTime": ado_time(job.queued),
            "startTime": ado_time(job.started),
            "scopeId": self._project_ref()["id"],
        }
        if job.finished is not None:
            record["finishTime"] = ado_time(job.finished)
        if job.result is not None:
            record["result"] = job.result
        return record

    def _records(self, request: Request, params: dict[str, str]) -> Response:
        refused = self._check(params)
        if refused is not None:
            return refused
        try:
            env_id = int(params["env"])
        except ValueError:
            env_id = -1
        env = next((e for e in self.scenario.environments if e.id == env_id), None)
        if env is None:
            return _error(
                404,
                f"Environment with id {params['env']} does not exist or you do not have access.",
                "EnvironmentNotFoundException",
            )
        now = self.now()
        items: list[dict[str, Any]] = []
        for run in self.scenario.runs:
            view = run_view(run, now)
            for order, stage in enumerate(view.stages):
                if stage.spec.environment == env.name:
                    record = self._record(view, order, stage)
                    if record is not None:
                        items.append(record)
        items.sort(key=lambda r: r["id"], reverse=True)
        top = _int_arg(request, "top", 25, 500)
        return _list(_paginate(items, request.arg("continuationToken"), top))

    # -- builds ------------------------------------------------------------------------------------
    def _definitions(self, request: Request, params: dict[str, str]) -> Response:
        refused = self._check(params)
        if refused is not None:
            return refused
        name = request.arg("name")
        items = [
            {
                "id": p.id,
                "name": p.name,
                "path": "\\",
                "type": "build",
                "queueStatus": "enabled",
                "revision": 3,
                "project": self._project_ref(),
                "_links": {"web": {"href": self._web(f"_build/definition?definitionId={p.id}")}},
            }
            for p in self.scenario.pipelines
            if name is None or p.name == name
        ]
        return _list(
            _paginate(
                items, request.arg("continuationToken"), _int_arg(request, "$top", 1000, 5000)
            )
        )

    def _build_json(self, view: RunView) -> dict[str, Any]:
        run = view.run
        body: dict[str, Any] = {
            "id": run.id,
            "buildNumber": run.number,
            "status": view.status,
            "queueTime": ado_time(run.queued),
            "startTime": ado_time(view.started),
            "sourceBranch": run.branch,
            "sourceVersion": run.sha,
            "priority": "normal",
            "reason": "individualCI",
            "requestedFor": self._identity(run.requested_for),
            "requestedBy": self._identity(run.requested_for),
            "lastChangedDate": ado_time(view.changed),
            "definition": {
                "id": run.pipeline.id,
                "name": run.pipeline.name,
                "path": "\\",
                "type": "build",
                "queueStatus": "enabled",
            },
            "project": self._project_ref(),
            "repository": {
                "id": str(uuid.uuid5(_NAMESPACE, f"repo:{run.pipeline.repository_name}")),
                "type": "TfsGit",
                "name": run.pipeline.repository_name,
            },
            "uri": f"vstfs:///Build/Build/{run.id}",
            "url": self.url(
                f"/{self.scenario.organization}/{self._project_ref()['id']}/_apis/build/Builds/{run.id}"
            ),
            "_links": {
                "web": {"href": self._web(f"_build/results?buildId={run.id}")},
                "timeline": {
                    "href": self.url(
                        f"/{self.scenario.organization}/{self.scenario.project}/_apis/build/builds/{run.id}/Timeline"
                    )
                },
            },
        }
        if view.status == "completed":
            body["result"] = view.result
            body["finishTime"] = ado_time(view.finished)
        return body

    def _builds(self, request: Request, params: dict[str, str]) -> Response:
        refused = self._check(params)
        if refused is not None:
            return refused
        now = self.now()
        order = request.arg("queryOrder") or "queueTimeDescending"
        field = {"queue": "queueTime", "start": "startTime", "finish": "finishTime"}.get(
            order.removesuffix("Ascending").removesuffix("Descending").removesuffix("Time"),
            "queueTime",
        )
        definitions = {
            int(x) for x in (request.arg("definitions") or "").split(",") if x.strip().isdigit()
        }
        wanted = {int(x) for x in (request.arg("buildIds") or "").split(",") if x.strip().isdigit()}
        statuses = {s.strip() for s in (request.arg("statusFilter") or "").split(",") if s.strip()}
        min_time, max_time = _time_arg(request, "minTime"), _time_arg(request, "maxTime")
        items = []
        for run in self.scenario.runs:
            if (definitions and run.pipeline.id not in definitions) or (
                wanted and run.id not in wanted
            ):
                continue
            view = run_view(run, now)
            if statuses and "all" not in statuses and view.status not in statuses:
                continue
            stamp = {
                "queueTime": run.queued,
                "startTime": view.started,
                "finishTime": view.finished,
            }[field]
            if not _within(stamp, min_time, max_time):
                continue
            items.append((stamp or run.queued, run.id, self._build_json(view)))
        items.sort(key=lambda item: (item[0], item[1]), reverse=order.endswith("Descending"))
        page = _paginate(
            [item[2] for item in items],
            request.arg("continuationToken"),
            _int_arg(request, "$top", 1000, 5000),
        )
        return _list(page)

    def _build(self, _request: Request, params: dict[str, str]) -> Response:
        refused = self._check(params)
        if refused is not None:
            return refused
        try:
            run = self._run(int(params["build"]))
        except (KeyError, ValueError):
            return _error(
                404,
                f"The requested build {params['build']} could not be found.",
                "BuildNotFoundException",
            )
        return json_response(self._build_json(run_view(run, self.now())))

    def _timeline(self, _request: Request, params: dict[str, str]) -> Response:
        refused = self._check(params)
        if refused is not None:
            return refused
        try:
            run = self._run(int(params["build"]))
        except (KeyError, ValueError):
            return _error(
                404,
                f"The requested build {params['build']} could not be found.",
                "BuildNotFoundException",
            )
        view = run_view(run, self.now())
        if view.status == "notStarted":
            return Response(204, b"", {})
        records: list[dict[str, Any]] = []
        for order, stage in enumerate(view.stages, start=1):
            records += self._stage_records(run, order, stage)
        body = {
            "records": records,
            "lastChangedBy": str(uuid.uuid5(_NAMESPACE, "system")),
            "lastChangedOn": ado_time(view.changed),
            "id": str(uuid.uuid5(_NAMESPACE, f"plan/{run.id}")),
            "changeId": len(records),
            "url": self.url(
                f"/{self.scenario.organization}/{self.scenario.project}/_apis/build/builds/{run.id}/Timeline"
            ),
        }
        return json_response(body)

    def _stage_records(self, run: Run, order: int, stage: StageView) -> list[dict[str, Any]]:
        def rid(path: str) -> str:
            return str(uuid.uuid5(_NAMESPACE, f"{run.id}/{stage.spec.name}/{path}"))

        def record(kind: str, path: str, parent: str | None, **fields: Any) -> dict[str, Any]:
            return {
                "previousAttempts": [],
                "id": rid(path),
                "parentId": parent,
                "type": kind,
                "name": fields.pop("name"),
                "startTime": ado_time(fields.pop("start", None)),
                "finishTime": ado_time(fields.pop("finish", None)),
                "currentOperation": None,
                "percentComplete": None,
                "state": fields.pop("state"),
                "result": fields.pop("result", None),
                "resultCode": None,
                "changeId": order,
                "lastModified": ado_time(self.now()),
                "workerName": None,
                "order": fields.pop("order", 1),
                "details": None,
                "errorCount": 0,
                "warningCount": 0,
                "url": None,
                "log": None,
                "task": None,
                "attempt": 1,
                **fields,
            }

        stage_id = rid("stage")
        out = [
            record(
                "Stage",
                "stage",
                None,
                name=stage.spec.display_name or stage.spec.name,
                identifier=stage.spec.name,
                state=stage.state,
                result=stage.result,
                start=stage.started,
                finish=stage.finished,
                order=order,
            )
        ]
        if stage.checkpoint_started is not None:
            done = stage.checkpoint_finished is not None
            checkpoint_result = None
            if done:
                checkpoint_result = (
                    "succeeded"
                    if stage.approval_result == "succeeded"
                    else (stage.approval_result or "succeeded")
                )
            out.append(
                record(
                    "Checkpoint",
                    "checkpoint",
                    stage_id,
                    name="Checkpoint",
                    identifier=f"Checkpoint_{stage.spec.name}",
                    state="completed" if done else "inProgress",
                    result=checkpoint_result,
                    start=stage.checkpoint_started,
                    finish=stage.checkpoint_finished,
                )
            )
            out.append(
                record(
                    "Checkpoint.Approval",
                    "approval",
                    rid("checkpoint"),
                    name="Checkpoint.Approval",
                    identifier=str(uuid.uuid5(_NAMESPACE, f"approval/{run.id}/{stage.spec.name}")),
                    state="completed" if done else "inProgress",
                    result=stage.approval_result if done else None,
                    start=stage.checkpoint_started,
                    finish=stage.checkpoint_finished,
                )
            )
        job = stage.job
        if job is not None:
            job_state = (
                "completed" if job.finished else ("inProgress" if job.started else "pending")
            )
            job_name = f"Deploy{stage.spec.environment}" if stage.spec.environment else "Build"
            out.append(
                record(
                    "Phase",
                    "phase",
                    stage_id,
                    name=job_name,
                    identifier=f"{stage.spec.name}.{job_name}",
                    state=job_state,
                    result=job.result,
                    start=job.started,
                    finish=job.finished,
                )
            )
            out.append(
                record(
                    "Job",
                    "job",
                    rid("phase"),
                    name=job_name,
                    identifier=f"{stage.spec.name}.{job_name}.__default",
                    state=job_state,
                    result=job.result,
                    start=job.started,
                    finish=job.finished,
                    workerName="Hosted Agent" if job.started else None,
                )
            )
        return out

    # -- classic releases --------------------------------------------------------------------------
    def _deployment_json(self, release: Release, view: DeploymentView) -> dict[str, Any]:
        definition = release.definition
        env: ReleaseEnvSpec = view.env
        web = self._web(f"_releaseProgress?releaseId={release.id}")
        # As the service does: startedOn is when the environment was reached, and its approvals
        # are created a moment after it (the deployment itself runs from the decision on).
        asked = view.queued + _APPROVAL_CREATED
        approvals: list[dict[str, Any]]
        if view.approval_status is not None:
            approvals = [
                {
                    "id": release.id * 100 + env.id % 100,
                    "revision": 2 if view.approval_modified else 1,
                    "approvalType": "preDeploy",
                    "createdOn": ado_time(asked),
                    "modifiedOn": ado_time(view.approval_modified or asked),
                    "status": view.approval_status,
                    "isAutomated": False,
                    "isNotificationOn": False,
                    "approver": self._identity("Release Manager"),
                    "approvedBy": self._identity("Release Manager")
                    if view.approval_modified
                    else None,
                    "attempt": 1,
                    "rank": 1,
                }
            ]
        else:
            approvals = [
                {
                    "id": 0,
                    "revision": 0,
                    "approvalType": "preDeploy",
                    "createdOn": ado_time(asked),
                    "modifiedOn": ado_time(asked + _AUTOMATED_DECISION),
                    "status": "approved",
                    "isAutomated": True,
                    "isNotificationOn": False,
                    "attempt": 1,
                    "rank": 1,
                }
            ]
        return {
            "id": self._deployment_ids[(release.id, env.name)],
            "release": {
                "id": release.id,
                "name": release.name,
                "url": self.url(
                    f"{RELEASE_PREFIX}/{self.scenario.organization}/{self._project_ref()['id']}/_apis/Release/releases/{release.id}"
                ),
                "_links": {"web": {"href": web}},
                "artifacts": [
                    {
                        "sourceId": f"{self._project_ref()['id']}:{definition.id}",
                        "type": "Build",
                        "alias": f"_{definition.name}",
                        "isPrimary": True,
                        "isRetained": False,
                        "definitionReference": {
                            "definition": {"id": str(definition.id), "name": definition.name},
                            "version": {"id": str(release.id * 7), "name": release.build_number},
                            "branch": {"id": "refs/heads/main", "name": "refs/heads/main"},
                            "sourceVersion": {"id": release.sha, "name": release.sha},
                            "project": {
                                "id": self._project_ref()["id"],
                                "name": self.scenario.project,
                            },
                        },
                    }
                ],
                "webAccessUri": web,
            },
            "releaseDefinition": {
                "id": definition.id,
                "name": definition.name,
                "path": "\\",
                "_links": {"web": {"href": self._web(f"_release?definitionId={definition.id}")}},
            },
            "releaseEnvironment": {
                "id": release.id * 1000 + env.id,
                "name": env.name,
                "_links": {},
            },
            "projectReference": self._project_ref(),
            "definitionEnvironmentId": env.id,
            "attempt": 1,
            "reason": "automated",
            "deploymentStatus": view.deployment_status,
            # PascalCase, as the service sends it (its schema lists camelCase).
            "operationStatus": view.operation_status[:1].upper() + view.operation_status[1:],
            "requestedBy": self._identity(release.requested_for),
            "requestedFor": self._identity(release.requested_for),
            # The service's "never": every published example has it for queuedOn.
            "queuedOn": NEVER,
            "startedOn": ado_time(view.queued),
            "completedOn": ado_time(view.completed),
            "lastModifiedOn": ado_time(view.modified),
            "lastModifiedBy": self._identity("Release Manager"),
            "conditions": [],
            "preDeployApprovals": approvals,
            "postDeployApprovals": [],
            "_links": {},
        }

    def _deployments(self, request: Request, params: dict[str, str]) -> Response:
        refused = self._check(params)
        if refused is not None:
            return refused
        now = self.now()
        min_time, max_time = (
            _time_arg(request, "minModifiedTime"),
            _time_arg(request, "maxModifiedTime"),
        )
        definition = request.arg("definitionId")
        items: list[dict[str, Any]] = []
        for release in self.scenario.releases:
            if definition and str(release.definition.id) != definition:
                continue
            for view in release_view(release, now):
                if (min_time and view.modified < min_time) or (
                    max_time and view.modified >= max_time
                ):
                    continue
                items.append(self._deployment_json(release, view))
        items.sort(key=lambda d: d["id"], reverse=request.arg("queryOrder") != "ascending")
        top = _int_arg(request, "$top", 50, 100)
        return _list(_paginate(items, request.arg("continuationToken"), top))

"""The GitLab provider: projects' deployments (or pipelines) as pages of canonical events.

One poll of a project is one ordered walk over the objects updated since the cursor's mark minus the
overlap. In ``deployments`` mode nothing else is requested; in ``pipelines`` mode a pipeline's details
(its start and finish times) are fetched once per change, and its jobs once when ``job_pattern`` is
set. An idle project therefore costs one small request per cycle in either mode.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

import structlog

from deploy_fetcher.config import SourceConfig
from deploy_fetcher.errors import AuthError, RateLimited, TargetNotFound, TransientError
from deploy_fetcher.model import DeployEvent, format_rfc3339
from deploy_fetcher.providers import CheckItem, Cursor, Page, Provider, ProviderContext, Reread
from deploy_fetcher.providers.gitlab.client import GitLabClient, encode_id, shared_client
from deploy_fetcher.providers.gitlab.config import GitLabSourceConfig, ProjectEntry
from deploy_fetcher.providers.gitlab.cursor import (
    DeploymentsState,
    PipelinesState,
)
from deploy_fetcher.providers.gitlab.mapping import (
    DeploymentView,
    Malformed,
    PipelineView,
    ProjectInfo,
    Rendering,
    deployment_events,
    derive_parents,
    list_key,
    matches_any,
    parse_deployment,
    parse_pipeline,
    pipeline_events,
    pipeline_needs_detail,
    sibling_of,
)
from deploy_fetcher.providers.gitlab.projects import (
    ProjectSettings,
    assign_targets,
    entry_for,
    settings_for,
    single_literal,
)
from deploy_fetcher.providers.kit import (
    KeysetPaginator,
    Quota,
    backfill_pages,
    cursor_pages,
    map_service,
    record_raw,
    reread_recording,
    settings_of,
)

__all__ = ["GitLabProvider"]

_log = structlog.get_logger(__name__)


def _iso(value: datetime) -> str:
    return format_rfc3339(value)


class GitLabProvider(Provider):
    """Reads deployments (or pipelines) of GitLab projects through python-gitlab."""

    name: ClassVar[str] = "gitlab"
    config_model: ClassVar[type[SourceConfig]] = GitLabSourceConfig

    def __init__(self, config: SourceConfig, context: ProviderContext) -> None:
        super().__init__(config, context)
        self.source_config = config = settings_of(config, GitLabSourceConfig)
        self.client: GitLabClient = shared_client(config, context)
        self._log = _log.bind(source=config.name)
        self._lock = threading.Lock()
        self._targets: dict[str, ProjectEntry] = {}
        self._groups: dict[str, list[tuple[int, str]]] = {}
        self._projects: dict[str, ProjectInfo] = {}
        self._auth_problem: str | None = None
        self._limited: tuple[datetime, str] | None = None
        self._user_checked = False

    # -- the Provider interface -----------------------------------------------------------------------
    def targets(self) -> Sequence[str]:
        """Every configured project, ``group/*`` entries expanded (subgroups included)."""
        try:
            for entry in self.source_config.projects:
                if entry.is_group:
                    self._discover(entry.group)
        except (AuthError, RateLimited) as exc:
            self._note(exc)
            raise
        with self._lock:
            self._targets = assign_targets(self.source_config.projects, self._groups)
            return list(self._targets)

    def poll(self, target: str, cursor: Cursor | None) -> Iterator[Page]:
        """What changed in one project since ``cursor`` (None: since ``now - lookback``)."""
        try:
            settings, rendering = self._resolve(target)
            if settings.mode == "deployments":
                yield from self._poll_deployments(target, settings, rendering, cursor)
            else:
                yield from self._poll_pipelines(target, settings, rendering, cursor)
        except (AuthError, RateLimited) as exc:
            self._note(exc)
            raise
        self._auth_problem = None

    def backfill(self, target: str, since: datetime, until: datetime) -> Iterator[Page]:
        """Every event of one project dated in ``[since, until)``, read by ``updated_at`` windows."""
        try:
            settings, rendering = self._resolve(target)
            if settings.mode == "deployments":
                state = DeploymentsState(since)
                pages = self._deployment_pages(target, settings, rendering, state, until=until)
            else:
                pstate = PipelinesState(since)
                pages = self._pipeline_pages(target, settings, rendering, pstate, until=until)
            kept = ([e for e in events if since <= e.happened_at < until] for events in pages)
            yield from backfill_pages(kept)
        except (AuthError, RateLimited) as exc:
            self._note(exc)
            raise

    def reread(
        self, target: str, deployment_id: str, *, since: datetime, until: datetime
    ) -> Reread:
        """``fetcher explain``: the deployment's events read again, with the raw objects behind them."""
        return reread_recording(self, target, deployment_id, since=since, until=until)

    def check(self, target: str) -> list[CheckItem]:
        """``fetcher check``: ``GET /user`` once per source, then one item of the project's mode.

        The user proves the token (and names whose it is) without reading any project; one item of
        the endpoint the project's mode reads (``per_page=1``) proves the project is visible and
        readable. A poll's first page would cost several requests per project.
        """
        credential = self._check_credential()
        if credential is not None and not credential.ok:
            return [credential]
        settings, _rendering = self._resolve(target)
        kind = "deployments" if settings.mode == "deployments" else "pipelines"
        path = f"/projects/{encode_id(target)}/{kind}"
        name = f"target {target}"
        head = [credential] if credential is not None else []
        try:
            found = self.client.page(path, {}, page=1, per_page=1)
        except TargetNotFound:
            detail = f"{target} does not exist, or this token cannot see it (GET {path})"
            return [*head, CheckItem(name, ok=False, detail=detail)]
        if not found:
            detail = f"readable, but it has no {kind}: mode {settings.mode} will read nothing here"
            return [*head, CheckItem(name, ok=None, detail=detail)]
        return [*head, CheckItem(name, ok=True, detail=f"{kind} readable ({settings.mode} mode)")]

    def _check_credential(self) -> CheckItem | None:
        """The token's own check (``GET /user``), the first time only: one row per source."""
        with self._lock:
            if self._user_checked:
                return None
            self._user_checked = True
        try:
            user = self.client.get("/user")
        except AuthError as exc:
            return CheckItem("credential", ok=False, detail=str(exc))
        login = user.get("username") if isinstance(user, dict) else None
        return CheckItem("credential", ok=True, detail=f"token accepted (user {login})")

    @property
    def request_quota(self) -> Quota | None:
        """The credential's quota: what the scheduler paces this source's targets by."""
        return self.client.policy.quota

    def ready_problems(self) -> list[str]:
        """A rejected token, or a quota spent until a time still ahead."""
        problems = []
        if self._auth_problem:
            problems.append(self._auth_problem)
        if self._limited is not None and self._limited[0] > self.context.clock():
            problems.append(f"{self._limited[1]} (until {_iso(self._limited[0])})")
        return problems

    # -- deployments mode -----------------------------------------------------------------------------
    def _poll_deployments(
        self, target: str, settings: ProjectSettings, rendering: Rendering, cursor: Cursor | None
    ) -> Iterator[Page]:
        scope = settings.scope()
        state = DeploymentsState.resume(cursor, scope=scope, log_name="gitlab", target=target)
        if state is None:
            state = DeploymentsState(self.context.clock() - self._lookback(), scope=scope)
            start = state.mark
        else:
            start = state.mark - self._overlap()
        pages = self._deployment_pages(target, settings, rendering, state, start=start)
        yield from self._changed(pages, state, cursor)

    def _changed(
        self,
        pages: Iterator[list[DeployEvent]],
        state: DeploymentsState | PipelinesState,
        cursor: Cursor | None,
    ) -> Iterator[Page]:
        """Pages that carry events or move the cursor; a fresh target always gets its cursor."""

        def snapshot() -> Cursor:
            state.forget(self._overlap())
            return state.sealed()

        return cursor_pages(pages, snapshot, cursor)

    def _deployment_pages(
        self,
        target: str,
        settings: ProjectSettings,
        rendering: Rendering,
        state: DeploymentsState,
        *,
        start: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[list[DeployEvent]]:
        path = f"/projects/{encode_id(target)}/deployments"
        query: dict[str, Any] = {"order_by": "updated_at", "sort": "asc"}
        environment = single_literal(settings.environments)
        if environment is not None:
            query["environment"] = environment
        if until is not None:
            query["updated_before"] = _iso(until)
        for items in self._walk(path, query, start or state.mark):
            views = self._read_deployments(target, path, items, state)
            events: list[DeployEvent] = []
            for view, raw in views:
                state.done.add(str(view.id), view.updated_at)
                if not matches_any(settings.environments, view.environment):
                    continue
                siblings = state.memory.siblings(view.pipeline_id) if view.pipeline_id else []
                try:
                    mapped = deployment_events(view, rendering, derive_parents(view, siblings))
                except ValueError as exc:  # Malformed, or a value the event model refuses
                    self._malformed(target, path, {"id": view.id}, exc)
                    continue
                record_raw(f"deployment {view.id}", raw, mapped)
                events.extend(mapped)
            yield events

    def _read_deployments(
        self, target: str, path: str, items: list[Any], state: DeploymentsState
    ) -> list[tuple[DeploymentView, Any]]:
        """Parse a page; move the mark and the pipeline memory; keep what is not handled yet.

        Every sibling is remembered before any event is built, so a deployment finds parents that
        come later in the same page.
        """
        views = []
        for raw in items:
            try:
                view = parse_deployment(raw)
            except Malformed as exc:
                self._malformed(target, path, raw, exc)
                continue
            done = state.done.has(str(view.id), view.updated_at)
            self._advance(state, view.id, view.updated_at, path, logged=done)
            sibling = sibling_of(view)
            if sibling is not None and view.pipeline_id is not None:
                state.memory.add(view.pipeline_id, sibling)
            if not done:
                views.append((view, raw))
        return views

    # -- pipelines mode -------------------------------------------------------------------------------
    def _poll_pipelines(
        self, target: str, settings: ProjectSettings, rendering: Rendering, cursor: Cursor | None
    ) -> Iterator[Page]:
        scope = settings.scope()
        state = PipelinesState.resume(cursor, scope=scope, log_name="gitlab", target=target)
        if state is None:
            state = PipelinesState(self.context.clock() - self._lookback(), scope=scope)
            start = state.mark
        else:
            start = state.mark - self._overlap()
        pages = self._pipeline_pages(target, settings, rendering, state, start=start)
        yield from self._changed(pages, state, cursor)

    def _pipeline_pages(
        self,
        target: str,
        settings: ProjectSettings,
        rendering: Rendering,
        state: PipelinesState,
        *,
        start: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[list[DeployEvent]]:
        path = f"/projects/{encode_id(target)}/pipelines"
        wanted = settings.pipelines
        query: dict[str, Any] = {"order_by": "updated_at", "sort": "asc"}
        ref = single_literal(wanted.refs)
        if ref is not None:
            query["ref"] = ref
        if len(wanted.sources) == 1:
            query["source"] = wanted.sources[0]
        if until is not None:
            query["updated_before"] = _iso(until)
        for items in self._walk(path, query, start or state.mark):
            events: list[DeployEvent] = []
            for raw in items:
                events.extend(
                    self._pipeline_item(
                        target, path, raw, settings=settings, rendering=rendering, state=state
                    )
                )
            yield events

    def _pipeline_item(
        self,
        target: str,
        path: str,
        raw: Any,
        *,
        settings: ProjectSettings,
        rendering: Rendering,
        state: PipelinesState,
    ) -> list[DeployEvent]:
        """The events of one listed pipeline (details fetched only when its times are needed)."""
        try:
            view = parse_pipeline(raw)
        except Malformed as exc:
            self._malformed(target, path, raw, exc)
            return []
        done = state.done.has(str(view.id), view.updated_at)
        self._advance(state, view.id, view.updated_at, path, logged=done)
        if done:
            return []
        events: list[DeployEvent] = []
        if self._pipeline_wanted(path, view, settings, state):
            # A detail that cannot be read raises here, before the pipeline is marked done: the
            # cycle fails and the next one reads it again. Only a malformed one is skipped.
            detail = self.client.get(f"{path}/{view.id}") if pipeline_needs_detail(view) else None
            try:
                if detail is not None:
                    view = replace(parse_pipeline(raw, detail), updated_at=view.updated_at)
                events = pipeline_events(view, rendering)
                record_raw(f"pipeline {view.id}", detail if detail is not None else raw, events)
            except ValueError as exc:  # Malformed, or a value the event model refuses
                self._malformed(target, f"{path}/{view.id}", raw, exc)
        state.done.add(str(view.id), view.updated_at)
        return events

    def _pipeline_wanted(
        self, path: str, view: PipelineView, settings: ProjectSettings, state: PipelinesState
    ) -> bool:
        """Whether a pipeline passes the ref, source and job-name selection."""
        wanted = settings.pipelines
        if not matches_any(wanted.refs, view.ref):
            return False
        if wanted.sources and view.source not in wanted.sources:
            return False
        if wanted.job_pattern is None:
            return True
        pipeline_id = view.id
        hit = state.matches.get(pipeline_id)
        if hit is None:
            pattern = wanted.job_pattern
            jobs = self.client.iterate(f"{path}/{pipeline_id}/jobs", {}, per_page=100)
            hit = any(
                isinstance(job, dict) and fnmatch.fnmatchcase(str(job.get("name", "")), pattern)
                for job in jobs
            )
            state.matches[pipeline_id] = hit
        return hit

    # -- shared steps ---------------------------------------------------------------------------------
    def _walk(self, path: str, query: dict[str, Any], start: datetime) -> Iterator[list[Any]]:
        per_page = self.source_config.page_size

        def fetch(after: datetime, page: int) -> list[Any]:
            return self.client.page(
                path, {**query, "updated_after": _iso(after)}, page=page, per_page=per_page
            )

        what = f"GET {self.client.url}/api/v4{path}"
        yield from KeysetPaginator(
            fetch=fetch, key=list_key, start=start, per_page=per_page, what=what
        )

    def _advance(
        self,
        state: DeploymentsState | PipelinesState,
        item: int,
        updated_at: datetime,
        path: str,
        *,
        logged: bool,
    ) -> None:
        """Move the mark to an item, never past the server's clock (logged once per item)."""
        ceiling = self.client.policy.mark_ceiling()
        if not state.advance(updated_at, ceiling=ceiling) and not logged:
            url = f"{self.client.url}/api/v4{path}"
            self.client.policy.future_item(url=url, item=item, at=updated_at)

    def _resolve(self, target: str) -> tuple[ProjectSettings, Rendering]:
        with self._lock:
            entry = self._targets.get(target)
        if entry is None:
            entry = entry_for(self.source_config.projects, target)
        if entry is None:
            msg = f"{target}: not covered by the projects of source {self.source_config.name}"
            raise TargetNotFound(msg)
        settings = settings_for(self.source_config, entry)
        project = self._project(target)
        rendering = Rendering(
            source=self.source_config.name,
            project=project,
            service=settings.service,
            service_name=map_service(settings.service_map, (project.path, project.name)),
            version=settings.version,
            environment=settings.pipelines.environment,
        )
        return settings, rendering

    def _project(self, target: str) -> ProjectInfo:
        """Path and web address of a project; a numeric id is looked up once."""
        known = self._projects.get(target)
        if known is not None:
            return known
        if not target.isdigit():
            info = ProjectInfo(target, f"{self.client.url}/{target}")
        else:
            raw = self.client.get(f"/projects/{target}")
            path = raw.get("path_with_namespace") if isinstance(raw, dict) else None
            web_url = raw.get("web_url") if isinstance(raw, dict) else None
            if not isinstance(path, str) or not path:
                msg = f"GET /projects/{target}: no path_with_namespace in the answer"
                raise TransientError(msg)
            info = ProjectInfo(
                path, web_url if isinstance(web_url, str) else f"{self.client.url}/{path}"
            )
        self._projects[target] = info
        return info

    def _discover(self, group: str) -> None:
        """List a group's projects (subgroups included).

        A group that does not exist is logged and contributes nothing. A transient failure keeps
        the list found last time; without one it is raised, so ``fetcher check`` and the scheduler
        see that discovery failed rather than a source that silently lost a group.
        """
        path = f"/groups/{encode_id(group)}/projects"
        query = {"include_subgroups": "true", "archived": "false", "with_shared": "false"}
        try:
            members = [
                (item["id"], item["path_with_namespace"])
                for item in self.client.iterate(path, {**query, "simple": "true"}, per_page=100)
                if isinstance(item, dict)
                and isinstance(item.get("id"), int)
                and isinstance(item.get("path_with_namespace"), str)
            ]
        except TargetNotFound as exc:
            self._log.warning("gitlab.group_not_found", group=group, error=str(exc))
            members = []
        except (TransientError, RateLimited) as exc:
            with self._lock:
                known = group in self._groups
            if not known:
                raise
            self._log.warning("gitlab.discovery_failed", group=group, error=str(exc))
            return
        with self._lock:
            self._groups[group] = members

    def _malformed(self, target: str, path: str, raw: Any, exc: Exception) -> None:
        item = raw.get("id") if isinstance(raw, dict) else None
        self._log.warning(
            "gitlab.malformed_item",
            target=target,
            url=f"{self.client.url}/api/v4{path}",
            item=item,
            reason=str(exc).splitlines()[0][:300],
        )

    def _lookback(self) -> timedelta:
        return self.source_config.lookback or self.context.defaults.lookback

    def _overlap(self) -> timedelta:
        return self.source_config.overlap or self.context.defaults.overlap

    def _note(self, exc: AuthError | RateLimited) -> None:
        """Keep what readiness reports: a rejected token, a quota spent until some time."""
        if isinstance(exc, AuthError):
            self._auth_problem = str(exc)
        elif exc.retry_at is not None:
            self._limited = (exc.retry_at, str(exc))

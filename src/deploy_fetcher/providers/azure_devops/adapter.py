"""The Azure DevOps provider: one instance per ``sources[]`` entry, one target per project.

It wires the pieces together — credential, the HTTP client shared by every source of the
credential, cached catalog, and the walker of the configured mode — and turns each walk into
:class:`~deploy_fetcher.providers.Page` objects: one page per list page / run, each carrying the
cursor that covers exactly what was stored so far, so a poll cut short (a kill in the middle of a
long first poll) resumes after the last page it stored.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import structlog

from deploy_fetcher.errors import AuthError, PluginError, TargetNotFound
from deploy_fetcher.lifecycle import lifecycle_order
from deploy_fetcher.providers import CheckItem, Cursor, Page, Provider, ProviderContext, Reread
from deploy_fetcher.providers.azure_devops.auth import BearerFileAuth, Credential, PatAuth
from deploy_fetcher.providers.azure_devops.catalog import Catalog
from deploy_fetcher.providers.azure_devops.client import PROVIDER, shared_client
from deploy_fetcher.providers.azure_devops.config import AzureDevOpsConfig
from deploy_fetcher.providers.azure_devops.cursor import (
    EnvironmentsCursor,
    ReleasesCursor,
    StagesCursor,
    scope_digest,
)
from deploy_fetcher.providers.azure_devops.environments import EnvironmentWalker
from deploy_fetcher.providers.azure_devops.mapping import Naming
from deploy_fetcher.providers.azure_devops.releases import ReleaseWalker
from deploy_fetcher.providers.azure_devops.runs import RunWalk, RunWalker
from deploy_fetcher.providers.azure_devops.selection import PipelineFilter, StageResolver
from deploy_fetcher.providers.kit import (
    Quota,
    Watermark,
    backfill_pages,
    cursor_pages,
    reread_recording,
    settings_of,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime, timedelta

    import httpx

    from deploy_fetcher.config import SourceConfig

__all__ = ["AzureDevOpsProvider"]

_log = structlog.get_logger(__name__)


def _credential(config: AzureDevOpsConfig) -> Credential:
    if config.pat is not None:
        return PatAuth(config.pat.get_secret_value())
    if config.bearer_token_file is None:  # the config model already refuses this
        msg = "no credential configured"
        raise PluginError(msg)
    return BearerFileAuth(config.bearer_token_file)


class AzureDevOpsProvider(Provider):
    """Deployments from Azure DevOps Services or Server: environments, stages or classic releases."""

    name: ClassVar[str] = PROVIDER
    config_model: ClassVar[type[SourceConfig]] = AzureDevOpsConfig

    def __init__(
        self,
        config: SourceConfig,
        context: ProviderContext,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(config, context)
        self.settings = config = settings_of(config, AzureDevOpsConfig)
        defaults = context.defaults
        self.client = shared_client(config, context, _credential(config), transport)
        ttl = config.discovery_interval or defaults.discovery_interval
        # One catalog per client (organization and credential): every source of a project reads
        # its definitions and environments once, not once per source.
        self.catalog = context.shared.get(
            f"azure-devops:catalog:{id(self.client)}:{ttl}:{config.page_size}:{config.max_pages}",
            lambda: Catalog(
                self.client,
                ttl=ttl,
                clock=context.clock,
                page_size=config.page_size,
                max_pages=config.max_pages,
            ),
        )
        self._runs = RunWalker(
            self.client,
            page_size=config.page_size,
            max_pages=config.max_pages,
            open_max=config.open_max,
            open_max_age=config.open_max_age,
        )
        self._environments = EnvironmentWalker(self.client, self.catalog, self._runs, config)
        self._releases = ReleaseWalker(self.client, config)
        self._scope = scope_digest(config.scope_key())
        self._log = _log.bind(source=config.name)
        self._lock = threading.Lock()
        self._credential_checked = False

    # -- effective settings ------------------------------------------------------------------------
    def _setting(self, key: str) -> timedelta:
        value = getattr(self.settings, key)
        return value if value is not None else getattr(self.context.defaults, key)  # type: ignore[no-any-return]

    def _naming(self, project: str) -> Naming:
        config = self.settings
        return Naming(
            source=config.name,
            organization=config.organization,
            organization_url=config.organization_url,
            project=project,
            service_map=config.service_map,
            service_template=config.service,
            version_from=config.effective_version_from,
            run_number_from=config.run_number_from,
        )

    def _stage_walk(self, project: str, naming: Naming) -> RunWalk:
        config = self.settings
        resolver = StageResolver(
            mapping=config.stage_environments,
            pattern=config.stage_pattern,
            environments=config.environments,
        )
        return RunWalk(
            project=project,
            naming=naming,
            resolver=resolver.for_definition,
            definitions=self.catalog.definition_ids(
                project, PipelineFilter.parse(config.pipelines)
            ),
            parents=config.stage_parents == "order",
        )

    # -- Provider ----------------------------------------------------------------------------------
    def accepts_nudge(self, target: str, pipelines: frozenset[str]) -> bool:
        """Whether a webhook about ``pipelines`` (ids and names) concerns what this source reads.

        A source that names its pipelines is not polled for another pipeline of the same project;
        an event that names no pipeline concerns every source of the project.
        """
        selection = PipelineFilter.parse(self.settings.pipelines)
        if not pipelines or selection.everything:
            return True
        return any(
            selection.matches(int(p), None) if p.isdigit() else selection.matches(None, p)
            for p in pipelines
        )

    def targets(self) -> Sequence[str]:
        """The configured projects; ``"*"`` adds every project the credential can see."""
        named = [p for p in self.settings.projects if p != "*"]
        if len(named) == len(self.settings.projects):
            return named
        found: list[str] = []
        for page in self.client.projects(
            page_size=self.settings.page_size, max_pages=self.settings.max_pages
        ):
            found += [str(item["name"]) for item in page.items if isinstance(item.get("name"), str)]
        return sorted(set(named) | set(found))

    def poll(self, target: str, cursor: Cursor | None) -> Iterator[Page]:
        """One cycle of one project: pages of events, then the new cursor."""
        now = self.context.clock()
        overlap = self._setting("overlap")
        start = now - self._setting("lookback")
        naming = self._naming(target)
        mode = self.settings.mode
        if mode == "environments":
            env_cursor = EnvironmentsCursor.resume(
                cursor, scope=self._scope, log_name="azure_devops", target=target
            ) or EnvironmentsCursor(scope=self._scope, start=start)
            walk = self._environments.poll(
                target, env_cursor, naming=naming, now=now, overlap=overlap
            )
            yield from cursor_pages(walk, env_cursor.sealed, cursor, order=lifecycle_order)
        elif mode == "stages":
            stage_cursor = StagesCursor.resume(
                cursor, scope=self._scope, log_name="azure_devops", target=target
            ) or StagesCursor(scope=self._scope, runs=Watermark(start))
            walk = self._runs.poll(
                self._stage_walk(target, naming), stage_cursor.runs, now=now, overlap=overlap
            )
            yield from cursor_pages(walk, stage_cursor.sealed, cursor, order=lifecycle_order)
        else:
            release_cursor = ReleasesCursor.resume(
                cursor, scope=self._scope, log_name="azure_devops", target=target
            ) or ReleasesCursor(scope=self._scope, state=Watermark(start))
            walk = self._releases.poll(target, release_cursor, naming=naming, overlap=overlap)
            yield from cursor_pages(walk, release_cursor.sealed, cursor, order=lifecycle_order)

    def backfill(self, target: str, since: datetime, until: datetime) -> Iterator[Page]:
        """Every event in ``[since, until)`` through each mode's own time filter; no cursor."""
        naming = self._naming(target)
        mode = self.settings.mode
        if mode == "environments":
            walk = self._environments.backfill(target, naming=naming, since=since, until=until)
        elif mode == "stages":
            walk = self._runs.backfill(self._stage_walk(target, naming), since=since, until=until)
        else:
            walk = self._releases.backfill(target, naming=naming, since=since, until=until)
        yield from backfill_pages(walk, order=lifecycle_order)

    def reread(
        self, target: str, deployment_id: str, *, since: datetime, until: datetime
    ) -> Reread:
        """``fetcher explain``: the deployment's events read again, with the raw objects behind them."""
        return reread_recording(self, target, deployment_id, since=since, until=until)

    def check(self, target: str) -> list[CheckItem]:
        """``fetcher check``: ``connectionData`` once per source, then one item of the mode's list.

        ``GET {org}/_apis/connectionData`` names the identity the credential signs in as without
        reading any project; one item (``$top=1``) of the list the mode reads proves the project is
        visible and that list readable. A poll's first page would cost a walk of the project.
        """
        credential = self._check_credential()
        if credential is not None and not credential.ok:
            return [credential]
        head = [credential] if credential is not None else []
        url, kind, resource = self._check_list(target)
        name = f"target {target}"
        try:
            body = self.client.json_of(url, {"$top": "1"}, resource=resource)
        except TargetNotFound:
            detail = f"{target} does not exist, or this credential cannot see it ({url})"
            return [*head, CheckItem(name, ok=False, detail=detail)]
        items = body.get("value") if isinstance(body, dict) else None
        mode = self.settings.mode
        if not items:
            detail = f"readable, but it has no {kind}: mode {mode} will read nothing here"
            return [*head, CheckItem(name, ok=None, detail=detail)]
        return [*head, CheckItem(name, ok=True, detail=f"{kind} readable ({mode} mode)")]

    def _check_list(self, project: str) -> tuple[str, str, str]:
        """The list the mode reads: its URL, what it holds, its preview resource."""
        mode = self.settings.mode
        if mode == "environments":
            url = self.client.project(project, "_apis/distributedtask/environments")
            return url, "environments", "environments"
        if mode == "stages":
            return self.client.project(project, "_apis/build/builds"), "runs", ""
        url = self.client.release(project, "_apis/release/deployments")
        return url, "release deployments", "release.deployments"

    def _check_credential(self) -> CheckItem | None:
        """Who the credential is (``connectionData``), the first time only: one row per source."""
        with self._lock:
            if self._credential_checked:
                return None
            self._credential_checked = True
        url = self.client.org("_apis/connectionData")
        try:
            body = self.client.json_of(url, {}, resource="connectionData")
        except AuthError as exc:
            return CheckItem("credential", ok=False, detail=str(exc))
        user = body.get("authenticatedUser") if isinstance(body, dict) else None
        shown = user.get("providerDisplayName") if isinstance(user, dict) else None
        return CheckItem("credential", ok=True, detail=f"credential accepted (as {shown})")

    @property
    def request_quota(self) -> Quota | None:
        """The credential's quota: what the scheduler paces this source's targets by."""
        return self.client.policy.quota

    def ready_problems(self) -> list[str]:
        """A rate limit that holds the credential beyond this moment."""
        quota = self.client.policy.quota
        problem = quota.problem(f"Azure DevOps credential {quota.label}") if quota else None
        return [problem] if problem else []

    def __repr__(self) -> str:
        return f"AzureDevOpsProvider(source={self.settings.name!r}, mode={self.settings.mode!r})"

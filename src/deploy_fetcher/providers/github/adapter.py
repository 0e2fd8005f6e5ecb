"""The GitHub Actions provider: repositories → canonical deployment events.

One instance per ``sources[]`` entry. Targets are repositories (``owner/name``); ``owner/*`` is
expanded by listing the organisation's (or user's, or App installation's) repositories, re-validated
with ``If-None-Match`` so a periodic discovery costs nothing while the list is unchanged. The
PyGithub session and the quota budget are shared per credential (several sources may use one token);
everything repository-specific lives in one walker per repository (:mod:`.deployments`,
:mod:`.runs`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import structlog

from deploy_fetcher.config import SourceConfig
from deploy_fetcher.errors import TransientError
from deploy_fetcher.providers._base import (
    CheckItem,
    Cursor,
    Page,
    Provider,
    ProviderContext,
    Reread,
)
from deploy_fetcher.providers.github.auth import InstallationTokenAuth
from deploy_fetcher.providers.github.client import (
    GitHubClient,
    MalformedResponse,
    NotFound,
    credential_for,
)
from deploy_fetcher.providers.github.config import GitHubConfig
from deploy_fetcher.providers.github.deployments import DeploymentWalker
from deploy_fetcher.providers.github.lookups import Lookups
from deploy_fetcher.providers.github.mapping import Repo, web_base
from deploy_fetcher.providers.github.runs import RunWalker
from deploy_fetcher.providers.github.walker import RepoWalker, WalkerArgs
from deploy_fetcher.providers.kit import Quota, reread_recording, settings_of

__all__ = ["GitHubProvider"]

_log = structlog.get_logger(__name__)


class GitHubProvider(Provider):
    """Deployments and workflow runs of GitHub (github.com or Enterprise Server) repositories."""

    name: ClassVar[str] = "github"
    config_model: ClassVar[type[SourceConfig]] = GitHubConfig

    def __init__(self, config: SourceConfig, context: ProviderContext) -> None:
        super().__init__(config, context)
        self.gh_config = config = settings_of(config, GitHubConfig)
        self.credential = credential_for(config, context)
        self.client = GitHubClient(self.credential, context)
        # One set of caches per credential: sources of one token share what they read.
        self.lookups = context.shared.get(
            f"github:lookups:{config.credential_key()}", lambda: Lookups(self.client)
        )
        self._web = web_base(config.base_url)
        #: One walker per repository; the scheduler polls repositories of a source in parallel.
        self._walkers: dict[str, RepoWalker] = {}
        self._walkers_lock = threading.Lock()
        self._owner_lists: dict[str, tuple[str | None, list[str]]] = {}
        #: Owners found to be users, not organisations (their list lives elsewhere).
        self._owner_kinds: dict[str, str] = {}
        self._log = _log.bind(source=config.name)

    # -- targets -----------------------------------------------------------------------------------
    def targets(self) -> Sequence[str]:
        """Explicit repositories plus every repository of each ``owner/*`` (deduplicated, sorted)."""
        found: dict[str, str] = {r.lower(): r for r in self.gh_config.explicit_repos}
        for owner in self.gh_config.wildcard_owners:
            for repo in self._expand(owner):
                found.setdefault(repo.lower(), repo)
        return sorted(found.values(), key=str.lower)

    def _expand(self, owner: str) -> list[str]:
        previous = self._owner_lists.get(owner.lower())
        try:
            if isinstance(self.credential.auth, InstallationTokenAuth):
                repos = self._list_repos(owner, "/installation/repositories", key="repositories")
            elif self._owner_kinds.get(owner.lower()) == "users":
                repos = self._list_repos(owner, f"/users/{owner}/repos", key=None)
            else:
                try:
                    repos = self._list_repos(owner, f"/orgs/{owner}/repos", key=None)
                except NotFound:
                    repos = self._list_repos(owner, f"/users/{owner}/repos", key=None)
                    self._owner_kinds[owner.lower()] = "users"
        except NotFound as exc:
            self._log.warning("github.owner_not_found", owner=owner, url=exc.url, status=exc.status)
            return []
        except (TransientError, MalformedResponse) as exc:
            if previous is None:
                raise
            self._log.info(
                "github.discovery_failed", owner=owner, reason=str(exc), kept=len(previous[1])
            )
            return previous[1]
        return repos

    def _list_repos(self, owner: str, url: str, *, key: str | None) -> list[str]:
        cache_key = f"{owner.lower()} {url}"
        cached = self._owner_lists.get(cache_key)
        names: list[str] = []
        etag = cached[0] if cached else None
        for index, page in enumerate(self.client.pages(url, {"per_page": 100}, etag=etag)):
            if page.not_modified and cached is not None:
                return cached[1]
            if index == 0:
                etag = page.etag
            items: Any = page.data.get(key) if key and isinstance(page.data, Mapping) else page.data
            if not isinstance(items, list):
                msg = f"GitHub sent a repository list that is not a list: {page.url}"
                raise MalformedResponse(msg, url=page.url)
            for repo in items:
                if not isinstance(repo, Mapping) or not isinstance(repo.get("full_name"), str):
                    self._log.warning(
                        "github.malformed_item", url=page.url, reason="repository without full_name"
                    )
                    continue
                if repo["full_name"].split("/", 1)[0].lower() != owner.lower():
                    continue
                if self.gh_config.skip_archived and repo.get("archived") is True:
                    continue
                names.append(repo["full_name"])
        self._owner_lists[cache_key] = (etag, names)
        self._owner_lists[owner.lower()] = (etag, names)
        return names

    # -- polling -----------------------------------------------------------------------------------
    def _walker(self, target: str) -> RepoWalker:
        with self._walkers_lock:
            walker = self._walkers.get(target)
            if walker is None:
                walker = self._walkers[target] = self._new_walker(target)
            return walker

    def _new_walker(self, target: str) -> RepoWalker:
        settings = self.gh_config.settings_for(target)
        repo = Repo(full_name=target, web_url=self._web)
        common: WalkerArgs = {
            "repo": repo,
            "source": self.config.name,
            "settings": settings,
            "max_open": self.gh_config.open_max,
            "open_max_age": self.gh_config.open_max_age,
        }
        if settings.mode == "workflow_runs":
            return RunWalker(self.client, self.lookups, **common)
        return DeploymentWalker(
            self.client, self.lookups, use_graphql=self.gh_config.graphql, **common
        )

    def poll(self, target: str, cursor: Cursor | None) -> Iterator[Page]:
        """One cycle of a repository, from its stored cursor."""
        lookback = self.config.lookback or self.context.defaults.lookback
        overlap = self.config.overlap or self.context.defaults.overlap
        yield from self._walker(target).poll(
            cursor, now=self.context.clock(), lookback=lookback, overlap=overlap
        )

    def backfill(self, target: str, since: datetime, until: datetime) -> Iterator[Page]:
        """Everything in ``[since, until)``: listed newest-first down to ``since``, emitted oldest-first."""
        yield from self._walker(target).backfill(since, until)

    def reread(
        self, target: str, deployment_id: str, *, since: datetime, until: datetime
    ) -> Reread:
        """``fetcher explain``: the deployment's events read again, with the raw objects behind them."""
        return reread_recording(self, target, deployment_id, since=since, until=until)

    def check(self, target: str) -> list[CheckItem]:
        """``fetcher check``: one request to the endpoint the repository's mode reads (per_page=1).

        It proves at once that the token is accepted (AuthError otherwise), that the repository
        exists and is visible to it (404 otherwise), and that the mode's endpoint is readable.
        """
        mode = self.gh_config.settings_for(target).mode
        if mode == "workflow_runs":
            url, what = f"/repos/{target}/actions/runs", "workflow runs"
        else:
            url, what = f"/repos/{target}/deployments", "deployments"
        name = f"target {target}"
        try:
            response = self.client.get(url, {"per_page": 1})
        except NotFound:
            detail = f"{target} does not exist, or this credential cannot see it ({url})"
            return [CheckItem(name, ok=False, detail=detail)]
        data = response.data
        found = bool(data.get("total_count")) if isinstance(data, Mapping) else bool(data)
        if not found:
            detail = f"readable, but it has no {what}: mode {mode} will read nothing here"
            return [CheckItem(name, ok=None, detail=detail)]
        return [CheckItem(name, ok=True, detail=f"{what} readable ({mode} mode)")]

    @property
    def request_quota(self) -> Quota:
        """The credential's quota: what the scheduler paces this source's targets by."""
        return self.credential.quota

    def ready_problems(self) -> list[str]:
        """The credential's quota state when it blocks polling."""
        problem = self.credential.quota.problem(f"GitHub credential {self.credential.label}")
        return [problem] if problem else []

"""Deployments mode: the Deployments API and each deployment's statuses, for one repository.

One cycle, cheapest first:

1. page 1 of ``GET /repos/{repo}/deployments`` with ``If-None-Match`` — a ``304`` (free) means no new
   deployment; otherwise pages are read newest-first until ``created_at`` falls behind
   ``mark − overlap``;
2. the statuses of new deployments: one GraphQL query per 50 of them when there are several, else
   one REST list each;
3. the statuses of open deployments with ``If-None-Match`` (free while unchanged); finished ones are
   never read again;
4. for Actions deployments, the linked run (cached; re-validated only while unfinished), its review
   log when a failure may be a rejection, and its workflow file for parents (cached per commit).

So an idle repository costs one ``304`` per cycle, plus one per open deployment.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Unpack

from deploy_fetcher.errors import TransientError
from deploy_fetcher.lifecycle import lifecycle_order
from deploy_fetcher.model import DeployEvent, parse_timestamp
from deploy_fetcher.providers._base import Cursor, Page
from deploy_fetcher.providers.github.client import GitHubClient, MalformedResponse, NotFound
from deploy_fetcher.providers.github.cursor import DeploymentsCursor, OpenDeployment
from deploy_fetcher.providers.github.lookups import LRU, Lookups, graphql_unavailable_reason
from deploy_fetcher.providers.github.mapping import (
    deployment_events,
    deployment_problem,
    run_id_of_statuses,
    snapshot_deployment,
    sorted_statuses,
)
from deploy_fetcher.providers.github.walker import RepoWalker, WalkerArgs
from deploy_fetcher.providers.kit import backfill_pages, cursor_pages, record_raw

__all__ = ["GRAPHQL_STATUSES", "DeploymentWalker"]


#: New deployments handled (and committed) per step of a cycle.
_CHUNK: Final = 100
_GRAPHQL_BATCH: Final = 50
_SUCCEEDED: Final = frozenset({"success", "inactive"})

#: Statuses of many deployments at once, by their node ids.
GRAPHQL_STATUSES: Final = """
query DeploymentStatuses($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Deployment {
      databaseId
      statuses(first: 100) {
        pageInfo { hasNextPage }
        nodes {
          state
          createdAt
          updatedAt
          description
          logUrl
          environmentUrl
          creator { login }
        }
      }
    }
  }
}
""".strip()


@dataclass
class _Item:
    """A deployment being processed this cycle."""

    deployment: dict[str, Any]
    statuses: list[dict[str, Any]] | None = None
    etag: str | None = None
    statuses_url: str = ""
    previous: OpenDeployment | None = None
    #: Its statuses answered 404: the deployment was deleted, there is nothing left to follow.
    gone: bool = False


def _graphql_status(node: Mapping[str, Any]) -> dict[str, Any]:
    """A GraphQL DeploymentStatus in the REST shape the mapping reads."""
    state = node.get("state")
    creator = node.get("creator")
    return {
        "state": state.lower() if isinstance(state, str) else state,
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "description": node.get("description"),
        "log_url": node.get("logUrl"),
        "target_url": node.get("logUrl"),
        "environment_url": node.get("environmentUrl"),
        "creator": {"login": creator.get("login")} if isinstance(creator, Mapping) else None,
    }


class DeploymentWalker(RepoWalker):
    """Polls one repository in deployments mode; kept across cycles for its caches."""

    def __init__(
        self,
        client: GitHubClient,
        lookups: Lookups,
        *,
        use_graphql: bool,
        **args: Unpack[WalkerArgs],
    ) -> None:
        super().__init__(client, lookups, **args)
        self.use_graphql = use_graphql
        #: Statuses last read per deployment with their ETag, so a 304 can still be mapped.
        self._statuses: LRU[int, tuple[str, list[dict[str, Any]]]] = LRU(2000)

    # -- the cycle ---------------------------------------------------------------------------------
    def poll(
        self, cursor: Cursor | None, *, now: datetime, lookback: timedelta, overlap: timedelta
    ) -> Iterator[Page]:
        """One incremental cycle (see the module docstring)."""
        stored = DeploymentsCursor.resume(
            cursor, scope=self.scope, log_name="github", target=self.repo.full_name
        )
        state = stored or DeploymentsCursor(now - lookback, scope=self.scope)
        walk = self._walk(state, now=now, overlap=overlap)
        yield from cursor_pages(walk, state.sealed, cursor, order=lifecycle_order)

    def _walk(
        self, state: DeploymentsCursor, *, now: datetime, overlap: timedelta
    ) -> Iterator[list[DeployEvent]]:
        """The cycle's events, yielded where ``state`` covers exactly what was yielded so far."""
        floor = state.mark - overlap
        new_items, list_etag = self._discover(state, floor)
        # Open deployments first: one page whose cursor keeps the old mark and list ETag.
        rechecked: dict[int, _Item] = {}
        for dep_id, entry in state.opened():
            item = self._recheck(dep_id, entry)
            if item is not None:
                rechecked[dep_id] = item
        events = self._process(rechecked, state, hold=True)
        if not new_items:
            state.etag = list_etag
        self._prune(state, now=now, overlap=overlap)
        yield events
        # New deployments oldest first, in chunks: each page's cursor covers that chunk, so a cycle
        # cut short (quota, shutdown) resumes after the last chunk it stored.
        ordered = sorted(
            new_items.values(), key=lambda i: (i.deployment["created_at"], i.deployment["id"])
        )
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            self._fetch_new_statuses(chunk)
            events = self._process({i.deployment["id"]: i for i in chunk}, state, hold=True)
            ceiling = self.client.policy.mark_ceiling()
            for item in chunk:
                created = parse_timestamp(item.deployment["created_at"])
                if not state.advance(created, ceiling=ceiling):
                    url = self.client.display(f"/repos/{self.repo.full_name}/deployments")
                    self.client.policy.future_item(url=url, item=item.deployment["id"], at=created)
            if start + _CHUNK >= len(ordered):
                state.etag = list_etag
            self._prune(state, now=now, overlap=overlap)
            yield events

    def _discover(
        self, state: DeploymentsCursor, floor: datetime
    ) -> tuple[dict[int, _Item], str | None]:
        """New deployments since ``floor`` (page 1 conditional) and the list's new ETag."""
        items: dict[int, _Item] = {}
        list_etag = state.etag
        url = f"/repos/{self.repo.full_name}/deployments"
        known = state.known()
        for index, page in enumerate(self.client.pages(url, {"per_page": 100}, etag=state.etag)):
            if page.not_modified:
                break
            if index == 0:
                list_etag = page.etag
            if self._collect(page.data, page.url, floor, items, skip=known):
                break
        return items, list_etag

    def _prune(self, state: DeploymentsCursor, *, now: datetime, overlap: timedelta) -> None:
        for dropped in state.forget(
            now=now, overlap=overlap, max_open=self.max_open, max_age=self.open_max_age
        ):
            self._log.info(
                "github.open_deployment_dropped", deployment=dropped, reason="too old or too many"
            )

    def backfill(self, since: datetime, until: datetime) -> Iterator[Page]:
        """Every event of deployments created in ``[since, until)``, oldest first, without cursor."""
        items: dict[int, _Item] = {}
        url = f"/repos/{self.repo.full_name}/deployments"
        for page in self.client.pages(url, {"per_page": 100}):
            kept: dict[int, _Item] = {}
            older = self._collect(page.data, page.url, since, kept, skip=set())
            items.update(
                {
                    k: v
                    for k, v in kept.items()
                    if parse_timestamp(v.deployment["created_at"]) < until
                }
            )
            if older:
                break
        ordered = sorted(
            items.values(), key=lambda i: (i.deployment["created_at"], i.deployment["id"])
        )
        scratch = DeploymentsCursor(since, scope=self.scope)

        def walk() -> Iterator[list[DeployEvent]]:
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                self._fetch_new_statuses(chunk)
                events = self._process({i.deployment["id"]: i for i in chunk}, scratch, hold=True)
                yield [e for e in events if since <= e.happened_at < until]

        yield from backfill_pages(walk(), order=lifecycle_order)

    # -- steps -------------------------------------------------------------------------------------
    def _collect(
        self, data: Any, url: str, floor: datetime, items: dict[int, _Item], *, skip: set[int]
    ) -> bool:
        """Take the page's deployments at or after ``floor``; True once an older one was met."""
        if not isinstance(data, list):
            self._log.warning(
                "github.malformed_response", url=url, reason="deployments is not a list"
            )
            msg = f"GitHub sent a deployments page that is not a list: {url}"
            raise MalformedResponse(msg, url=url)
        for raw in data:
            problem = deployment_problem(raw)
            if problem:
                self._log.warning("github.malformed_item", url=url, reason=f"deployment: {problem}")
                continue
            if parse_timestamp(raw["created_at"]) < floor:
                return True
            if raw["id"] in skip or raw["id"] in items:
                continue
            items[raw["id"]] = _Item(deployment=raw)
        return False

    def _statuses_url(self, dep_id: int) -> str:
        return f"/repos/{self.repo.full_name}/deployments/{dep_id}/statuses"

    def _fetch_new_statuses(self, items: list[_Item]) -> None:
        """Statuses of deployments read for the first time: batched over GraphQL when worth it."""
        if self.use_graphql and len(items) >= 2:  # noqa: PLR2004 - one REST call is as cheap as GraphQL
            with_node = [i for i in items if isinstance(i.deployment.get("node_id"), str)]
            for start in range(0, len(with_node), _GRAPHQL_BATCH):
                self._graphql_statuses(with_node[start : start + _GRAPHQL_BATCH])
        for item in items:
            if item.statuses is None:
                self._rest_statuses(item, etag=None)

    def _graphql_statuses(self, batch: list[_Item]) -> None:
        ids = [i.deployment["node_id"] for i in batch]
        try:
            response = self.client.graphql(GRAPHQL_STATUSES, {"ids": ids})
        except (NotFound, MalformedResponse, TransientError) as exc:
            self._log.info(
                "github.graphql_unavailable",
                reason=graphql_unavailable_reason(exc),
                fallback="rest",
            )
            if isinstance(exc, NotFound):
                self.use_graphql = False
            return
        data = response.data.get("data") if isinstance(response.data, Mapping) else None
        nodes = data.get("nodes") if isinstance(data, Mapping) else None
        if not isinstance(nodes, list) or len(nodes) != len(batch):
            errors = response.data.get("errors") if isinstance(response.data, Mapping) else None
            self._log.info(
                "github.graphql_unusable",
                url=response.url,
                errors=str(errors)[:300],
                fallback="rest",
            )
            return
        for item, node in zip(batch, nodes, strict=True):
            if not isinstance(node, Mapping) or node.get("databaseId") != item.deployment["id"]:
                continue
            statuses = node.get("statuses")
            if not isinstance(statuses, Mapping) or not isinstance(statuses.get("nodes"), list):
                continue
            page_info = statuses.get("pageInfo")
            if isinstance(page_info, Mapping) and page_info.get("hasNextPage"):
                continue  # more than a page of statuses: REST reads them all
            item.statuses = [
                _graphql_status(n) for n in statuses["nodes"] if isinstance(n, Mapping)
            ]
            item.statuses_url = response.url

    def _rest_statuses(self, item: _Item, *, etag: str | None) -> bool:
        """Read all statuses over REST; False when unchanged (304) or unreadable."""
        url = self._statuses_url(item.deployment["id"])
        collected: list[dict[str, Any]] = []
        try:
            for index, page in enumerate(self.client.pages(url, {"per_page": 100}, etag=etag)):
                if page.not_modified:
                    cached = self._statuses.get(item.deployment["id"])
                    if cached is not None and cached[0] == etag:
                        item.statuses = cached[1]
                    return False
                if index == 0:
                    item.etag = page.etag
                    item.statuses_url = page.url
                if not isinstance(page.data, list):
                    self._log.warning(
                        "github.malformed_item", url=page.url, reason="statuses is not a list"
                    )
                    return False
                collected += [s for s in page.data if isinstance(s, dict)]
        except NotFound as exc:
            self._log.info("github.deployment_gone", url=exc.url, status=exc.status)
            item.statuses = None
            item.gone = True
            return False
        except MalformedResponse as exc:
            self._log.warning(
                "github.malformed_item", url=exc.url, reason="statuses body is not JSON"
            )
            return False
        item.statuses = collected
        if item.etag:
            self._statuses.put(item.deployment["id"], (item.etag, collected))
        return True

    def _recheck(self, dep_id: int, entry: OpenDeployment) -> _Item | None:
        """Re-read an open deployment; None when nothing changed (and its run did not finish)."""
        deployment = dict(entry.deployment)
        item = _Item(deployment=deployment, previous=entry, etag=entry.etag)
        changed = self._rest_statuses(item, etag=entry.etag)
        if changed or item.gone:
            return item
        if entry.run_id is None:
            return None
        # Statuses unchanged: only the run's end can still change this deployment's outcome.
        run = self.lookups.run(self.repo.full_name, entry.run_id)
        if run is None or run.get("status") != "completed":
            return None
        if item.statuses is None:
            # Known only by its ETag (e.g. after a restart): read the statuses once more.
            self._rest_statuses(item, etag=None)
        return item if item.statuses is not None or item.gone else None

    def _process(
        self, items: dict[int, _Item], state: DeploymentsCursor, *, hold: bool
    ) -> list[DeployEvent]:
        """Map every item with statuses; update the open and done sets."""
        repo = self.repo.full_name
        run_ids: dict[int, int] = {}
        for dep_id, item in items.items():
            if item.gone:
                # Deleted: reading it again would cost a request and a log line every cycle.
                state.open.discard(str(dep_id))
                continue
            if item.statuses is None:
                if item.previous is None:
                    # Unreadable this time: keep it open so the next cycle tries again.
                    state.keep_open(
                        dep_id,
                        OpenDeployment(
                            created_at=item.deployment["created_at"],
                            deployment=snapshot_deployment(item.deployment, self.settings),
                        ),
                    )
                continue
            run_id = run_id_of_statuses(item.statuses) or (
                item.previous.run_id if item.previous else None
            )
            if run_id is not None:
                run_ids[dep_id] = run_id
                envs = self.lookups.run_environments.get((repo, run_id)) or {}
                envs[str(item.deployment["environment"]).strip().lower()] = dep_id
                self.lookups.run_environments.put((repo, run_id), envs)
        if run_ids:
            oldest = min(parse_timestamp(items[d].deployment["created_at"]) for d in run_ids)
            self.lookups.prefetch_runs(repo, run_ids.values(), oldest - timedelta(hours=6))
            if self.settings.parents and self.use_graphql:
                runs = [self.lookups.cached_run(repo, r) for r in set(run_ids.values())]
                self.use_graphql = self.lookups.prefetch_graphs(repo, [r for r in runs if r])
        events: list[DeployEvent] = []
        for dep_id, item in items.items():
            if item.statuses is None:
                continue
            events += self._map(dep_id, item, run_ids.get(dep_id), state, hold=hold)
        return events

    def _map(
        self, dep_id: int, item: _Item, run_id: int | None, state: DeploymentsCursor, *, hold: bool
    ) -> list[DeployEvent]:
        repo = self.repo.full_name
        statuses = item.statuses or []
        run = self.lookups.run(repo, run_id) if run_id is not None else None
        environment = str(item.deployment["environment"]).strip()
        ordered = sorted_statuses([s for s in statuses if _dated(s)])
        last = str(ordered[-1].get("state", "")).lower() if ordered else ""
        rejected = False
        if (
            run is not None
            and run.get("status") == "completed"
            and run.get("conclusion") in ("failure", "cancelled")
            and last not in _SUCCEEDED
        ):
            # Only a deployment that did not succeed can have been rejected by a reviewer.
            rejected = environment.lower() in self.lookups.rejected_environments(repo, run)
        parents = self._parents(item, run, environment) if run is not None else []
        outcome = deployment_events(
            item.deployment,
            statuses,
            repo=self.repo,
            source=self.source,
            settings=self.settings,
            run=run,
            rejected=rejected,
            parents=parents,
            hold_unfinished_run=hold,
        )
        for problem in outcome.problems:
            self._log.warning("github.malformed_item", url=item.statuses_url, reason=problem)
        record_raw(f"deployment {dep_id}", item.deployment, outcome.events)
        record_raw(f"deployment {dep_id} statuses", statuses, outcome.events)
        if run is not None:
            record_raw(f"workflow run {run.get('id')}", run, outcome.events)
        if outcome.terminal:
            state.close(dep_id, item.deployment["created_at"])
        else:
            state.keep_open(
                dep_id,
                OpenDeployment(
                    created_at=item.deployment["created_at"],
                    deployment=snapshot_deployment(item.deployment, self.settings),
                    etag=item.etag,
                    run_id=run_id,
                    awaiting_run=outcome.awaiting_run,
                    waited=outcome.waited,
                ),
            )
        return outcome.events

    def _parents(self, item: _Item, run: Mapping[str, Any], environment: str) -> list[str]:
        if not self.settings.parents:
            return []
        graph = self.lookups.graph(self.repo.full_name, run)
        if not graph:
            return []
        parents: list[str] = []
        sha = item.deployment.get("sha")
        created = parse_timestamp(item.deployment["created_at"])
        for parent_env in sorted(graph.get(environment.lower(), frozenset())):
            if not isinstance(sha, str):
                break
            parent = self.lookups.parent_deployment(
                self.repo.full_name, run=run, environment=parent_env, sha=sha, before=created
            )
            if parent is not None and parent != item.deployment["id"]:
                parents.append(f"gh-deploy-{parent}")
        return parents


def _dated(status: Mapping[str, Any]) -> bool:
    try:
        parse_timestamp(status["created_at"])
    except (KeyError, TypeError, ValueError):
        return False
    return isinstance(status.get("state"), str)

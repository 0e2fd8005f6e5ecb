"""Cached reads that enrich events: workflow runs, their approvals, what workflow files say.

They live as long as the provider (across cycles), so a run, a review log or a workflow file is read
once: a completed run never changes, a file at a commit never changes, and an unfinished run is
re-read with ``If-None-Match`` (free while it has not moved). A failure here never fails a cycle: the
event is emitted with less detail (no parents, the plain failure status) and the log says why.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import structlog

from deploy_fetcher.model import format_rfc3339, parse_timestamp
from deploy_fetcher.providers.github.client import GitHubClient, MalformedResponse, NotFound
from deploy_fetcher.providers.github.graph import (
    EnvironmentGraph,
    may_be_reviewed,
    parse_workflow,
)
from deploy_fetcher.providers.github.mapping import run_problem
from deploy_fetcher.providers.kit import BoundedCache, ByteBudget

__all__ = ["LRU", "Lookups", "graphql_unavailable_reason"]

_log = structlog.get_logger(__name__)

_FILES_PER_QUERY = 50

K = TypeVar("K")
V = TypeVar("V")


def graphql_unavailable_reason(exc: Exception) -> str:
    """Why GraphQL cannot be used, in words that point at the real cause.

    The client's message for a 404 is written for a repository URL ("check the repository name and
    the token's permissions"); on ``/graphql`` a 404 or 403 means this GitHub (an Enterprise Server
    without the API, or a proxy in front of it) does not serve GraphQL, and REST does the work.
    """
    if isinstance(exc, NotFound):
        return (
            f"the GraphQL endpoint {exc.url} answered HTTP {exc.status}: this GitHub or a proxy "
            "in front of it does not serve GraphQL; the same data is read over REST "
            "(set graphql: false to skip the attempt)"
        )
    return str(exc)


class LRU(Generic[K, V]):
    """A small thread-safe least-recently-used map (caches must not grow for months).

    Thread-safe because the scheduler polls the targets of one source in parallel and they share
    the provider's caches.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value under ``key`` (refreshing its age), None when absent."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: K, value: V) -> None:
        """Store ``value``, evicting the oldest entry beyond ``size``."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


#: Memory the workflow runs of one credential may hold (as JSON): a few thousand runs.
RUN_CACHE_BYTES = 16 * 1024 * 1024


class Lookups:
    """Caches of runs, review logs, workflow graphs and run → environment → deployment.

    One per credential, shared by its sources (keys carry the repository): the runs, the largest
    entries, count against one :class:`~deploy_fetcher.providers.kit.ByteBudget` of
    :data:`RUN_CACHE_BYTES`; the other caches hold small values and are bounded by count.
    """

    def __init__(
        self, client: GitHubClient, *, size: int = 2000, budget: ByteBudget | None = None
    ) -> None:
        self.client = client
        self._runs: BoundedCache[tuple[str, int], tuple[str | None, dict[str, Any]]] = BoundedCache(
            budget or ByteBudget(RUN_CACHE_BYTES)
        )
        self._rejections: LRU[tuple[str, int], frozenset[str]] = LRU(size)
        self._graphs: LRU[tuple[str, str, str], EnvironmentGraph | None] = LRU(size)
        #: (repo, workflow path) → (ETag, whether a reviewer can hold its runs), default branch.
        self._reviewable: LRU[tuple[str, str], tuple[str | None, bool]] = LRU(size)
        #: (repo, run id) → environment (lower-case) → deployment id, learned from what was read
        #: (None: asked, and the run made no deployment there).
        self.run_environments: LRU[tuple[str, int], dict[str, int | None]] = LRU(size)

    # -- runs --------------------------------------------------------------------------------------
    def cached_run(self, repo: str, run_id: int) -> dict[str, Any] | None:
        """A run already read, without a request."""
        cached = self._runs.get((repo, run_id))
        return cached[1] if cached else None

    def remember_run(self, repo: str, run: dict[str, Any], etag: str | None = None) -> None:
        """Keep a run read from a list."""
        if run_problem(run) is None:
            self._runs.put((repo, int(run["id"])), (etag, run))

    def run(self, repo: str, run_id: int, *, refresh: bool = True) -> dict[str, Any] | None:
        """A workflow run; completed runs come from the cache, others are re-validated."""
        key = (repo, run_id)
        cached = self._runs.get(key)
        if cached is not None and (cached[1].get("status") == "completed" or not refresh):
            return cached[1]
        url = f"/repos/{repo}/actions/runs/{run_id}"
        etag = cached[0] if cached else None
        try:
            response = self.client.get(url, etag=etag)
        except NotFound as exc:
            _log.info("github.run_unavailable", url=exc.url, status=exc.status)
            return None
        except MalformedResponse as exc:
            _log.warning("github.malformed_item", url=exc.url, reason="run body is not JSON")
            return cached[1] if cached else None
        if response.not_modified and cached is not None:
            return cached[1]
        problem = run_problem(response.data)
        if problem:
            _log.warning("github.malformed_item", url=response.url, reason=f"run: {problem}")
            return cached[1] if cached else None
        self._runs.put(key, (response.etag, response.data))
        return dict(response.data)

    def prefetch_runs(self, repo: str, run_ids: Iterable[int], created_from: datetime) -> None:
        """Read many unknown runs through the repository's run list instead of one call each.

        Worth it for a first poll or a backfill; gives up (the rest are read one by one) once the
        list has cost as many pages as there are runs left to find.
        """
        missing = {r for r in run_ids if (repo, r) not in self._runs}
        if len(missing) < 3:  # noqa: PLR2004 - below three, single reads are as cheap
            return
        params = {"per_page": 100, "created": f">={format_rfc3339(created_from)}"}
        spent = 0
        try:
            for page in self.client.pages(f"/repos/{repo}/actions/runs", params):
                spent += 1
                runs = page.data.get("workflow_runs") if isinstance(page.data, Mapping) else None
                if not isinstance(runs, list):
                    _log.warning(
                        "github.malformed_item", url=page.url, reason="workflow_runs missing"
                    )
                    return
                for run in runs:
                    if isinstance(run, dict) and run.get("id") in missing:
                        self.remember_run(repo, run)
                        missing.discard(run["id"])
                if not missing or spent >= len(missing):
                    return
        except (NotFound, MalformedResponse) as exc:
            _log.info("github.run_list_unavailable", url=getattr(exc, "url", ""), reason=str(exc))

    # -- approvals ---------------------------------------------------------------------------------
    def rejected_environments(self, repo: str, run: Mapping[str, Any]) -> frozenset[str]:
        """Environments (lower-case) whose reviewers rejected the run's deployment."""
        run_id = int(run["id"])
        cached = self._rejections.get((repo, run_id))
        if cached is not None:
            return cached
        url = f"/repos/{repo}/actions/runs/{run_id}/approvals"
        try:
            response = self.client.get(url)
        except (NotFound, MalformedResponse) as exc:
            _log.info("github.approvals_unavailable", url=getattr(exc, "url", url), reason=str(exc))
            return frozenset()
        rejected: set[str] = set()
        if not isinstance(response.data, list):
            _log.warning(
                "github.malformed_item", url=response.url, reason="approvals is not a list"
            )
            return frozenset()
        for review in response.data:
            if not isinstance(review, Mapping) or review.get("state") != "rejected":
                continue
            for env in review.get("environments") or []:
                if isinstance(env, Mapping) and isinstance(env.get("name"), str):
                    rejected.add(env["name"].lower())
        result = frozenset(rejected)
        if run.get("status") == "completed":
            self._rejections.put((repo, run_id), result)
        return result

    def reviewable(self, repo: str, run: Mapping[str, Any]) -> bool | None:
        """Whether the run's workflow has jobs a reviewer can hold; None when not known.

        Read from the workflow file on the default branch and re-validated with ``If-None-Match``
        (free while unchanged), so the failed runs of a workflow without environments cost no
        review-history request each. The file at the run's own commit would be exact, but reading
        it costs as much as the review history it is meant to spare.
        """
        path = run.get("path")
        if not isinstance(path, str) or not path:
            return None
        path = path.split("@", 1)[0]
        cached = self._reviewable.get((repo, path))
        url = f"/repos/{repo}/contents/{quote(path)}"
        try:
            response = self.client.get(url, etag=cached[0] if cached else None)
        except NotFound as exc:
            _log.info("github.workflow_file_unavailable", url=exc.url, status=exc.status)
            return None
        except MalformedResponse as exc:
            _log.warning("github.malformed_item", url=exc.url, reason="workflow file is not JSON")
            return None
        if response.not_modified and cached is not None:
            return cached[1]
        try:
            found = may_be_reviewed(_file_text(response.data))
        except ValueError as exc:
            _log.warning("github.malformed_item", url=response.url, reason=f"workflow file: {exc}")
            return None
        self._reviewable.put((repo, path), (response.etag, found))
        return found

    # -- workflow graphs ---------------------------------------------------------------------------
    @staticmethod
    def _graph_key(repo: str, run: Mapping[str, Any]) -> tuple[str, str, str] | None:
        path = run.get("path")
        sha = run.get("head_sha")
        if not isinstance(path, str) or not isinstance(sha, str) or not path:
            return None
        return (repo, path.split("@", 1)[0], sha)

    def prefetch_graphs(self, repo: str, runs: Iterable[Mapping[str, Any]]) -> bool:
        """Read the workflow files of many runs in GraphQL queries (one per 50 files).

        The REST contents API takes one request per file and commit; GraphQL's ``object(expression:
        "<sha>:<path>")`` takes any number in one query. Returns False when GraphQL could not be
        used (the files are then read over REST, one by one, as needed).
        """
        keys = sorted(
            {k for r in runs if (k := self._graph_key(repo, r)) and k not in self._graphs}
        )
        if len(keys) < 2:  # noqa: PLR2004 - one file is one REST call either way
            return True
        owner, name = repo.split("/", 1)
        for start in range(0, len(keys), _FILES_PER_QUERY):
            batch = keys[start : start + _FILES_PER_QUERY]
            variables: dict[str, Any] = {"owner": owner, "name": name}
            fields = []
            for index, (_repo, path, sha) in enumerate(batch):
                variables[f"e{index}"] = f"{sha}:{path}"
                fields.append(
                    f"f{index}: object(expression: $e{index}) {{ ... on Blob {{ text }} }}"
                )
            params = ", ".join(f"$e{i}: String!" for i in range(len(batch)))
            query = (
                f"query Workflows($owner: String!, $name: String!, {params}) "
                f"{{ repository(owner: $owner, name: $name) {{ {' '.join(fields)} }} }}"
            )
            try:
                response = self.client.graphql(query, variables)
            except (NotFound, MalformedResponse) as exc:
                _log.info(
                    "github.graphql_unavailable",
                    reason=graphql_unavailable_reason(exc),
                    fallback="rest",
                )
                return False
            data = response.data.get("data") if isinstance(response.data, Mapping) else None
            found = data.get("repository") if isinstance(data, Mapping) else None
            if not isinstance(found, Mapping):
                _log.info("github.graphql_unusable", url=response.url, fallback="rest")
                return False
            for index, key in enumerate(batch):
                blob = found.get(f"f{index}")
                text = blob.get("text") if isinstance(blob, Mapping) else None
                if not isinstance(text, str):
                    continue  # missing at that commit: REST says why, if asked
                try:
                    self._graphs.put(key, parse_workflow(text))
                except ValueError as exc:
                    _log.warning(
                        "github.malformed_item",
                        url=response.url,
                        reason=f"workflow file {key[1]}: {exc}",
                    )
                    self._graphs.put(key, None)
        return True

    def graph(self, repo: str, run: Mapping[str, Any]) -> EnvironmentGraph | None:
        """The promotion graph of the run's workflow file at the run's commit (None if unreadable)."""
        key = self._graph_key(repo, run)
        if key is None:
            return None
        _repo, path, sha = key
        if key in self._graphs:
            return self._graphs.get(key)
        url = f"/repos/{repo}/contents/{quote(path)}"
        graph: EnvironmentGraph | None = None
        try:
            response = self.client.get(url, {"ref": sha})
            graph = parse_workflow(_file_text(response.data))
        except NotFound as exc:
            _log.info("github.workflow_file_unavailable", url=exc.url, status=exc.status)
        except (ValueError, MalformedResponse) as exc:
            _log.warning(
                "github.malformed_item",
                url=self.client.display(url),
                reason=f"workflow file: {exc}",
            )
        self._graphs.put(key, graph)
        return graph

    def parent_deployment(
        self,
        repo: str,
        *,
        run: Mapping[str, Any],
        environment: str,
        sha: str,
        before: datetime,
    ) -> int | None:
        """The deployment of ``environment`` made by the same run (asked for when not already seen)."""
        run_id = int(run["id"])
        envs = self.run_environments.get((repo, run_id)) or {}
        if environment in envs:
            return envs[environment]
        started = run.get("run_started_at") or run.get("created_at")
        not_before = (
            parse_timestamp(started) - timedelta(minutes=1) if isinstance(started, str) else None
        )
        url = f"/repos/{repo}/deployments"
        try:
            response = self.client.get(
                url, {"sha": sha, "environment": environment, "per_page": 10}
            )
        except (NotFound, MalformedResponse) as exc:
            _log.info("github.parent_lookup_failed", url=getattr(exc, "url", url), reason=str(exc))
            return None
        best: tuple[datetime, int] | None = None
        for item in response.data if isinstance(response.data, list) else []:
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), int):
                continue
            try:
                created = parse_timestamp(item["created_at"])
            except (KeyError, TypeError, ValueError):
                continue
            if created > before or (not_before is not None and created < not_before):
                continue
            if best is None or created > best[0]:
                best = (created, item["id"])
        found = best[1] if best is not None else None
        self.run_environments.put((repo, run_id), {**envs, environment: found})
        return found


def _file_text(data: Any) -> str:
    if not isinstance(data, Mapping) or not isinstance(data.get("content"), str):
        msg = "contents answer without content"
        raise ValueError(msg)  # noqa: TRY004 - an unusable file, whatever its shape
    if data.get("encoding", "base64") != "base64":
        return str(data["content"])
    try:
        return base64.b64decode(data["content"]).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        msg = f"content is not base64 text: {exc}"
        raise ValueError(msg) from None

"""Slow-changing lists read once and reused, so an idle cycle does not pay for them again.

Environments and definitions are kept for ``discovery_interval`` (a renamed environment shows up within
it); a build's number, commit, branch and requester never change, so builds are kept until the cache
is full, cut down to the fields the mapping reads. One catalog serves every source of a client
(organization and credential), and the scheduler polls projects in parallel threads, so the caches
take a lock.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog

from deploy_fetcher.providers.azure_devops.mapping import build_index
from deploy_fetcher.providers.azure_devops.selection import PipelineFilter, match_environment

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from datetime import datetime, timedelta

    from deploy_fetcher.providers.azure_devops.client import AzureDevOpsClient

__all__ = ["Catalog", "Environment"]

_BUILD_CACHE: Final = 2000
#: Build ids per ``buildIds=`` request: keeps the URL short.
_IDS_PER_REQUEST: Final = 100
#: What makes a ``pipelines`` entry a glob rather than a name (``fnmatch``'s special characters).
_GLOB: Final = re.compile(r"[*?\[]")

_log = structlog.get_logger(__name__)


#: The fields of a build the mapping reads (a build is tens of KiB with links, logs and plans).
_BUILD_FACTS: Final = {
    "id": None,
    "buildNumber": None,
    "sourceVersion": None,
    "sourceBranch": None,
    "requestedFor": ("displayName", "uniqueName"),
    "repository": ("id", "name", "type"),
    "definition": ("id", "name"),
    "_links": ("web",),
}


def _facts(build: Mapping[str, Any]) -> dict[str, Any]:
    """``build`` cut down to :data:`_BUILD_FACTS`."""
    out: dict[str, Any] = {}
    for key, inner in _BUILD_FACTS.items():
        value = build.get(key)
        if value is None:
            continue
        if inner is not None and isinstance(value, Mapping):
            value = {k: value[k] for k in inner if k in value}
        out[key] = value
    return out


@dataclass(frozen=True)
class Environment:
    """One environment of a project."""

    id: int
    name: str


@dataclass(frozen=True)
class _Definitions:
    """One project's definition list as read at ``read_at``, indexed by name."""

    read_at: datetime
    items: list[tuple[int, str]]
    by_name: dict[str, list[int]]

    @classmethod
    def of(cls, read_at: datetime, items: list[tuple[int, str]]) -> _Definitions:
        by_name: dict[str, list[int]] = {}
        for def_id, name in items:
            by_name.setdefault(name, []).append(def_id)
        return cls(read_at, items, by_name)

    def select(self, selection: PipelineFilter) -> list[int]:
        """Ids the selection covers: a plain name is looked up, only a glob reads the whole list."""
        found = {d for d, _name in self.items if d in selection.ids}
        for pattern in selection.patterns:
            if _GLOB.search(pattern):
                found.update(d for d, name in self.items if fnmatch.fnmatchcase(name, pattern))
            else:
                found.update(self.by_name.get(pattern, ()))
        return sorted(found)


class Catalog:
    """Cached reads of slow-changing lists, per project, shared by the sources of one client.

    Thousands of sources of one project each name their pipeline: matching each source's
    selection against the whole definition list on every poll cost time in the square of the
    number of pipelines (13 % of the daemon's samples at 3 333 pipelines). The list is indexed by
    name once per read, and each selection's answer is kept until the list is read again.
    """

    def __init__(
        self,
        client: AzureDevOpsClient,
        *,
        ttl: timedelta,
        clock: Callable[[], datetime],
        page_size: int,
        max_pages: int,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._page_size = page_size
        self._max_pages = max_pages
        self._environments: dict[str, tuple[datetime, list[Environment]]] = {}
        self._definitions: dict[str, _Definitions] = {}
        #: Each selection's ids, with the list read they were taken from.
        self._selected: dict[tuple[str, PipelineFilter], tuple[_Definitions, list[int]]] = {}
        self._builds: OrderedDict[int, Mapping[str, Any]] = OrderedDict()
        self._lock = threading.RLock()

    def _fresh(self, stamp: datetime) -> bool:
        return self._clock() - stamp < self._ttl

    def environments(self, project: str, patterns: Sequence[str]) -> list[Environment]:
        """The project's environments whose names pass ``patterns``."""
        with self._lock:
            return self._environments_locked(project, patterns)

    def _environments_locked(self, project: str, patterns: Sequence[str]) -> list[Environment]:
        cached = self._environments.get(project)
        if cached is None or not self._fresh(cached[0]):
            found: list[Environment] = []
            for page in self._client.environments(
                project, page_size=self._page_size, max_pages=self._max_pages
            ):
                for item in page.items:
                    env_id, name = item.get("id"), item.get("name")
                    if isinstance(env_id, int) and isinstance(name, str) and name:
                        found.append(Environment(env_id, name))
                    else:
                        _log.warning(
                            "azure_devops.malformed_item", url=page.url, item=repr(item)[:200]
                        )
            cached = (self._clock(), found)
            self._environments[project] = cached
        return [env for env in cached[1] if match_environment(patterns, env.name)]

    def definition_ids(self, project: str, selection: PipelineFilter) -> list[int] | None:
        """Ids of the selected pipeline definitions; None when every definition is selected."""
        if selection.everything:
            return None
        if selection.ids_only:
            return sorted(selection.ids)
        with self._lock:
            return self._definition_ids_locked(project, selection)

    def _definition_ids_locked(self, project: str, selection: PipelineFilter) -> list[int]:
        cached = self._definitions.get(project)
        if cached is None or not self._fresh(cached.read_at):
            found: list[tuple[int, str]] = []
            for page in self._client.definitions(
                project, page_size=self._page_size, max_pages=self._max_pages
            ):
                for item in page.items:
                    def_id, name = item.get("id"), item.get("name")
                    if isinstance(def_id, int) and isinstance(name, str):
                        found.append((def_id, name))
            cached = _Definitions.of(self._clock(), found)
            self._definitions[project] = cached
        kept = self._selected.get((project, selection))
        if kept is not None and kept[0] is cached:  # the same read (a clock may stand still)
            return list(kept[1])
        ids = cached.select(selection)
        self._selected[(project, selection)] = (cached, ids)
        return list(ids)

    def builds(self, project: str, build_ids: Iterable[int]) -> dict[int, Mapping[str, Any]]:
        """Builds by id, from the cache or in batches of ``buildIds=`` requests."""
        wanted = sorted(set(build_ids))
        with self._lock:
            missing = [b for b in wanted if b not in self._builds]
        for start in range(0, len(missing), _IDS_PER_REQUEST):
            chunk = missing[start : start + _IDS_PER_REQUEST]
            pager = self._client.builds(
                project,
                build_ids=chunk,
                query_order="queueTimeDescending",
                page_size=len(chunk),
                max_pages=self._max_pages,
            )
            for page in pager:
                for build_id, build in build_index(page.items).items():
                    self.remember_build(build_id, build)
        with self._lock:
            return {b: self._builds[b] for b in wanted if b in self._builds}

    def remember_build(self, build_id: int, build: Mapping[str, Any]) -> None:
        """Keep a build's immutable facts (number, commit, branch, requester), nothing else."""
        kept = _facts(build)
        with self._lock:
            self._builds[build_id] = kept
            self._builds.move_to_end(build_id)
            while len(self._builds) > _BUILD_CACHE:
                self._builds.popitem(last=False)

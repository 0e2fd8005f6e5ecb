"""Pipeline runs (builds) and their timelines: mode ``stages``, and approvals in mode ``environments``.

New runs are found by queue time (``queryOrder=queueTimeAscending&minTime=mark − overlap``): a run's
queue time never changes, so that list is gap-free for discovery. What happens to a run afterwards
does not move it in that list, so every run not yet completed stays in the open set and is fetched
again (all of them in one ``buildIds=`` request) until it completes; only runs that are new or still
open cost a timeline request.

Runs are visited oldest first and the state is consistent after each one (the mark at the queue
time of the last new run visited), so each run's events can be stored with the state that covers
them: a poll cut short resumes after the last run it stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import structlog

from deploy_fetcher.model import DeployEvent, parse_timestamp
from deploy_fetcher.providers.azure_devops.mapping import Naming, StageTarget, stage_events
from deploy_fetcher.providers.kit import record_raw

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import TypeAlias

    from deploy_fetcher.providers.azure_devops.client import AzureDevOpsClient
    from deploy_fetcher.providers.kit import Watermark

__all__ = ["RunWalk", "RunWalker"]

_IDS_PER_REQUEST: Final = 100
#: Completed builds remembered inside the overlap window; beyond this the oldest are forgotten.
_MAX_DONE: Final = 2000
_NEVER: Final = datetime.min.replace(tzinfo=UTC)

_log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    #: Given a pipeline definition id, the function that maps its stages to environments.
    Resolver: TypeAlias = Callable[[int | None], Callable[[str, str | None], StageTarget | None]]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _queue_order(build: Mapping[str, Any]) -> tuple[bool, datetime, int]:
    """Oldest queued first (ids break ties; a build without a queue time comes first)."""
    queued = _time(build.get("queueTime"))
    return (queued is not None, queued or _NEVER, int(build.get("id") or 0))


@dataclass
class RunWalk:
    """What one walk needs to know beyond the run state."""

    project: str
    naming: Naming
    resolver: Resolver
    definitions: list[int] | None
    gates_only: bool = False
    parents: bool = True
    #: Mode environments: completed runs found by discovery are read only if they finished after this.
    completed_after: datetime | None = None
    #: False: track runs (open / done) without reading timelines; no events.
    timelines: bool = True
    #: Filled by a poll: runs seen open before that completed now, with their queue times.
    completed: dict[int, datetime] = field(default_factory=dict)


class RunWalker:
    """Turns runs into events, keeping the run state (a :class:`Watermark`) up to date."""

    def __init__(
        self,
        client: AzureDevOpsClient,
        *,
        page_size: int,
        max_pages: int,
        open_max: int,
        open_max_age: timedelta,
    ) -> None:
        self._client = client
        self._page_size = page_size
        self._max_pages = max_pages
        self._open_max = open_max
        self._open_max_age = open_max_age

    def _definition_id(self, build: Mapping[str, Any]) -> int | None:
        definition = build.get("definition")
        value = definition.get("id") if isinstance(definition, dict) else None
        return value if isinstance(value, int) else None

    def _events(self, walk: RunWalk, build: Mapping[str, Any]) -> list[DeployEvent]:
        build_id = build["id"]
        records = self._client.timeline(walk.project, build_id)
        events, problems = stage_events(
            build,
            records,
            naming=walk.naming,
            resolve=walk.resolver(self._definition_id(build)),
            gates_only=walk.gates_only,
            parents=walk.parents,
        )
        url = self._client.project(walk.project, f"_apis/build/builds/{build_id}/timeline")
        for problem in problems:
            if problem.malformed:
                _log.warning("azure_devops.malformed_item", url=url, reason=problem.reason)
        record_raw(f"build {build_id}", build, events)
        record_raw(f"build {build_id} timeline", records, events)
        return events

    def _discover(
        self, walk: RunWalk, state: Watermark, overlap: timedelta
    ) -> dict[int, Mapping[str, Any]]:
        """Runs queued since the mark (minus the overlap) that are not known to be done."""
        found: dict[int, Mapping[str, Any]] = {}
        pager = self._client.builds(
            walk.project,
            definitions=walk.definitions or (),
            min_time=state.mark - overlap,
            query_order="queueTimeAscending",
            page_size=self._page_size,
            max_pages=self._max_pages,
        )
        for page in pager:
            for build in page.items:
                build_id, queued = build.get("id"), _time(build.get("queueTime"))
                if not isinstance(build_id, int) or queued is None:
                    _log.warning(
                        "azure_devops.malformed_item", url=page.url, item=repr(build)[:200]
                    )
                    continue
                if str(build_id) not in state.done:
                    found[build_id] = build
        if pager.truncated:
            url = self._client.project(walk.project, "_apis/build/builds")
            _log.warning("azure_devops.walk_truncated", url=url, pages=pager.pages)
        return found

    def _reopen(self, walk: RunWalk, build_ids: list[int]) -> dict[int, Mapping[str, Any]]:
        """The current state of open runs, in batches of ``buildIds=``."""
        found: dict[int, Mapping[str, Any]] = {}
        for start in range(0, len(build_ids), _IDS_PER_REQUEST):
            chunk = build_ids[start : start + _IDS_PER_REQUEST]
            for page in self._client.builds(
                walk.project,
                build_ids=chunk,
                query_order="queueTimeAscending",
                page_size=len(chunk),
                max_pages=self._max_pages,
            ):
                for build in page.items:
                    if isinstance(build.get("id"), int):
                        found[build["id"]] = build
        return found

    def poll(
        self, walk: RunWalk, state: Watermark, *, now: datetime, overlap: timedelta
    ) -> Iterator[list[DeployEvent]]:
        """Yield the events of open, then new runs (one list per run), updating ``state`` in place.

        After each yield the state covers exactly the runs visited so far.
        """
        if walk.definitions is not None and not walk.definitions:
            return
        found = self._discover(walk, state, overlap)
        reopen = [int(k) for k in state.open.oldest_first() if k.isdigit() and int(k) not in found]
        for build in sorted(self._reopen(walk, reopen).values(), key=_queue_order):
            yield self._visit(walk, state, build, now=now)
        ceiling = self._client.policy.mark_ceiling()
        for build in sorted(found.values(), key=_queue_order):
            known = str(build["id"]) in state.open
            events = self._visit(walk, state, build, now=now)
            queued = _time(build.get("queueTime"))
            if queued is not None and not state.advance(queued, ceiling=ceiling) and not known:
                url = self._client.project(walk.project, "_apis/build/builds")
                self._client.policy.future_item(url=url, item=build.get("id"), at=queued)
            yield events
        for dropped in state.prune(
            now=now,
            overlap=overlap,
            open_max=self._open_max,
            open_max_age=self._open_max_age,
            done_max=_MAX_DONE,
        ):
            _log.warning("azure_devops.open_set_dropped", project=walk.project, run=dropped)

    def _visit(
        self, walk: RunWalk, state: Watermark, build: Mapping[str, Any], *, now: datetime
    ) -> list[DeployEvent]:
        build_id = str(build["id"])
        status = build.get("status")
        queued = _time(build.get("queueTime")) or now
        completed = status == "completed"
        tracked = build_id in state.open
        if status == "notStarted":
            state.open.add(build_id, now)
            return []
        finished = _time(build.get("finishTime"))
        skip = not walk.timelines or (
            walk.gates_only
            and completed
            and not tracked
            and (
                walk.completed_after is None or finished is None or finished < walk.completed_after
            )
        )
        events = [] if skip else self._events(walk, build)
        if completed:
            if tracked:
                walk.completed[int(build_id)] = queued
            state.open.discard(build_id)
            state.done.add(build_id, queued)
        else:
            state.open.add(build_id, now)
        return events

    def backfill(
        self, walk: RunWalk, *, since: datetime, until: datetime
    ) -> Iterator[list[DeployEvent]]:
        """Events of the runs queued in ``[since, until)`` (one list per run)."""
        if walk.definitions is not None and not walk.definitions:
            return
        pager = self._client.builds(
            walk.project,
            definitions=walk.definitions or (),
            min_time=since,
            max_time=until,
            query_order="queueTimeAscending",
            page_size=self._page_size,
            max_pages=self._max_pages,
        )
        for page in pager:
            for build in page.items:
                if not isinstance(build.get("id"), int) or build.get("status") == "notStarted":
                    continue
                yield self._events(walk, build)

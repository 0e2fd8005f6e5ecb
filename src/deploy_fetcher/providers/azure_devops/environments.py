"""Mode ``environments``: each environment's deployment records, plus the approvals they cannot show.

Deployment records have no time filter and come newest first, so each environment is paged until
the walk passes both its high-water record id (and every open record) and the overlap window behind
its newest record time; the ids inside that window are remembered so they are not emitted twice.
Each page is stored with a cursor that keeps the old mark as its floor and the token of the next
page; a walk cut short (at ``max_pages``, or by a stop between two pages) is read on from there
first the next cycle, before walking from the newest record again, so a backlog longer than one
walk takes several cycles but loses nothing.
Azure DevOps may list a job's record only when its whole run ends, with an id below the high-water
mark: so the runs of the pipelines the records revealed are followed too (see :mod:`.runs`), and when
one seen running ends, the walk reaches back to its queue time for its records. Those run timelines
also give what records never show: a stage that waited for an approval, or was rejected before a
job ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import structlog

from deploy_fetcher.model import parse_timestamp
from deploy_fetcher.providers.azure_devops.cursor import EnvironmentsCursor, EnvMark
from deploy_fetcher.providers.azure_devops.mapping import (
    Naming,
    Skip,
    record_events,
)
from deploy_fetcher.providers.azure_devops.runs import RunWalk, RunWalker
from deploy_fetcher.providers.azure_devops.selection import PipelineFilter, StageResolver
from deploy_fetcher.providers.kit import Watermark, record_raw

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from deploy_fetcher.model import DeployEvent
    from deploy_fetcher.providers.azure_devops.catalog import Catalog, Environment
    from deploy_fetcher.providers.azure_devops.client import AzureDevOpsClient
    from deploy_fetcher.providers.azure_devops.config import AzureDevOpsConfig

__all__ = ["EnvironmentWalker"]

#: Ids of records inside the overlap window remembered per environment (to not emit them again).
_MAX_RECENT: Final = 500
#: Azure DevOps writes ``0001-01-01T00:00:00`` for "never".
_FIRST_REAL_YEAR: Final = 1971

_log = structlog.get_logger(__name__)


def _time(record: Mapping[str, Any], key: str) -> datetime | None:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        return None
    return parsed if parsed.year >= _FIRST_REAL_YEAR else None


def record_time(record: Mapping[str, Any]) -> datetime | None:
    """When a record last changed: its finish, else start, else queue time."""
    return _time(record, "finishTime") or _time(record, "startTime") or _time(record, "queueTime")


@dataclass
class _EnvWalk:
    """One environment's walk: the records to map, the new mark, and where it was cut short."""

    env: Environment
    mark: EnvMark
    records: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)
    resume: str | None = None


def _merged(ahead: EnvMark, behind: EnvMark) -> EnvMark:
    """The mark once a walk cut short has read on down to its floor: both walks' records."""
    recent = sorted(set(ahead.recent) | set(behind.recent))[-_MAX_RECENT:]
    seen = [when for when in (ahead.seen_at, behind.seen_at) if when is not None]
    return EnvMark(max(ahead.hwm, behind.hwm), max(seen) if seen else None, recent)


def _recent(mark: EnvMark, read: list[tuple[int, datetime | None]], overlap: timedelta) -> None:
    """The ids read inside the overlap window behind the newest record time (emitted already)."""
    if mark.seen_at is not None:
        horizon = mark.seen_at - overlap
        recent = sorted(rid for rid, when in read if when is not None and when >= horizon)
        mark.recent = recent[-_MAX_RECENT:]


def _owner(record: Mapping[str, Any]) -> int | None:
    owner = record.get("owner")
    value = owner.get("id") if isinstance(owner, dict) else None
    return value if isinstance(value, int) else None


class _Window:
    """Which records of a newest-first walk are new, and when the walk has gone deep enough.

    New: above the high-water id, still open, of a run that ended late (``late``: run id → queue
    time), or inside the overlap window behind the newest record time and not emitted yet.
    """

    def __init__(
        self,
        mark: EnvMark,
        *,
        open_ids: set[int],
        start: datetime,
        overlap: timedelta,
        late: Mapping[int, datetime] | None = None,
    ) -> None:
        self.first = mark.hwm == 0
        self.hwm = mark.hwm
        self.open_ids = open_ids
        self.recent = set(mark.recent)
        self.start = start
        self.overlap = overlap
        self.late = dict(late or {})
        self.floor = min([mark.hwm, *open_ids])
        self.since = mark.seen_at - overlap if mark.seen_at is not None else start
        #: How far back the walk goes: the overlap window, or the queue time of a run that ended.
        self.depth = min([self.since, *self.late.values()])

    def keep(self, record_id: int, when: datetime | None, owner: int | None) -> bool:
        """Whether a record is new (see the class docstring)."""
        if self.first:
            return when is not None and when >= self.start
        if record_id > self.hwm or record_id in self.open_ids:
            return True
        if owner is not None and owner in self.late and record_id not in self.recent:
            return True
        return when is not None and when >= self.since and record_id not in self.recent

    def passed(self, page: list[tuple[int, datetime | None]]) -> bool:
        """Whether a page reached below both the known ids and the time window."""
        times = [when for _, when in page if when is not None]
        oldest = min(times) if times else None
        if self.first:
            return oldest is not None and oldest < self.start
        ids = [record_id for record_id, _ in page]
        return bool(ids) and min(ids) <= self.floor and (oldest is None or oldest < self.depth)


class EnvironmentWalker:
    """Polls and backfills one project in mode ``environments``."""

    def __init__(
        self,
        client: AzureDevOpsClient,
        catalog: Catalog,
        runs: RunWalker,
        config: AzureDevOpsConfig,
    ) -> None:
        self._client = client
        self._catalog = catalog
        self._runs = runs
        self._config = config
        self._pipelines = PipelineFilter.parse(config.pipelines)

    # -- records -----------------------------------------------------------------------------------
    def _keep_pipeline(self, record: Mapping[str, Any]) -> bool:
        definition = record.get("definition")
        if not isinstance(definition, dict):
            return True  # malformed: let the mapping report it
        def_id, name = definition.get("id"), definition.get("name")
        return self._pipelines.matches(
            def_id if isinstance(def_id, int) else None, name if isinstance(name, str) else None
        )

    def _walk(
        self,
        project: str,
        env: Environment,
        mark: EnvMark,
        window: _Window,
        *,
        start: str | None = None,
    ) -> Iterator[_EnvWalk]:
        """Page one environment's records (from ``start``) down to what the mark already covers.

        Yields after each page: that page's records to map, the mark of everything read so far, and
        the token of the next page (None once the walk reached the mark, or the list ended).
        """
        policy = self._client.policy
        ceiling = policy.mark_ceiling()
        walk = _EnvWalk(env, EnvMark(mark.hwm, mark.seen_at))
        read: list[tuple[int, datetime | None]] = []
        pager = self._client.environment_records(
            project,
            env.id,
            page_size=self._config.page_size,
            max_pages=self._config.max_pages,
            start=start,
        )
        passed = False
        for page in pager:
            walk.records = []
            page_read: list[tuple[int, datetime | None]] = []
            for record in page.items:
                record_id, when = record.get("id"), record_time(record)
                if not isinstance(record_id, int):
                    _log.warning(
                        "azure_devops.malformed_item", url=page.url, item=repr(record)[:200]
                    )
                    continue
                page_read.append((record_id, when))
                in_time = walk.mark.advance(record_id, when, ceiling=ceiling)
                if window.keep(record_id, when, _owner(record)) and self._keep_pipeline(record):
                    walk.records.append((record, page.url))
                    if not in_time and when is not None:
                        policy.future_item(url=page.url, item=record_id, at=when)
            read += page_read
            passed = window.passed(page_read)
            walk.resume = None if passed else page.token
            _recent(walk.mark, read, window.overlap)
            yield walk
            if passed:
                return
        if pager.truncated:
            walk.resume = pager.resume
            walk.records = []
            _log.warning(
                "azure_devops.walk_truncated",
                project=project,
                environment=env.name,
                pages=pager.pages,
                resumed=start is not None,
            )
            yield walk

    def _catch_up(
        self,
        project: str,
        env: Environment,
        mark: EnvMark,
        window: Callable[[EnvMark], _Window],
    ) -> Iterator[tuple[list[tuple[Mapping[str, Any], str]], EnvMark]]:
        """This cycle's walk of one environment, page by page, with the mark to store after each.

        A walk not finished before (cut short, or stopped between two stored pages) is read on first,
        down to its floor, with the old mark kept as the floor and the token moved along; then the
        marks merge and the walk from the newest record follows, its progress kept as ``ahead`` of
        the merged mark until it reaches it.
        """
        if mark.resume is not None and mark.ahead is not None:
            behind: _EnvWalk | None = None
            for behind in self._walk(project, env, mark, window(mark), start=mark.resume):
                if behind.resume is not None:
                    yield behind.records, replace(mark, resume=behind.resume)
            if behind is None or behind.resume is not None:
                return
            records = behind.records
            mark = _merged(mark.ahead, behind.mark)
            yield records, mark
        for walk in self._walk(project, env, mark, window(mark)):
            if walk.resume is None:
                yield walk.records, walk.mark
            else:
                yield walk.records, replace(mark, resume=walk.resume, ahead=replace(walk.mark))

    def _map(  # noqa: PLR0917 - one page of one environment, and where it goes
        self,
        project: str,
        env: Environment,
        records: list[tuple[Mapping[str, Any], str]],
        naming: Naming,
        cursor: EnvironmentsCursor,
        now: datetime,
    ) -> list[DeployEvent]:
        """Map one page of an environment's records (enriched with their runs) into events."""
        owners = {owner for record, _url in records if (owner := _owner(record)) is not None}
        builds = self._catalog.builds(project, owners) if owners else {}
        events: list[DeployEvent] = []
        for record, url in records:
            owner = _owner(record)
            build = builds.get(owner) if owner is not None else None
            mapped = record_events(record, environment=env.name, naming=naming, build=build)
            if isinstance(mapped, Skip):
                if mapped.malformed:
                    _log.warning("azure_devops.malformed_item", url=url, reason=mapped.reason)
                continue
            record_raw(f"environment {env.name} record {record.get('id')}", record, mapped)
            if build is not None:
                record_raw(f"build {owner}", build, mapped)
            events.extend(mapped)
            self._learn(cursor, env, record, now)
        return events

    def _learn(
        self,
        cursor: EnvironmentsCursor,
        env: Environment,
        record: Mapping[str, Any],
        now: datetime,
    ) -> None:
        definition = record.get("definition")
        def_id = definition.get("id") if isinstance(definition, dict) else None
        stage = record.get("stageName")
        if isinstance(def_id, int) and isinstance(stage, str) and stage:
            cursor.learn(def_id, stage, env.id)
        key = f"{env.id}:{record.get('id')}"
        if record.get("result"):
            cursor.open.discard(key)
        else:
            cursor.open.add(key, now)

    # -- gates -------------------------------------------------------------------------------------
    def _resolver(self, project: str, learned: Mapping[str, int]) -> StageResolver:
        every = self._catalog.environments(project, [])
        return StageResolver(
            mapping=self._config.stage_environments,
            pattern=self._config.stage_pattern,
            environments=self._config.environments,
            learned=learned,
            environment_ids={env.name: env.id for env in every},
        )

    # -- entry points ------------------------------------------------------------------------------
    def poll(
        self,
        project: str,
        cursor: EnvironmentsCursor,
        *,
        naming: Naming,
        now: datetime,
        overlap: timedelta,
    ) -> Iterator[list[DeployEvent]]:
        """Yield the gates' events, then events per page of records, updating ``cursor`` in place.

        After each yield the cursor covers exactly what was yielded so far, so the adapter stores it
        with those events. Runs go first: a run seen running that has ended may only now have its
        records listed, below the high-water id, so the record walks look for them (see the module
        docstring).
        """
        tracked = bool(cursor.definitions)
        if tracked:
            yield from self._track_runs(project, cursor, naming=naming, now=now, overlap=overlap)
        late = {int(k): v for k, v in cursor.late.items() if k.isdigit()}
        for env in self._catalog.environments(project, self._config.environments):
            prefix = f"{env.id}:"
            open_ids = {
                int(key[len(prefix) :])
                for key in cursor.open.oldest_first()
                if key.startswith(prefix) and key[len(prefix) :].isdigit()
            }
            mark = cursor.envs.get(str(env.id), EnvMark())
            window = partial(
                _Window, open_ids=open_ids, start=cursor.start, overlap=overlap, late=late
            )
            for records, stored in self._catch_up(project, env, mark, window):
                events = self._map(project, env, records, naming, cursor, now)
                cursor.envs[str(env.id)] = stored
                yield events
        for dropped in cursor.open.prune(
            now, max_size=self._config.open_max, max_age=self._config.open_max_age
        ):
            _log.warning("azure_devops.open_set_dropped", project=project, record=dropped)
        if not tracked and cursor.definitions:
            # The first poll learned from the records which pipelines deploy here.
            yield from self._track_runs(project, cursor, naming=naming, now=now, overlap=overlap)
        if not any(mark.resume for mark in cursor.envs.values()):
            # A walk still catching up has yet to look for the records of runs that ended late.
            cursor.forget_ended(now, overlap)
        cursor.polled_at = now

    def _track_runs(
        self,
        project: str,
        cursor: EnvironmentsCursor,
        *,
        naming: Naming,
        now: datetime,
        overlap: timedelta,
    ) -> Iterator[list[DeployEvent]]:
        """Follow the runs of the pipelines that deploy here: gates' events, and runs that ended."""
        runs = cursor.runs or Watermark(cursor.start)
        gates = RunWalk(
            project=project,
            naming=naming,
            resolver=self._resolver(project, cursor.stage_envs).for_definition,
            definitions=sorted(cursor.definitions),
            gates_only=True,
            parents=False,
            # Runs that ended since the last poll; on the first poll, since the lookback start.
            completed_after=(
                cursor.polled_at - overlap if cursor.polled_at is not None else cursor.start
            ),
            timelines=self._config.gates,
        )
        cursor.runs = runs
        for events in self._runs.poll(gates, runs, now=now, overlap=overlap):
            for run_id, queued in gates.completed.items():
                cursor.note_ended(run_id, queued, now)
            gates.completed.clear()
            yield events

    def backfill(
        self, project: str, *, naming: Naming, since: datetime, until: datetime
    ) -> Iterator[list[DeployEvent]]:
        """Events of the records (and gates) in ``[since, until)``."""
        scratch = EnvironmentsCursor(scope="", start=since)
        for env in self._catalog.environments(project, self._config.environments):
            window = _Window(EnvMark(), open_ids=set(), start=since, overlap=timedelta(0))
            for walk in self._walk(project, env, EnvMark(), window):
                events = self._map(project, env, walk.records, naming, scratch, until)
                yield [e for e in events if since <= e.happened_at < until]
        if self._config.gates and scratch.definitions:
            gates = RunWalk(
                project=project,
                naming=naming,
                resolver=self._resolver(project, scratch.stage_envs).for_definition,
                definitions=sorted(scratch.definitions),
                gates_only=True,
                parents=False,
            )
            for events in self._runs.backfill(gates, since=since, until=until):
                yield [e for e in events if since <= e.happened_at < until]

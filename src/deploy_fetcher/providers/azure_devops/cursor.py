"""The Azure DevOps cursor: what a target has seen, per mode, as plain JSON.

Kept apart from any HTTP so the bookkeeping can be tested alone. Every mode keeps a high-water mark
and re-reads an overlap behind it; modes whose lists cannot show changes to old items also keep an
**open set** of items last seen non-terminal, bounded in size and age so a run that never finishes
cannot grow the cursor forever:

* ``environments``: per environment the highest deployment record id and the newest record time
  (and, after a walk cut short at ``max_pages``, where to resume it); open record keys (``{environmentId}:{recordId}``); what was learned about which stage of which
  pipeline deploys to which environment; and the run state below for approvals and checks;
* ``stages``: the run state — the newest build ``queueTime`` seen, the open builds (not completed),
  and the completed builds inside the overlap window (so they are not fetched again);
* ``releases``: the newest ``lastModifiedOn`` seen (that filter sees every change: no open set).

A cursor carries a version and a digest of the source's selection (mode, pipelines, environments,
stage mapping): a cursor written for another selection is discarded and the target starts over at
``now − lookback``, because it no longer covers what the source asks for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final

from deploy_fetcher.model import format_rfc3339, parse_timestamp

__all__ = [
    "CURSOR_VERSION",
    "CursorMismatch",
    "EnvMark",
    "EnvironmentsCursor",
    "OpenSet",
    "ReleasesCursor",
    "RunsState",
    "StagesCursor",
    "scope_digest",
]

CURSOR_VERSION: Final = 1
#: Completed builds remembered inside the overlap window; beyond this the oldest are forgotten.
_MAX_DONE: Final = 2000
#: Learned (pipeline, stage) → environment pairs kept in an environments cursor.
_MAX_STAGE_ENVS: Final = 1000


class CursorMismatch(ValueError):
    """A stored cursor that cannot be used (another mode, selection or version, or not ours)."""


def scope_digest(scope: str) -> str:
    """A short digest of a source's selection, stored in the cursor."""
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def _millis(value: datetime) -> datetime:
    """Millisecond precision: what a cursor stores, so comparisons survive a round trip."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _when(value: Any) -> datetime:
    if not isinstance(value, str):
        msg = f"not a timestamp: {value!r}"
        raise CursorMismatch(msg)
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        msg = f"not a timestamp: {value!r} ({exc})"
        raise CursorMismatch(msg) from None


@dataclass
class OpenSet:
    """Keys of items last seen in a non-terminal state, with the time each was first seen."""

    items: dict[str, datetime] = field(default_factory=dict)

    def add(self, key: str, now: datetime) -> None:
        """Remember ``key`` (keeping its first-seen time)."""
        self.items.setdefault(key, now)

    def discard(self, key: str) -> None:
        """Forget ``key`` (it reached a terminal state)."""
        self.items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self.items

    def __len__(self) -> int:
        return len(self.items)

    def oldest_first(self) -> list[str]:
        """The keys, oldest first."""
        return sorted(self.items, key=lambda k: (self.items[k], k))

    def prune(self, now: datetime, *, max_size: int, max_age: timedelta) -> list[str]:
        """Drop entries older than ``max_age``, then the oldest beyond ``max_size``; return them."""
        dropped = [k for k, seen in self.items.items() if now - seen > max_age]
        for key in dropped:
            del self.items[key]
        overflow = len(self.items) - max_size
        if overflow > 0:
            for key in self.oldest_first()[:overflow]:
                del self.items[key]
                dropped.append(key)
        return dropped

    def to_json(self) -> dict[str, str]:
        """``{key: first-seen RFC 3339}``."""
        return {k: format_rfc3339(v) for k, v in sorted(self.items.items())}

    @classmethod
    def from_json(cls, data: Any) -> OpenSet:
        """Inverse of :meth:`to_json`."""
        if not isinstance(data, dict):
            msg = "open set is not an object"
            raise CursorMismatch(msg)
        return cls({str(k): _when(v) for k, v in data.items()})


@dataclass
class RunsState:
    """Builds (runs) seen: the queue-time mark, the open ones, the completed ones near the mark."""

    mark: datetime
    open: OpenSet = field(default_factory=OpenSet)
    done: dict[str, datetime] = field(default_factory=dict)

    def remember_done(self, build_id: str, queued: datetime) -> None:
        """A completed build: skip it when the overlap window returns it again."""
        self.open.discard(build_id)
        self.done[build_id] = queued

    def trim_done(self, overlap: timedelta) -> None:
        """Forget completed builds that the overlap window can no longer return."""
        floor = self.mark - overlap
        self.done = {k: v for k, v in self.done.items() if v >= floor}
        if len(self.done) > _MAX_DONE:
            newest = sorted(self.done.items(), key=lambda kv: kv[1])[-_MAX_DONE:]
            self.done = dict(newest)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "mark": format_rfc3339(self.mark),
            "open": self.open.to_json(),
            "done": {k: format_rfc3339(v) for k, v in sorted(self.done.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> RunsState:
        """Inverse of :meth:`to_json`."""
        if not isinstance(data, dict):
            msg = "run state is not an object"
            raise CursorMismatch(msg)
        done = data.get("done", {})
        if not isinstance(done, dict):
            msg = "done is not an object"
            raise CursorMismatch(msg)
        return cls(
            mark=_when(data.get("mark")),
            open=OpenSet.from_json(data.get("open", {})),
            done={str(k): _when(v) for k, v in done.items()},
        )


def _header(data: Any, mode: str, scope: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        msg = "cursor is not an object"
        raise CursorMismatch(msg)
    if data.get("v") != CURSOR_VERSION:
        msg = f"cursor version {data.get('v')!r}, expected {CURSOR_VERSION}"
        raise CursorMismatch(msg)
    if data.get("mode") != mode:
        msg = f"cursor of mode {data.get('mode')!r}, the source now uses {mode!r}"
        raise CursorMismatch(msg)
    if data.get("scope") != scope:
        msg = "the source's selection (pipelines, environments or stage mapping) changed"
        raise CursorMismatch(msg)
    return data


@dataclass
class EnvMark:
    """One environment's high-water mark.

    ``hwm`` is the highest record id seen, ``seen_at`` the newest record time, ``recent`` the ids of
    the records inside the overlap window behind it (already emitted: not emitted again).

    A walk cut short at ``max_pages`` leaves records between this mark and the page it did not
    read: ``resume`` is that page's continuation token and ``ahead`` the mark of what the walk did
    read above it, adopted once the rest has been read (until then this mark stays the floor).
    """

    hwm: int = 0
    seen_at: datetime | None = None
    recent: list[int] = field(default_factory=list)
    resume: str | None = None
    ahead: EnvMark | None = None

    def advance(self, record_id: int, when: datetime | None) -> None:
        """Raise the mark to cover a record."""
        self.hwm = max(self.hwm, record_id)
        if when is not None and (self.seen_at is None or when > self.seen_at):
            self.seen_at = when

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        out: dict[str, Any] = {"hwm": self.hwm, "recent": sorted(self.recent)}
        if self.seen_at is not None:
            out["seen_at"] = format_rfc3339(self.seen_at)
        if self.resume is not None and self.ahead is not None:
            out["resume"] = self.resume
            out["ahead"] = self.ahead.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any) -> EnvMark:
        """Inverse of :meth:`to_json`."""
        if not isinstance(data, dict) or not isinstance(data.get("hwm"), int):
            msg = "environment mark without hwm"
            raise CursorMismatch(msg)
        recent = data.get("recent", [])
        if not isinstance(recent, list) or not all(isinstance(r, int) for r in recent):
            msg = "environment mark with a bad recent list"
            raise CursorMismatch(msg)
        seen, resume, ahead = data.get("seen_at"), data.get("resume"), data.get("ahead")
        if resume is not None and (not isinstance(resume, str) or not resume or ahead is None):
            msg = "environment mark with a bad resume token"
            raise CursorMismatch(msg)
        return cls(
            hwm=data["hwm"],
            seen_at=_when(seen) if seen is not None else None,
            recent=recent,
            resume=resume,
            ahead=cls.from_json(ahead) if resume is not None else None,
        )


@dataclass
class EnvironmentsCursor:
    """Cursor of mode ``environments``."""

    scope: str
    start: datetime
    envs: dict[str, EnvMark] = field(default_factory=dict)
    open: OpenSet = field(default_factory=OpenSet)
    stage_envs: dict[str, int] = field(default_factory=dict)
    definitions: list[int] = field(default_factory=list)
    runs: RunsState | None = None
    polled_at: datetime | None = None
    #: Runs that ended recently after being seen running: their records may be listed late.
    late: dict[str, datetime] = field(default_factory=dict)
    #: When each of ``late`` was seen ending (they are forgotten an overlap later).
    late_seen: OpenSet = field(default_factory=OpenSet)

    MODE: ClassVar[str] = "environments"

    def learn(self, definition_id: int, stage: str, environment_id: int) -> None:
        """Remember that ``stage`` of pipeline ``definition_id`` deploys to ``environment_id``."""
        key = f"{definition_id}/{stage}"
        self.stage_envs.pop(key, None)
        self.stage_envs[key] = environment_id
        while len(self.stage_envs) > _MAX_STAGE_ENVS:
            del self.stage_envs[next(iter(self.stage_envs))]
        if definition_id not in self.definitions:
            self.definitions.append(definition_id)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        out: dict[str, Any] = {
            "v": CURSOR_VERSION,
            "mode": self.MODE,
            "scope": self.scope,
            "start": format_rfc3339(self.start),
            "envs": {k: m.to_json() for k, m in sorted(self.envs.items())},
            "open": self.open.to_json(),
            "stage_envs": dict(self.stage_envs),
            "definitions": sorted(self.definitions),
        }
        if self.runs is not None:
            out["runs"] = self.runs.to_json()
        if self.polled_at is not None:
            out["polled_at"] = format_rfc3339(self.polled_at)
        if self.late:
            out["late"] = {k: format_rfc3339(v) for k, v in sorted(self.late.items())}
            out["late_seen"] = self.late_seen.to_json()
        return out

    def note_ended(self, run_id: int, queued: datetime, now: datetime) -> None:
        """A run seen running has ended: look for its records for a while."""
        self.late[str(run_id)] = queued
        self.late_seen.add(str(run_id), now)

    def forget_ended(self, now: datetime, keep: timedelta) -> None:
        """Stop looking for late records of runs that ended more than ``keep`` ago."""
        for key in self.late_seen.prune(now, max_size=_MAX_STAGE_ENVS, max_age=keep):
            self.late.pop(key, None)

    @classmethod
    def from_json(cls, data: Any, *, scope: str) -> EnvironmentsCursor:
        """Inverse of :meth:`to_json`; CursorMismatch when it does not fit this source."""
        data = _header(data, cls.MODE, scope)
        envs, stage_envs, definitions = (
            data.get("envs"),
            data.get("stage_envs"),
            data.get("definitions"),
        )
        if not isinstance(envs, dict) or not isinstance(stage_envs, dict):
            msg = "environments cursor without envs / stage_envs"
            raise CursorMismatch(msg)
        if not isinstance(definitions, list) or not all(isinstance(d, int) for d in definitions):
            msg = "definitions is not a list of ids"
            raise CursorMismatch(msg)
        if not all(isinstance(v, int) for v in stage_envs.values()):
            msg = "stage_envs values are not environment ids"
            raise CursorMismatch(msg)
        runs, polled_at, late = data.get("runs"), data.get("polled_at"), data.get("late", {})
        if not isinstance(late, dict):
            msg = "late is not an object"
            raise CursorMismatch(msg)
        return cls(
            scope=scope,
            start=_when(data.get("start")),
            envs={str(k): EnvMark.from_json(v) for k, v in envs.items()},
            open=OpenSet.from_json(data.get("open", {})),
            stage_envs={str(k): int(v) for k, v in stage_envs.items()},
            definitions=list(definitions),
            runs=RunsState.from_json(runs) if runs is not None else None,
            polled_at=_when(polled_at) if polled_at is not None else None,
            late={str(k): _when(v) for k, v in late.items()},
            late_seen=OpenSet.from_json(data.get("late_seen", {})),
        )


@dataclass
class StagesCursor:
    """Cursor of mode ``stages``."""

    scope: str
    runs: RunsState

    MODE: ClassVar[str] = "stages"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "v": CURSOR_VERSION,
            "mode": self.MODE,
            "scope": self.scope,
            "runs": self.runs.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any, *, scope: str) -> StagesCursor:
        """Inverse of :meth:`to_json`; CursorMismatch when it does not fit this source."""
        data = _header(data, cls.MODE, scope)
        return cls(scope=scope, runs=RunsState.from_json(data.get("runs")))


@dataclass
class ReleasesCursor:
    """Cursor of mode ``releases``.

    ``recent`` remembers the deployments inside the overlap window behind the mark with the
    ``lastModifiedOn`` already emitted, so re-reading the window does not emit them again.
    """

    scope: str
    mark: datetime
    recent: dict[str, datetime] = field(default_factory=dict)

    MODE: ClassVar[str] = "releases"

    def seen(self, deployment_id: str, modified: datetime) -> bool:
        """Whether this version of a deployment was already emitted."""
        return self.recent.get(deployment_id) == _millis(modified)

    def remember(self, deployment_id: str, modified: datetime) -> None:
        """Note that this version of a deployment was emitted."""
        self.recent[deployment_id] = _millis(modified)

    def trim(self, overlap: timedelta) -> None:
        """Keep only what the overlap window behind the mark can return again."""
        floor = self.mark - overlap
        self.recent = {k: v for k, v in self.recent.items() if v >= floor}

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "v": CURSOR_VERSION,
            "mode": self.MODE,
            "scope": self.scope,
            "mark": format_rfc3339(self.mark),
            "recent": {k: format_rfc3339(v) for k, v in sorted(self.recent.items())},
        }

    @classmethod
    def from_json(cls, data: Any, *, scope: str) -> ReleasesCursor:
        """Inverse of :meth:`to_json`; CursorMismatch when it does not fit this source."""
        data = _header(data, cls.MODE, scope)
        recent = data.get("recent", {})
        if not isinstance(recent, dict):
            msg = "recent is not an object"
            raise CursorMismatch(msg)
        return cls(
            scope=scope,
            mark=_when(data.get("mark")),
            recent={str(k): _when(v) for k, v in recent.items()},
        )

"""The Azure DevOps cursor: what a target has seen, per mode, as plain JSON.

Every mode is built on the kit's :class:`~deploy_fetcher.providers.kit.Watermark` (a mark with an
overlap behind it, open and done sets, a ceiling at the server's clock):

* ``stages``: the run state — the newest build ``queueTime`` processed, the open builds (not
  completed), and the completed builds inside the overlap window (so they are not fetched again);
* ``releases``: the newest ``lastModifiedOn`` processed (that filter sees every change: no open
  set) and the deployment versions inside the overlap window already emitted (``recent``);
* ``environments``: per environment the highest deployment record id and the newest record time
  (and, for a walk not finished yet, where to resume it); open record keys
  (``{environmentId}:{recordId}``); what was learned about which stage of which pipeline deploys
  to which environment; and the run state above for approvals and checks.

A cursor carries a version and a digest of the source's selection (mode, pipelines, environments,
stage mapping): a cursor written for another selection is discarded and the target starts over at
``now − lookback``, because it no longer covers what the source asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final

from deploy_fetcher.model import format_rfc3339
from deploy_fetcher.providers.kit import (
    CursorMismatch,
    DoneSet,
    OpenSet,
    Watermark,
    scope_digest,
    seal,
    timestamp,
    unseal,
)

__all__ = [
    "CURSOR_VERSION",
    "CursorMismatch",
    "EnvMark",
    "EnvironmentsCursor",
    "ReleasesCursor",
    "StagesCursor",
    "scope_digest",
]

CURSOR_VERSION: Final = 1
#: Learned (pipeline, stage) → environment pairs kept in an environments cursor.
_MAX_STAGE_ENVS: Final = 1000


@dataclass
class EnvMark:
    """One environment's high-water mark.

    ``hwm`` is the highest record id seen, ``seen_at`` the newest record time, ``recent`` the ids of
    the records inside the overlap window behind it (already emitted: not emitted again).

    A walk not finished (cut short at ``max_pages``, or stored page by page) leaves records between
    this mark and the page it did not read yet: ``resume`` is that page's continuation token and
    ``ahead`` the mark of what the walk did read above it, adopted once the rest has been read
    (until then this mark stays the floor).
    """

    hwm: int = 0
    seen_at: datetime | None = None
    recent: list[int] = field(default_factory=list)
    resume: str | None = None
    ahead: EnvMark | None = None

    def advance(self, record_id: int, when: datetime | None, *, ceiling: datetime) -> bool:
        """Raise the mark to cover a record; False when its time lies beyond ``ceiling``."""
        self.hwm = max(self.hwm, record_id)
        if when is None:
            return True
        if when > ceiling:
            return False
        if self.seen_at is None or when > self.seen_at:
            self.seen_at = when
        return True

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
            seen_at=timestamp(seen) if seen is not None else None,
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
    runs: Watermark | None = None
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

    def note_ended(self, run_id: int, queued: datetime, now: datetime) -> None:
        """A run seen running has ended: look for its records for a while."""
        self.late[str(run_id)] = queued
        self.late_seen.add(str(run_id), now)

    def forget_ended(self, now: datetime, keep: timedelta) -> None:
        """Stop looking for late records of runs that ended more than ``keep`` ago."""
        for key in self.late_seen.prune(now, max_size=_MAX_STAGE_ENVS, max_age=keep):
            self.late.pop(key, None)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        out: dict[str, Any] = {
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
        return seal(out, version=CURSOR_VERSION, mode=self.MODE, scope=self.scope)

    @classmethod
    def from_json(cls, data: Any, *, scope: str) -> EnvironmentsCursor:
        """Inverse of :meth:`to_json`; CursorMismatch when it does not fit this source."""
        data = unseal(data, version=CURSOR_VERSION, mode=cls.MODE, scope=scope)
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
            start=timestamp(data.get("start")),
            envs={str(k): EnvMark.from_json(v) for k, v in envs.items()},
            open=OpenSet.from_json(data.get("open", {})),
            stage_envs={str(k): int(v) for k, v in stage_envs.items()},
            definitions=list(definitions),
            runs=Watermark.from_json(runs) if runs is not None else None,
            polled_at=timestamp(polled_at) if polled_at is not None else None,
            late={str(k): timestamp(v) for k, v in late.items()},
            late_seen=OpenSet.from_json(data.get("late_seen", {})),
        )


@dataclass
class StagesCursor:
    """Cursor of mode ``stages``."""

    scope: str
    runs: Watermark

    MODE: ClassVar[str] = "stages"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        body = {"runs": self.runs.to_json()}
        return seal(body, version=CURSOR_VERSION, mode=self.MODE, scope=self.scope)

    @classmethod
    def from_json(cls, data: Any, *, scope: str) -> StagesCursor:
        """Inverse of :meth:`to_json`; CursorMismatch when it does not fit this source."""
        data = unseal(data, version=CURSOR_VERSION, mode=cls.MODE, scope=scope)
        return cls(scope=scope, runs=Watermark.from_json(data.get("runs")))


@dataclass
class ReleasesCursor:
    """Cursor of mode ``releases``: the mark, and the versions emitted inside the overlap window.

    ``state.done`` remembers each deployment inside the window with the ``lastModifiedOn`` already
    emitted, so re-reading the window does not emit it again.
    """

    scope: str
    state: Watermark

    MODE: ClassVar[str] = "releases"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        body = {"mark": format_rfc3339(self.state.mark), "recent": self.state.done.to_json()}
        return seal(body, version=CURSOR_VERSION, mode=self.MODE, scope=self.scope)

    @classmethod
    def from_json(cls, data: Any, *, scope: str) -> ReleasesCursor:
        """Inverse of :meth:`to_json`; CursorMismatch when it does not fit this source."""
        data = unseal(data, version=CURSOR_VERSION, mode=cls.MODE, scope=scope)
        state = Watermark(
            timestamp(data.get("mark")), done=DoneSet.from_json(data.get("recent", {}))
        )
        return cls(scope=scope, state=state)

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
from typing import ClassVar, Final

from deploy_fetcher.providers.kit import (
    CursorMismatch,
    OpenSet,
    Record,
    Sealed,
    Watermark,
    scope_digest,
    short,
)

__all__ = [
    "CursorMismatch",
    "EnvMark",
    "EnvironmentsCursor",
    "ReleasesCursor",
    "StagesCursor",
    "scope_digest",
]

#: Learned (pipeline, stage) → environment pairs kept in an environments cursor.
_MAX_STAGE_ENVS: Final = 1000


@dataclass
class EnvMark(Record):
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

    def __post_init__(self) -> None:
        if (self.resume is None) != (self.ahead is None) or self.resume == "":
            msg = "environment mark with a bad resume token"
            raise CursorMismatch(msg)

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


@dataclass
class EnvironmentsCursor(Sealed):
    """Cursor of mode ``environments``."""

    scope: str = field(metadata=short(None))
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


@dataclass
class StagesCursor(Sealed):
    """Cursor of mode ``stages``: the run state."""

    scope: str = field(metadata=short(None))
    runs: Watermark

    MODE: ClassVar[str] = "stages"


@dataclass
class ReleasesCursor(Sealed):
    """Cursor of mode ``releases``: the mark, and the versions emitted inside the overlap window.

    ``state.done`` remembers each deployment inside the window with the ``lastModifiedOn`` already
    emitted, so re-reading the window does not emit it again.
    """

    scope: str = field(metadata=short(None))
    state: Watermark

    MODE: ClassVar[str] = "releases"

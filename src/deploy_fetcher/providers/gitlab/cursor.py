"""The GitLab cursor: a high-water mark on ``updated_at`` plus the small memories a mode needs.

Both modes list objects ordered by ``updated_at`` and filtered with ``updated_after`` (inclusive), and
GitLab bumps ``updated_at`` on every status change, so the mark alone sees every change: there is no
open set to re-check. Each poll re-reads ``overlap`` behind the mark (clock skew, replicas lagging);
the store's dedup ledger makes that free.

What else is kept, bounded:

* both modes: which (object, ``updated_at``) pairs inside the overlap window were already turned into
  events, so re-reading the window emits nothing again (and costs no detail request in ``pipelines``
  mode): an idle cycle yields no page at all;
* ``deployments`` mode: the deployments seen per pipeline (:class:`PipelineMemory`), so a production
  deployment that starts an hour after its staging sibling still finds its parent;
* ``pipelines`` mode: whether a pipeline has a job matching ``job_pattern``.

A cursor written for another mode, another selection (``scope``) or another format is ignored: the
source starts again at ``now - lookback``, as a new source would (re-emitted events are deduplicated).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from deploy_fetcher.model import format_rfc3339, parse_timestamp
from deploy_fetcher.providers import Cursor

__all__ = [
    "CURSOR_VERSION",
    "DeploymentsState",
    "PipelineMemory",
    "PipelinesState",
    "Sibling",
    "decode_deployments",
    "decode_pipelines",
    "scope_digest",
]

CURSOR_VERSION: Final = 1
#: Pipelines remembered for parent lookups (each holds its few deployments).
MEMORY_PIPELINES: Final = 100


def scope_digest(selection: dict[str, Any]) -> str:
    """A short, stable digest of the settings that decide which objects a target yields."""
    text = json.dumps(selection, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Sibling:
    """A deployment of a pipeline, as far as parent lookups need it."""

    deployment_id: int
    job_id: int
    stage: str
    environment: str
    status: str

    def to_json(self) -> list[Any]:
        """Compact form for the cursor."""
        return [self.deployment_id, self.job_id, self.stage, self.environment, self.status]

    @classmethod
    def from_json(cls, data: Any) -> Sibling:
        """Inverse of :meth:`to_json` (ValueError on anything else)."""
        if not (isinstance(data, list) and len(data) == 5):  # noqa: PLR2004 - the five fields above
            msg = f"not a sibling: {data!r}"
            raise ValueError(msg)
        dep, job, stage, env, status = data
        if not (isinstance(dep, int) and isinstance(job, int)):
            msg = f"not a sibling: {data!r}"
            raise TypeError(msg)
        return cls(dep, job, str(stage), str(env), str(status))


class PipelineMemory:
    """Deployments seen per pipeline; the pipelines touched most recently are kept."""

    def __init__(self, limit: int = MEMORY_PIPELINES) -> None:
        self.limit = limit
        self._pipelines: OrderedDict[int, dict[int, Sibling]] = OrderedDict()

    def add(self, pipeline_id: int, sibling: Sibling) -> None:
        """Remember (or update) a deployment of a pipeline."""
        entries = self._pipelines.pop(pipeline_id, {})
        entries[sibling.deployment_id] = sibling
        self._pipelines[pipeline_id] = entries
        while len(self._pipelines) > self.limit:
            self._pipelines.popitem(last=False)

    def siblings(self, pipeline_id: int) -> list[Sibling]:
        """The deployments remembered for a pipeline."""
        return list(self._pipelines.get(pipeline_id, {}).values())

    def __len__(self) -> int:
        return len(self._pipelines)

    def to_json(self) -> list[Any]:
        """Compact form for the cursor, oldest pipeline first."""
        return [
            [pid, [s.to_json() for s in entries.values()]]
            for pid, entries in self._pipelines.items()
        ]

    @classmethod
    def from_json(cls, data: Any, limit: int = MEMORY_PIPELINES) -> PipelineMemory:
        """Inverse of :meth:`to_json` (ValueError on anything else)."""
        memory = cls(limit)
        if not isinstance(data, list):
            msg = "pipeline memory must be a list"
            raise TypeError(msg)
        for item in data:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)):  # noqa: PLR2004
                msg = f"not a pipeline entry: {item!r}"
                raise ValueError(msg)
            for raw in item[1]:
                memory.add(item[0], Sibling.from_json(raw))
        return memory


@dataclass
class _Marked:
    """A high-water mark and the (id, ``updated_at``) pairs already handled inside the overlap."""

    mark: datetime
    #: Object id -> the ``updated_at`` already turned into events.
    done: dict[int, datetime] = field(default_factory=dict)

    def advance(self, updated_at: datetime) -> None:
        """Move the mark forward (never back) to an item's ``updated_at``."""
        self.mark = max(self.mark, updated_at)

    def is_done(self, object_id: int, updated_at: datetime) -> bool:
        """Whether this version of the object was already handled."""
        return self.done.get(object_id) == updated_at

    def prune(self, overlap: timedelta) -> None:
        """Forget what the next poll cannot return any more (older than ``mark - overlap``)."""
        horizon = self.mark - overlap
        self.done = {oid: at for oid, at in self.done.items() if at >= horizon}

    def _done_json(self) -> dict[str, str]:
        return {str(oid): format_rfc3339(at) for oid, at in sorted(self.done.items())}


@dataclass
class DeploymentsState(_Marked):
    """Cursor of ``deployments`` mode."""

    memory: PipelineMemory = field(default_factory=PipelineMemory)

    def encode(self, scope: str) -> Cursor:
        """The JSON object the store keeps."""
        return {
            "v": CURSOR_VERSION,
            "mode": "deployments",
            "scope": scope,
            "mark": format_rfc3339(self.mark),
            "done": self._done_json(),
            "pipelines": self.memory.to_json(),
        }


@dataclass
class PipelinesState(_Marked):
    """Cursor of ``pipelines`` mode."""

    #: Pipeline id -> whether it has a job matching ``job_pattern``.
    matches: dict[int, bool] = field(default_factory=dict)

    def prune(self, overlap: timedelta) -> None:
        """Forget what the next poll cannot return, job-match verdicts included."""
        super().prune(overlap)
        self.matches = {pid: hit for pid, hit in self.matches.items() if pid in self.done}

    def encode(self, scope: str) -> Cursor:
        """The JSON object the store keeps."""
        return {
            "v": CURSOR_VERSION,
            "mode": "pipelines",
            "scope": scope,
            "mark": format_rfc3339(self.mark),
            "done": self._done_json(),
            "matches": {str(pid): hit for pid, hit in sorted(self.matches.items())},
        }


def _done(cursor: Cursor) -> dict[int, datetime]:
    raw = cursor.get("done", {})
    if not isinstance(raw, dict):
        msg = "cursor: done must be an object"
        raise TypeError(msg)
    return {int(oid): parse_timestamp(str(at)) for oid, at in raw.items()}


def _header(cursor: Cursor | None, mode: str, scope: str) -> datetime | None:
    """The mark of a cursor that belongs to this mode and scope, else None."""
    if not isinstance(cursor, dict):
        return None
    if cursor.get("v") != CURSOR_VERSION or cursor.get("mode") != mode:
        return None
    if cursor.get("scope") != scope:
        return None
    mark = cursor.get("mark")
    if not isinstance(mark, str):
        return None
    return parse_timestamp(mark)


def decode_deployments(cursor: Cursor | None, scope: str) -> DeploymentsState | None:
    """Read a ``deployments`` cursor; None when it is absent or not ours to continue.

    Raises ValueError when the cursor claims to be ours but is damaged (the adapter logs it and starts
    over rather than guessing).
    """
    mark = _header(cursor, "deployments", scope)
    if mark is None or cursor is None:
        return None
    memory = PipelineMemory.from_json(cursor.get("pipelines", []))
    return DeploymentsState(mark, _done(cursor), memory)


def decode_pipelines(cursor: Cursor | None, scope: str) -> PipelinesState | None:
    """Read a ``pipelines`` cursor; None when it is absent or not ours to continue."""
    mark = _header(cursor, "pipelines", scope)
    if mark is None or cursor is None:
        return None
    matches_raw = cursor.get("matches", {})
    if not isinstance(matches_raw, dict):
        msg = "pipelines cursor: matches must be an object"
        raise TypeError(msg)
    matches = {int(pid): bool(hit) for pid, hit in matches_raw.items()}
    return PipelinesState(mark, _done(cursor), matches)

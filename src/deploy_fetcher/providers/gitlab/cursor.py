"""The GitLab cursor: a high-water mark on ``updated_at`` plus the small memories a mode needs.

Both modes list objects ordered by ``updated_at`` and filtered with ``updated_after`` (inclusive), and
GitLab bumps ``updated_at`` on every status change, so the mark alone sees every change: there is no
open set to re-check. Each poll re-reads ``overlap`` behind the mark (clock skew, replicas lagging);
the store's dedup ledger makes that free. Both states are the kit's
:class:`~deploy_fetcher.providers.kit.Watermark` (whose mark never passes the server's clock).

What else is kept, bounded:

* both modes: which (object, ``updated_at``) pairs inside the overlap window were already turned into
  events, so re-reading the window emits nothing again (and costs no detail request in ``pipelines``
  mode): an idle cycle yields no page at all;
* ``deployments`` mode: the deployments seen per pipeline (:class:`PipelineMemory`), so a production
  deployment that starts an hour after its staging sibling still finds its parent;
* ``pipelines`` mode: whether a pipeline has a job matching ``job_pattern``.

Both are sealed (:class:`~deploy_fetcher.providers.kit.Sealed`): a cursor written for another mode,
another selection (``scope``) or another format is not continued (``Sealed.resume``): the source
starts again at ``now - lookback``, as a new source would (re-emitted events are deduplicated).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Final

from deploy_fetcher.providers.kit import CursorMismatch, Sealed, Watermark, scope_digest, short

__all__ = [
    "CURSOR_VERSION",
    "DeploymentsState",
    "PipelineMemory",
    "PipelinesState",
    "Sibling",
    "scope_digest",
]

CURSOR_VERSION: Final = 1
#: Pipelines remembered for parent lookups (each holds its few deployments).
MEMORY_PIPELINES: Final = 100
#: Versions remembered inside the overlap window.
_MAX_DONE: Final = 5000


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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PipelineMemory) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

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
class DeploymentsState(Watermark, Sealed):
    """Cursor of ``deployments`` mode: the mark, the done versions, the pipelines' deployments."""

    scope: str = field(default="", metadata=short(None))
    memory: PipelineMemory = field(default_factory=PipelineMemory, metadata=short("pipelines"))

    VERSION: ClassVar[int] = CURSOR_VERSION
    MODE: ClassVar[str] = "deployments"

    def __post_init__(self) -> None:
        if not all(key.isdigit() for key in self.done.items):
            msg = "done keys are not ids"
            raise CursorMismatch(msg)

    def forget(self, overlap: timedelta) -> None:
        """Forget the versions the next poll cannot return (older than ``mark - overlap``)."""
        self.done.prune(self.floor(overlap), max_size=_MAX_DONE)


@dataclass
class PipelinesState(DeploymentsState):
    """Cursor of ``pipelines`` mode: the mark, the done versions, the job-pattern verdicts."""

    #: Pipeline id -> whether it has a job matching ``job_pattern``.
    matches: dict[int, bool] = field(default_factory=dict)

    MODE: ClassVar[str] = "pipelines"

    def forget(self, overlap: timedelta) -> None:
        """Forget what the next poll cannot return, job-match verdicts included."""
        super().forget(overlap)
        self.matches = {pid: hit for pid, hit in self.matches.items() if str(pid) in self.done}

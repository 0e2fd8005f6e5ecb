"""The lifecycle order of a deployment's states, and the invariant every delivered event keeps.

A dashboard shows a deployment's latest row as its state, so two rules must hold for the events of
one ``deployment_id`` that reach a sink, whatever an API's timestamps say:

* they never go backwards in the lifecycle (pending < queued < waiting < in-progress < any end);
* none is dated before an earlier state of the same deployment.

One rule decides both, :func:`judge`: it compares an event with what the deployment already reached
(:class:`Reached`, its furthest state and the latest time queued) and keeps it, re-dates it, or
drops it. The engine applies it twice:

* to each page, in memory (:func:`enforce_lifecycle`): the page is put in time order, events at the
  same instant in lifecycle order, and judged against what the page itself reached;
* to what earlier pages and poll cycles stored, inside the store's commit transaction
  (:func:`gate`): each sink's outbox keeps a ledger of what every deployment reached in it.

Judging an event ``e`` against what its deployment reached:

* behind it in the lifecycle: **dropped** (``queued`` after ``in-progress``) — except after an end,
  where a state dated strictly later begins a new lifecycle (a deployment re-run under the same id,
  such as a retried GitLab pipeline);
* at the furthest state reached but dated earlier: **dropped** (an earlier report of the state the
  dashboard already shows, or an end older than the one it shows);
* further along but dated earlier: **re-dated** ("clamped") to the latest time queued. A dashboard
  sorts by ``happened_at``: delivered with its own date, the ``success`` would sort before the
  ``in-progress`` already shown and the deployment would look running for ever; dropped, its end
  would be lost. Re-dated, it becomes the latest row, one instant no earlier than the one before;
* anything else is kept as it is (including an end after an end: the later one counts).

Everything here is pure and provider-independent; the stores call :func:`gate` and log its drops.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

import structlog

from deploy_fetcher.model import DeployEvent, Status

__all__ = [
    "RANK",
    "Clamped",
    "Dropped",
    "Gated",
    "Reached",
    "enforce_lifecycle",
    "gate",
    "judge",
    "ledger_keys",
    "lifecycle_key",
    "lifecycle_order",
    "log_clamped",
    "log_dropped",
    "rank",
    "violations",
]

_log = structlog.get_logger(__name__)

#: Position of each status in a deployment's lifecycle; every end shares the last place.
RANK: Final[dict[Status, int]] = {
    Status.PENDING: 0,
    Status.QUEUED: 1,
    Status.WAITING: 2,
    Status.IN_PROGRESS: 3,
    Status.SUCCESS: 4,
    Status.FAILURE: 4,
    Status.CANCELLED: 4,
    Status.REJECTED: 4,
}

#: Why an event was dropped: behind an event of its own page, or behind what was already stored.
Why = Literal["behind_in_page", "behind_stored"]


def rank(status: Status) -> int:
    """The status's place in the lifecycle (higher is further along)."""
    return RANK[status]


def lifecycle_key(event: DeployEvent) -> tuple[datetime, int, str]:
    """Sort key: time, then lifecycle place (a tie is ``queued`` before ``in-progress``)."""
    return (event.happened_at, rank(event.status), event.deployment_id)


def lifecycle_order(events: Iterable[DeployEvent]) -> list[DeployEvent]:
    """Events oldest first; events at the same instant in lifecycle order."""
    return sorted(events, key=lifecycle_key)


@dataclass(frozen=True)
class Reached:
    """What one deployment reached: its furthest state, and the latest time of what was kept."""

    status: Status
    happened_at: datetime

    @property
    def rank(self) -> int:
        """The furthest state's place in the lifecycle."""
        return RANK[self.status]


def judge(event: DeployEvent, reached: Reached | None) -> tuple[DeployEvent | None, Reached]:
    """The event as it may be delivered (None: dropped) and what the deployment reached after it.

    See the module's docstring for the rules; an event re-dated to ``reached.happened_at`` is
    returned as a copy with that time.
    """
    at = event.happened_at
    if reached is None:
        return event, Reached(event.status, at)
    place = rank(event.status)
    if reached.status.is_terminal and at > reached.happened_at and place < reached.rank:
        return event, Reached(event.status, at)  # a new lifecycle after the end
    if place < reached.rank:
        return None, reached
    if at < reached.happened_at:
        if place == reached.rank:
            return None, reached
        moved = event.model_copy(update={"happened_at": reached.happened_at})
        return moved, Reached(event.status, reached.happened_at)
    return event, Reached(event.status, at)


def enforce_lifecycle(events: Sequence[DeployEvent], *, source: str = "") -> list[DeployEvent]:
    """The page in lifecycle order, less the events that would take a deployment backwards.

    Each event is judged against what its deployment reached earlier in the page (:func:`judge`);
    sorted by time first, nothing needs re-dating here, and an event is dropped when an event of
    the same deployment that is at least as old is further along (one ``lifecycle.event_dropped``
    line each, ``why=behind_in_page``).
    """
    reached: dict[str, Reached] = {}
    kept: list[DeployEvent] = []
    for event in lifecycle_order(events):
        before = reached.get(event.deployment_id)
        judged, reached[event.deployment_id] = judge(event, before)
        if judged is None:
            assert before is not None  # noqa: S101 - nothing is dropped for a new deployment
            log_dropped(event, before, why="behind_in_page", source=source)
            continue
        kept.append(judged)
    return kept


@dataclass(frozen=True)
class Dropped:
    """A row left out by :func:`gate`: its sink, its event, and what the deployment had reached."""

    sink: str
    event: DeployEvent
    after: Reached


@dataclass(frozen=True)
class Clamped:
    """A row :func:`gate` re-dated: its sink, the event as queued, and the time it had."""

    sink: str
    event: DeployEvent
    was: datetime


@dataclass
class Gated:
    """What :func:`gate` decided for a page's rows."""

    #: The rows to queue, in lifecycle order per sink, re-dated where needed.
    rows: list[tuple[str, DeployEvent]] = field(default_factory=list)
    #: The ledger's new entries, ``(sink, deployment_id) → Reached``, for the deployments that moved.
    reached: dict[tuple[str, str], Reached] = field(default_factory=dict)
    dropped: list[Dropped] = field(default_factory=list)
    clamped: list[Clamped] = field(default_factory=list)


def ledger_keys(rows: Iterable[tuple[str, DeployEvent]]) -> list[tuple[str, str]]:
    """The ledger entries a page's rows need, sorted (so every writer locks them in one order)."""
    return sorted({(sink, event.deployment_id) for sink, event in rows})


def gate(
    rows: Sequence[tuple[str, DeployEvent]], ledger: Mapping[tuple[str, str], Reached]
) -> Gated:
    """Judge a page's ``(sink, event)`` rows against each sink's ledger of what was queued before.

    ``ledger`` holds the stored entries of the page's deployments (missing: nothing known, so the
    page's own order decides). Rows are judged in lifecycle order, each against the ledger as the
    rows before it left it, so the result is the same whatever order the caller gave.
    """
    out = Gated()
    reached = dict(ledger)
    for sink, event in sorted(rows, key=lambda row: (row[0], lifecycle_key(row[1]))):
        key = (sink, event.deployment_id)
        before = reached.get(key)
        judged, after = judge(event, before)
        if judged is None:
            assert before is not None  # noqa: S101 - nothing is dropped for a new deployment
            out.dropped.append(Dropped(sink, event, before))
            continue
        if judged is not event:
            out.clamped.append(Clamped(sink, judged, event.happened_at))
        reached[key] = out.reached[key] = after
        out.rows.append((sink, judged))
    return out


def log_dropped(
    event: DeployEvent, after: Reached, *, why: Why, source: str = "", **extra: str
) -> None:
    """The one log line of a dropped event."""
    _log.info(
        "lifecycle.event_dropped",
        source=source or event.source,
        deployment_id=event.deployment_id,
        status=event.status.value,
        happened_at=event.happened_at.isoformat(),
        after=after.status.value,
        after_at=after.happened_at.isoformat(),
        why=why,
        **extra,
    )


def log_clamped(clamped: Clamped) -> None:
    """The one log line of an event re-dated to what its deployment already reached."""
    event = clamped.event
    _log.info(
        "lifecycle.event_clamped",
        source=event.source,
        sink=clamped.sink,
        deployment_id=event.deployment_id,
        status=event.status.value,
        happened_at=clamped.was.isoformat(),
        clamped_to=event.happened_at.isoformat(),
    )


def violations(events: Sequence[DeployEvent]) -> list[str]:
    """What breaks the invariant in events taken in the order given (empty when nothing does).

    For the tests: each pair of consecutive events of one deployment must neither go back in time
    nor go backwards in the lifecycle — unless the earlier one is an end and the later one is
    dated after it (a new lifecycle under the same id, as :func:`judge` allows).
    """
    found: list[str] = []
    last: dict[str, DeployEvent] = {}
    for event in events:
        before = last.get(event.deployment_id)
        if before is not None:
            reopened = before.status.is_terminal and event.happened_at > before.happened_at
            if rank(event.status) < rank(before.status) and not reopened:
                found.append(
                    f"{event.deployment_id}: {event.status.value} after {before.status.value}"
                )
            if event.happened_at < before.happened_at:
                found.append(
                    f"{event.deployment_id}: {event.status.value} at {event.happened_at} "
                    f"dated before {before.status.value} at {before.happened_at}"
                )
        last[event.deployment_id] = event
    return found

"""The lifecycle order of a deployment's states, and the invariant every delivered page keeps.

A dashboard shows a deployment's latest row as its state, so two rules must hold for the events of
one ``deployment_id``, whatever an API's timestamps say:

* they never go backwards in the lifecycle (pending < queued < waiting < in-progress < any end);
* none is dated before an earlier state of the same deployment.

:func:`lifecycle_order` sorts a page so that events at the same instant come in lifecycle order (the
outbox keeps insertion order for equal ``happened_at``); :func:`enforce_lifecycle` then **drops** an
event that would go backwards — it comes later in time than a state further along, so delivering it
would make the dashboard show an older state as the latest — and logs one line for it. Sorted by time
first, no kept event can be dated before an earlier kept one, so nothing needs clamping.

Both are pure and provider-independent: the engine applies them to every page before it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final

import structlog

from deploy_fetcher.model import DeployEvent, Status

__all__ = ["RANK", "enforce_lifecycle", "lifecycle_key", "lifecycle_order", "rank", "violations"]

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


def rank(status: Status) -> int:
    """The status's place in the lifecycle (higher is further along)."""
    return RANK[status]


def lifecycle_key(event: DeployEvent) -> tuple[datetime, int, str]:
    """Sort key: time, then lifecycle place (a tie is ``queued`` before ``in-progress``)."""
    return (event.happened_at, rank(event.status), event.deployment_id)


def lifecycle_order(events: Iterable[DeployEvent]) -> list[DeployEvent]:
    """Events oldest first; events at the same instant in lifecycle order."""
    return sorted(events, key=lifecycle_key)


def enforce_lifecycle(events: Sequence[DeployEvent], *, source: str = "") -> list[DeployEvent]:
    """The page in lifecycle order, less the events that would take a deployment backwards.

    An event is dropped when an event of the same deployment that is at least as old is further
    along in the lifecycle; a terminal event after another terminal one is kept (the later end is
    the one that counts, as on the dashboard). One ``lifecycle.event_dropped`` line per drop.
    """
    reached: dict[str, DeployEvent] = {}
    kept: list[DeployEvent] = []
    for event in lifecycle_order(events):
        before = reached.get(event.deployment_id)
        if before is not None and rank(event.status) < rank(before.status):
            _log.info(
                "lifecycle.event_dropped",
                source=source or event.source,
                deployment_id=event.deployment_id,
                status=event.status.value,
                happened_at=event.happened_at.isoformat(),
                after=before.status.value,
                after_at=before.happened_at.isoformat(),
            )
            continue
        reached[event.deployment_id] = event
        kept.append(event)
    return kept


def violations(events: Sequence[DeployEvent]) -> list[str]:
    """What breaks the invariant in events taken in the order given (empty when nothing does).

    For the tests: each pair of consecutive events of one deployment must neither go backwards in
    the lifecycle nor back in time.
    """
    found: list[str] = []
    last: dict[str, DeployEvent] = {}
    for event in events:
        before = last.get(event.deployment_id)
        if before is not None:
            if rank(event.status) < rank(before.status):
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

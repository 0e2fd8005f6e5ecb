"""The state store's interface: cursors, the outbox (which doubles as the dedup ledger), dead letters.

The rule that makes the fetcher lose nothing lives here, in :meth:`StateStore.commit_page`: a source's
cursor only moves in the same transaction that stores the outbox rows for the events it covers. The
dedup key ``(sink, deployment_id, status, happened_at)`` makes re-reading an overlap window free.

Rows are *claimed* with a lease before they are sent, so a daemon and a concurrent ``fetcher sync``
process never send the same row twice; a claim that outlives its lease (the claimer crashed) is free
to take again — the one documented duplicate window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.store._settle import Settlement

__all__ = [
    "CursorRecord",
    "Fence",
    "LeaseBoard",
    "OutboxRow",
    "OutboxStats",
    "RowState",
    "StateStore",
]

RowState = Literal["pending", "delivered", "dead"]


@dataclass(frozen=True)
class CursorRecord:
    """One source target's cursor as stored."""

    key: str
    cursor: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True)
class OutboxRow:
    """One event queued for one sink."""

    id: int
    sink: str
    source: str
    event: DeployEvent
    state: RowState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class Fence:
    """What a poll commits under: the lease on ``key`` held by ``holder`` with ``token``.

    A store that checks fences refuses the commit (:class:`~deploy_fetcher.errors.LeaseLost`) unless
    that lease is still live under that very token when the commit's transaction runs.
    """

    key: str
    holder: str
    token: int


@dataclass(frozen=True)
class OutboxStats:
    """Row counts of one sink's outbox."""

    sink: str
    pending: int
    delivered: int
    dead: int
    oldest_pending_at: datetime | None


class StateStore(Protocol):
    """Durable state. Every method is safe to call from several threads and several processes."""

    # -- cursors ---------------------------------------------------------------------------------
    def get_cursor(self, key: str) -> dict[str, Any] | None:
        """Return the cursor stored for a source target, or None before its first commit."""
        ...

    def list_cursors(self) -> list[CursorRecord]:
        """Every stored cursor, ordered by key."""
        ...

    def reset_cursor(self, key: str) -> bool:
        """Forget a cursor (the next poll starts at now − lookback); False when there was none."""
        ...

    # -- the transaction rule ----------------------------------------------------------------------
    def commit_page(
        self,
        key: str,
        cursor: dict[str, Any] | None,
        rows: Sequence[tuple[str, DeployEvent]],
        *,
        successes: Sequence[DeployEvent] | None = None,
        fence: Fence | None = None,
    ) -> int:
        """Store ``(sink name, event)`` rows (duplicates by dedup key ignored) and the cursor, atomically.

        ``cursor`` None leaves the stored cursor as it is. Successful events with a sha among
        ``successes`` (the page's events under their canonical names, before any sink's filter or
        rename; the rows' events when None) are recorded for :meth:`latest_success`. Returns the
        number of rows actually inserted. With a ``fence``, the commit happens only if that lease is
        still held under its token (else LeaseLost, nothing stored); stores without leases refuse a
        fence.
        """
        ...

    # -- outbox ------------------------------------------------------------------------------------
    def claim(
        self,
        sink: str,
        *,
        limit: int,
        lease_seconds: float,
        now: datetime,
        lane: int = 0,
        lanes: int = 1,
    ) -> list[OutboxRow]:
        """Claim up to ``limit`` pending rows of ``sink`` for this process, oldest ``happened_at`` first.

        Head of line: the claim stops at the first row whose retry is not yet due, so a later event
        never overtakes an earlier one that is waiting out its backoff (even across a restart).
        With ``lanes`` above one, only the rows of delivery line ``lane`` (``lane_key % lanes``, see
        :mod:`deploy_fetcher.store._lanes`), each line held at its own head.
        """
        ...

    def settle(self, settlements: Sequence[Settlement]) -> int:
        """Record deliveries' answers on their rows in one transaction, all or none.

        Each row is marked delivered, scheduled for a retry, or dead-lettered, and its claim is
        dropped; a row no longer pending (settled elsewhere, purged) is left alone. Returns how many
        rows were still pending.
        """
        ...

    def mark_delivered(self, row_id: int, *, now: datetime) -> None:
        """The row reached its sink; it stays as a dedup ledger entry until pruned."""
        ...

    def mark_retry(self, row_id: int, *, next_attempt_at: datetime, error: str) -> None:
        """Count a failed attempt, release the claim, and make the row due again at ``next_attempt_at``."""
        ...

    def dead_letter(self, row_id: int, *, reason: str, now: datetime) -> None:
        """Move the row to the dead letters with the reason (e.g. the 422 body)."""
        ...

    def release(self, row_ids: Sequence[int]) -> None:
        """Give back claims without counting an attempt (shutdown, sink paused)."""
        ...

    def pending_count(self, sink: str) -> int:
        """Rows of ``sink`` not yet delivered nor dead."""
        ...

    def stats(self) -> list[OutboxStats]:
        """Counts per sink (every sink that has rows)."""
        ...

    def list_rows(
        self, *, sink: str | None = None, state: RowState | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        """Rows for ``fetcher outbox list``, newest first."""
        ...

    def retry_dead(self, *, sink: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Move dead letters back to pending (attempts reset); returns how many."""
        ...

    def rows_for(self, deployment_id: str, *, sinks: Sequence[str]) -> list[OutboxRow]:
        """Every row of one deployment for ``sinks``, any state, oldest ``happened_at`` first.

        What ``fetcher explain`` shows: each event of the deployment and what became of it.
        """
        ...

    def make_due(self, *, sink: str | None = None, now: datetime) -> int:
        """Make pending rows waiting out a backoff due at ``now`` (``fetcher outbox flush``).

        Attempts are not reset, and rows under a live claim are left to their claimer; returns how
        many rows were waiting.
        """
        ...

    def purge(
        self, *, state: RowState, sink: str | None = None, ids: Sequence[int] | None = None
    ) -> int:
        """Delete rows in ``state`` (dead letters, typically); returns how many."""
        ...

    def prune_delivered(self, *, older_than: datetime) -> int:
        """Delete delivered rows older than the retention window; returns how many.

        Successes older than the cutoff are forgotten too (see :meth:`latest_success`), so the store
        stays the size of the retention window.
        """
        ...

    # -- promotion order ----------------------------------------------------------------------------
    def latest_success(self, *, service: str, environment: str, sha: str) -> str | None:
        """deployment_id of the latest successful deployment of service+sha in environment."""
        ...

    # -- small values -----------------------------------------------------------------------------
    def get_value(self, key: str) -> str | None:
        """A value stored with :meth:`set_value` (e.g. a control stream's Last-Event-ID), or None."""
        ...

    def set_value(self, key: str, value: str) -> None:
        """Store a small value under ``key``, replacing the previous one, durably."""
        ...

    # -- health ------------------------------------------------------------------------------------
    def check_writable(self) -> str | None:
        """None when the store can be written, else the reason (disk full, read-only)."""
        ...

    def close(self) -> None:
        """Close connections."""
        ...


class LeaseBoard(Protocol):
    """Membership and leases of replicas sharing one store (the PostgreSQL backend has one).

    Every time is the store's own clock, so replicas whose clocks disagree still agree on leases.
    """

    def heartbeat(
        self, member: str, *, host: str, version: str, ttl: float, sources: Sequence[str] = ()
    ) -> dict[str, frozenset[str]]:
        """Record ``member`` as alive for ``ttl`` seconds more, able to poll ``sources``.

        Returns every live member (sorted by id) with the sources it can poll.
        """
        ...

    def renew(self, member: str, *, ttl: float) -> dict[str, int]:
        """Extend the unexpired leases of ``member``; return them (key → token)."""
        ...

    def acquire(self, member: str, keys: Sequence[str], *, ttl: float) -> dict[str, int]:
        """Take those of ``keys`` whose lease is free or expired (key → new token)."""
        ...

    def release(
        self, member: str, keys: Sequence[str], *, polled_ago: Mapping[str, float] | None = None
    ) -> None:
        """Give leases up at once; ``polled_ago`` says how many seconds ago each target was polled."""
        ...

    def polled_ago(self, keys: Sequence[str]) -> dict[str, float]:
        """Seconds since a previous holder last polled each of ``keys`` (those it said)."""
        ...

    def leave(self, member: str, *, polled_ago: Mapping[str, float] | None = None) -> None:
        """Release every lease and claim of ``member`` and forget it (a clean exit)."""
        ...

    def departed(self) -> list[str]:
        """Ids of the members whose membership expired (dead, hung, or cut off), sorted."""
        ...

    def free_claims_of(self, members: Sequence[str]) -> int:
        """Release the outbox claims of those ``members`` whose membership expired; how many rows."""
        ...

    def claimed_elsewhere(self, sink: str, member: str) -> int:
        """Rows of ``sink`` under a live claim of another process."""
        ...

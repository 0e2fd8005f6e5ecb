"""One delivery worker per sink: drains its outbox, retries, pauses, dead-letters.

Decisions come from the sink's :data:`~deploy_fetcher.sinks.Delivery` value alone:

* ``Delivered`` → mark the row delivered (it stays as dedup ledger until pruned);
* ``Retry`` → the sink is struggling, not the event: back off (the whole sink, or the row's lane;
  exponential with full jitter, at least the server's Retry-After), keep the row at the head of its
  line so events stay in ``happened_at`` order;
* ``Unauthorized`` → the credential is broken: pause the sink (readiness degraded), keep every row, and
  probe again every ``pause_probe`` seconds so a fixed secret resumes delivery without a restart;
* ``Rejected`` → dead-letter the row with the reason and go on.

Delivery can also be *held* from outside (the dashboard announced a reset): the worker finishes the
event in hand, gives back its claims and sends nothing until it is let go; rows stay queued.

A worker is woken as soon as the poller commits rows for its sink, not on the next tick.

A sink with ``lanes: N`` is drained by N threads, one per delivery line of its outbox (rows split by
service, see :mod:`deploy_fetcher.store._lanes`): each line keeps its own head, backoff and pause,
so one service's retry holds back that line only, and a slow destination gets N requests at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import structlog
from tenacity import wait_random_exponential

from deploy_fetcher.config import SinkConfig
from deploy_fetcher.engine.group_commit import GroupCommit
from deploy_fetcher.engine.health import Health
from deploy_fetcher.errors import StoreError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import utc_now
from deploy_fetcher.sinks import Delivered, Rejected, Retry, Sink, Unauthorized
from deploy_fetcher.store import OutboxRow, Settlement, StateStore

__all__ = ["DeliveryPolicy", "DeliveryWorker"]

_log = structlog.get_logger(__name__)


DEPTH_REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class DeliveryPolicy:
    """Tunables of a delivery worker (defaults suit production; tests shrink them)."""

    batch: int = 50
    retry_after_max: float = 3600.0
    pause_probe: float = 60.0
    idle_poll: float = 5.0
    lease_floor: float = 60.0


def _backoff(config: SinkConfig) -> Any:
    """Exponential backoff with full jitter (tenacity's), from the sink's configuration."""
    return wait_random_exponential(
        multiplier=config.backoff_initial.total_seconds(), max=config.backoff_max.total_seconds()
    )


@dataclass
class _Lane:
    """One delivery line of a sink: its thread, its wake-up call and its backoff."""

    index: int
    wake: threading.Event = field(default_factory=threading.Event)
    busy: threading.Lock = field(default_factory=threading.Lock)  # held while a batch is worked on
    failures: int = 0
    resume_at: float = 0.0  # monotonic time before which this line leaves the sink alone
    thread: threading.Thread | None = None


@dataclass
class DeliveryWorker:
    """Drains one sink's outbox, one thread per delivery lane."""

    sink: Sink
    store: StateStore
    metrics: Metrics
    health: Health
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    stop_event: threading.Event = field(default_factory=threading.Event)
    #: Whether this process may deliver to the sink now: with replicas sharing the work, only the
    #: one holding the sink's lease does (so the sink gets events in order); always, alone.
    gate: Callable[[], bool] = lambda: True

    def __post_init__(self) -> None:
        self.name = self.sink.config.name
        #: Delivery lanes: the sink's ``lanes``, or one for a sink that cannot send concurrently.
        self.lanes = self.sink.config.lanes if self.sink.concurrent else 1
        self._lanes = [_Lane(index) for index in range(self.lanes)]
        self._depth_at = -DEPTH_REFRESH_SECONDS
        self._depth_lock = threading.Lock()
        self._wait = _backoff(self.sink.config)
        self._held = threading.Event()
        self._log = _log.bind(sink=self.name)
        self._count_lock = threading.Lock()
        self.delivered = 0
        self.dead = 0
        #: Every lane's answers go to the store through one committer (see its module).
        self.commits: GroupCommit[Settlement] = GroupCommit(self.store.settle)
        deliveries = self.metrics.deliveries
        self._counted = {
            outcome: deliveries.labels(self.name, outcome)
            for outcome in ("delivered", "rejected", "retry", "unauthorized")
        }
        self._latency = self.metrics.delivery_latency.labels(self.name)

    # -- control ---------------------------------------------------------------------------------
    def wake(self) -> None:
        """Rows were committed for this sink: every lane looks at once."""
        for lane in self._lanes:
            lane.wake.set()

    def start(self) -> None:
        """Run each lane's loop in a daemon thread."""
        for lane in self._lanes:
            suffix = f"-{lane.index}" if self.lanes > 1 else ""
            lane.thread = threading.Thread(
                target=self.run,
                args=(lane.index,),
                name=f"deliver-{self.name}{suffix}",
                daemon=True,
            )
            lane.thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the events in hand; wait up to ``timeout`` seconds for every lane."""
        self.stop_event.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for lane in self._lanes:
            if lane.thread is not None:
                lane.thread.join(max(0.0, deadline - time.monotonic()))

    def hold(self) -> None:
        """Send nothing from now on (after the events in hand) until :meth:`unhold`."""
        self._held.set()

    def unhold(self) -> None:
        """Let a held worker deliver again, at once."""
        self._held.clear()
        self.wake()

    @property
    def held(self) -> bool:
        """Whether delivery is held."""
        return self._held.is_set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no lane works on a batch; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        for lane in self._lanes:
            if not lane.busy.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return False
            lane.busy.release()
        return True

    @property
    def backing_off(self) -> float:
        """Seconds until some lane may try the sink again (0 when one may now)."""
        now = time.monotonic()
        return min(max(0.0, lane.resume_at - now) for lane in self._lanes)

    @property
    def alive(self) -> bool:
        """Whether the worker's threads run."""
        return any(lane.thread is not None and lane.thread.is_alive() for lane in self._lanes)

    # -- the loop --------------------------------------------------------------------------------
    def run(self, lane: int = 0) -> None:
        """Loop one lane until stopped: claim a batch, send it, sleep until woken or something is due."""
        state = self._lanes[lane]
        while not self.stop_event.is_set():
            with state.busy:
                try:
                    pause = self.drain_once(lane)
                except StoreError as exc:
                    self.health.set_store_problem(str(exc))
                    pause = self.policy.idle_poll
                except Exception:
                    self._log.exception("delivery.unexpected_error", lane=lane)
                    pause = self.policy.idle_poll
            if pause > 0 and not self.stop_event.is_set():
                state.wake.wait(pause)
                state.wake.clear()

    def _lease(self) -> float:
        """How long a claim holds: short, because a crashed claimer's rows wait that long.

        A batch is never worked on for more than half the lease (see :meth:`drain_once`), so one
        send (at most the sink's timeout) always ends before the claim can expire.
        """
        return self.policy.lease_floor + 2 * self.sink.config.timeout.total_seconds()

    def drain_once(self, lane: int = 0) -> float:
        """Send one claimed batch of a lane; return how long to wait before the next (0 = at once)."""
        state = self._lanes[lane]
        if self._held.is_set() or not self.gate():
            return self.policy.idle_poll  # unhold() or gaining the sink's lease wakes the worker
        backing_off = state.resume_at - time.monotonic()
        if backing_off > 0:
            # New rows woke us, but the sink is backing off or paused: they wait their turn.
            return backing_off
        now = utc_now()
        lease = self._lease()
        rows = self.store.claim(
            self.name,
            limit=self.policy.batch,
            lease_seconds=lease,
            now=now,
            lane=lane,
            lanes=self.lanes,
        )
        if not rows:
            self._update_depth()
            return self.policy.idle_poll
        claimed_at = time.monotonic()
        for index, row in enumerate(rows):
            if (
                self.stop_event.is_set()
                or self._held.is_set()
                or not self.gate()
                or time.monotonic() - claimed_at > lease / 2
            ):
                # Stopping, held, the sink's lease gone, or a slow sink used half the claim's
                # lease: hand the rest back.
                self.store.release([r.id for r in rows[index:]])
                return 0
            wait = self._send(row, state)
            if wait is not None:
                state.resume_at = time.monotonic() + wait
                self.store.release([r.id for r in rows[index + 1 :]])
                self._update_depth()
                return wait
        self._update_depth()
        return 0

    def _send(self, row: OutboxRow, lane: _Lane) -> float | None:
        """Deliver one row; None to go on with the batch, else seconds to wait before the next try."""
        started = time.monotonic()
        try:
            outcome = self.sink.send(row.event)
        except Exception as exc:  # a sink bug is a retry, never a lost event
            self._log.exception("delivery.sink_error", row=row.id)
            outcome = Retry(reason=f"sink error: {type(exc).__name__}: {exc}")
        now = utc_now()
        match outcome:
            case Delivered():
                self._delivered(row, now, lane, seconds=time.monotonic() - started)
                return None
            case Rejected(reason=reason, status_code=status_code):
                self._dead_letter(row, reason, now, status_code=status_code)
                return None
            case Unauthorized(reason=reason):
                self.store.release([row.id])
                self._counted["unauthorized"].inc()
                self.metrics.sink_paused.labels(self.name).set(1)
                self.health.sink_paused(self.name, f"credentials rejected ({reason})")
                return self.policy.pause_probe
            case Retry():
                return self._retry(row, outcome, now, lane)

    def _row_log(self, row: OutboxRow) -> Any:
        """The worker's logger bound to one row (only for lines that are written)."""
        return self._log.bind(
            row=row.id, deployment_id=row.event.deployment_id, status=row.event.status.value
        )

    def _delivered(self, row: OutboxRow, now: datetime, lane: _Lane, *, seconds: float) -> None:
        self._settle(Settlement.delivered(row.id, now=now))
        self._counted["delivered"].inc()
        self._latency.observe(max(0.0, (now - row.created_at).total_seconds()))
        with self._count_lock:
            self.delivered += 1
        if lane.failures:
            self._row_log(row).info("delivery.recovered", after_failures=lane.failures)
            lane.failures = 0
        self.health.sink_resumed(self.name)
        self._log.debug(  # a no-op below debug level: no logger is bound per row for it
            "delivery.delivered",
            row=row.id,
            deployment_id=row.event.deployment_id,
            status=row.event.status.value,
            seconds=round(seconds, 3),
        )

    def _dead_letter(
        self, row: OutboxRow, reason: str, now: datetime, *, status_code: int | None
    ) -> None:
        self._settle(Settlement.dead(row.id, reason=reason, now=now))
        self._counted["rejected"].inc()
        with self._count_lock:
            self.dead += 1
        self._row_log(row).warning("delivery.dead_lettered", reason=reason, status_code=status_code)

    def _retry(self, row: OutboxRow, outcome: Retry, now: datetime, lane: _Lane) -> float | None:
        """Back the lane off, or dead-letter the row when it used up ``max_attempts``."""
        lane.failures += 1
        self._counted["retry"].inc()
        max_attempts = self.sink.config.max_attempts
        if max_attempts is not None and row.attempts + 1 >= max_attempts:
            reason = f"gave up after {row.attempts + 1} attempts: {outcome.reason}"
            self._settle(Settlement.dead(row.id, reason=reason, now=now))
            with self._count_lock:
                self.dead += 1
            self._row_log(row).warning("delivery.dead_lettered", reason=reason)
            return None
        delay = float(self._wait(SimpleNamespace(attempt_number=lane.failures)))
        if outcome.after is not None:
            delay = max(delay, min(outcome.after, self.policy.retry_after_max))
        retry_at = now + timedelta(seconds=delay)
        self._settle(Settlement.retry(row.id, next_attempt_at=retry_at, error=outcome.reason))
        if lane.failures == 1 or outcome.after is not None:
            self._row_log(row).warning(
                "delivery.retrying",
                reason=outcome.reason,
                status_code=outcome.status_code,
                retry_in=round(delay, 2),
            )
        return delay

    def _settle(self, settlement: Settlement) -> None:
        """Record what the sink answered before the lane sends on, waiting out an unwritable store.

        Recorded before the lane's next POST, so a crash can leave at most one accepted POST per
        lane unrecorded (the duplicate window of docs/guarantees.md); the lanes' answers share
        transactions (:mod:`~deploy_fetcher.engine.group_commit`) rather than queue for the lock.

        The answer already happened: giving up would leave the row (and the rest of its batch)
        claimed until the lease ends, then send it again after rows that came later — a duplicate
        and a reordering. So the worker waits here, checking every ``idle_poll`` seconds, and only
        a shutdown makes it give up (the next start frees the claims of this dead process).
        """
        while True:
            try:
                self.commits.record(settlement)
            except StoreError as exc:
                self.health.set_store_problem(str(exc))
                if self.stop_event.wait(self.policy.idle_poll):
                    raise
            else:
                return

    def _update_depth(self) -> None:
        # Counting a large backlog costs a scan of its index: at most once a second, not per batch
        # (and by one lane of the sink at a time).
        now = time.monotonic()
        with self._depth_lock:
            if now - self._depth_at < DEPTH_REFRESH_SECONDS:
                return
            self._depth_at = now
        self.metrics.outbox_depth.labels(self.name).set(self.store.pending_count(self.name))
        if self.name not in self.health.paused_sinks:
            self.metrics.sink_paused.labels(self.name).set(0)

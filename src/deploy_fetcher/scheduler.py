"""APScheduler jobs: one interval job per source target, plus discovery and housekeeping.

* never two runs of one target at once (``max_instances=1``), missed runs coalesced into one;
* each target's next run is decided after its poll by the :class:`~deploy_fetcher.pacing.Pacer`:
  targets with work in flight are polled every ``hot_interval``, idle ones less often, within the
  number of polls the configured intervals add up to; jitter spreads targets over the interval
  instead of a thundering herd on the CI API, without drifting the schedule;
* targets are discovered again every ``discovery_interval`` (``owner/*`` gains and loses repositories);
* housekeeping beats the heartbeat behind ``/healthz``, refreshes gauges, checks the store is
  writable and prunes the dedup ledger (in a thread of its own, so busy polls cannot starve it);
* polls, discovery and housekeeping run on three executors, so no number of slow polls delays a
  discovery or the store check; polls share an :class:`~deploy_fetcher._pool.ElasticPool`, in which
  a poll running longer than one request's deadline (``defaults.timeout``) stops holding a worker
  from the others, and
  one running past ``defaults.poll_deadline`` is reported as overdue (``/readyz``,
  ``fetcher_polls_overdue``);
* sources can be paused (the dashboard's reset choreography): their runs are skipped, and
  :meth:`Scheduler.wait_sources_idle` waits for the runs already in flight;
* with replicas sharing the work (:class:`~deploy_fetcher.engine.replicas.Coordinator`), every
  replica schedules every target but runs only those whose lease it holds, under that lease's fence;
  discovery tells the coordinator which targets there are;
* a target can be *nudged* (a CI system's webhook said it changed): it is polled now, or right after
  the poll in flight, and at most once per ``min_gap`` however often it is nudged; its poll takes the
  poll pool's urgent lane, ahead of the scheduled polls waiting when the daemon is behind (as do
  the targets taken over from a replica that died).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobSubmissionEvent
from apscheduler.executors.pool import BasePoolExecutor, ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from deploy_fetcher._pool import ElasticPool
from deploy_fetcher.engine import CycleResult, Runtime, target_key
from deploy_fetcher.errors import AuthError
from deploy_fetcher.metrics import split_key
from deploy_fetcher.model import utc_now
from deploy_fetcher.pacing import Pacer
from deploy_fetcher.providers import Provider
from deploy_fetcher.providers.kit import Tally, tally

if TYPE_CHECKING:
    from deploy_fetcher.providers.kit import Allowance, Quota
    from deploy_fetcher.store import Fence

__all__ = ["Scheduler"]

_log = structlog.get_logger(__name__)

HOUSEKEEPING_SECONDS = 15
HOUSEKEEPING_EXECUTOR = "housekeeping"
DISCOVERY_EXECUTOR = "discovery"
PRUNE_EVERY = timedelta(hours=1)
#: Discoveries running at once (each lists one source's targets).
DISCOVERY_WORKERS = 2
#: Threads the poll pool may grow to, per normal worker, while polls run slow.
SLOW_POLL_HEADROOM = 4
#: A poll skipped because its previous run was still being counted is tried again this soon.
SKIPPED_RETRY_SECONDS = 0.25


class _SkippedRunFilter(logging.Filter):
    """Drops APScheduler's "skipped: maximum number of running instances reached" warning.

    APScheduler writes it for every interval a target's previous poll is still running: one line
    a second for each hung target of a server that trickles. The condition is reported once, as it
    should be, by ``poll.overdue`` and ``/readyz``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_SKIPPED_RUNS = _SkippedRunFilter()
logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_RUNS)


class _PollExecutor(BasePoolExecutor):  # type: ignore[misc]  # APScheduler is untyped
    """APScheduler's pool executor over an :class:`ElasticPool`."""

    def __init__(self, pool: ElasticPool) -> None:
        super().__init__(pool)


class _AfterEachPoll(BaseTrigger):  # type: ignore[misc]  # APScheduler is untyped
    """A poll job's trigger: its real next run is set when the poll ends (see ``Scheduler._poll``).

    APScheduler asks a trigger for the next run when it *starts* a run, before the poll has shown
    whether the target is busy; this answer is only a backstop, far enough ahead that it never
    fires while the scheduler is working, so a run whose end went unnoticed is not the last one.
    """

    def __init__(self, backstop: float) -> None:
        self.backstop = backstop

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        """The backstop: ``backstop`` seconds after now."""
        return now + timedelta(seconds=self.backstop)


def pool_of(provider: Provider) -> str:
    """The request budget a provider's targets share: its credential's, else its CI system's."""
    quota = provider.request_quota
    if quota is not None:
        return f"{quota.provider}/{quota.label}"
    return provider.config.provider


#: Share of a credential's per-minute limit the scheduled polls aim at: the rest is headroom for
#: nudged polls, discovery and a cycle that costs more than the average.
BUDGET_SHARE = 0.85
#: Polls of a pool its cost per poll is measured over (at the first housekeeping run after them).
_MIN_POLLS = 5


@dataclass(frozen=True)
class _Mark:
    """A pool's counters at its last cost measurement."""

    spent: dict[str, int]
    polls: int
    first_spent: dict[str, int]
    first_polls: int


def _discovery_key(source_name: str) -> str:
    """Health key of a source's target listing, distinct from every target's.

    A target may bear the source's own name, and its state must survive a rediscovery.
    """
    return f"{source_name} (discovery)"


class Scheduler:
    """Drives a :class:`Runtime` on a schedule until shut down."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        max_workers: int = 8,
        housekeeping_every: float | None = None,
    ) -> None:
        self.runtime = runtime
        # Read at construction, so a test can shorten the module's period for a whole process.
        self.housekeeping_every = housekeeping_every or HOUSEKEEPING_SECONDS
        defaults = runtime.config.defaults
        #: The polls' threads; a poll running longer than one request's deadline frees its worker.
        self.polls = ElasticPool(
            max_workers,
            slow_after=min(defaults.timeout, defaults.poll_deadline).total_seconds(),
            limit=max_workers * SLOW_POLL_HEADROOM,
            # Polls share the workers by request budget: one credential at its limit keeps its
            # share of them, not all (see the pool's module docstring).
            group_of=lambda key: self._pools_of.get(key, ""),
        )
        # Housekeeping (the heartbeat) has a thread of its own: polls stuck in slow CI requests
        # must not starve it, or a busy daemon would look wedged and be restarted. Discovery too:
        # a hung poll must not delay the listing that adds a new repository.
        self._scheduler = BackgroundScheduler(
            executors={
                "default": _PollExecutor(self.polls),
                DISCOVERY_EXECUTOR: ThreadPoolExecutor(max_workers=DISCOVERY_WORKERS),
                HOUSEKEEPING_EXECUTOR: ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._targets: dict[str, set[str]] = {}
        defaults = runtime.config.defaults
        #: The quota of each request budget (credential), what its polls cost, and the count of
        #: polls and answers at the last housekeeping.
        self._quotas: dict[str, Quota] = {}
        self._pools_of: dict[str, str] = {}
        self._pool_polls: Counter[str] = Counter()
        #: First polls of targets (which read a whole lookback) per pool, and the answers they
        #: got (counted as they come): left out of what a poll costs. Targets polled since start.
        self._first_polls: Counter[str] = Counter()
        self._first_spent: dict[str, Tally] = {}
        self._polled: set[str] = set()
        self._marks: dict[str, _Mark] = {}
        self._per_poll: dict[tuple[str, str], float] = {}
        self._ceilings: dict[str, str] = {}
        self._limit_kinds: dict[str, str] = {}
        #: Decides each target's next run (adaptive intervals within the configured budget).
        self.pacer = Pacer(
            hot_interval=defaults.hot_interval.total_seconds(),
            cooldown=defaults.cooldown.total_seconds(),
            max_stretch=defaults.max_stretch,
        )
        self._lock = threading.Lock()
        self._last_prune = 0.0
        self.misfires = 0
        self._activity = threading.Condition()
        self._paused: dict[str, frozenset[str]] = {}
        self._running: Counter[str] = Counter()
        self._in_flight = 0  # jobs of ours running now (polls, discoveries, housekeeping)
        # Nudges: targets by case-folded name, when each was last nudged, polls running now,
        # and targets to poll again as soon as their poll in flight ends.
        self._by_name: dict[str, set[tuple[str, str]]] = {}
        self._nudged: dict[str, float] = {}
        self._polling: set[str] = set()
        self._again: set[str] = set()
        #: Each target's next run as the pacer planned it (absent: a nudge or a takeover set it).
        self._planned: dict[str, datetime] = {}
        self._stopping = False
        #: Called with each finished cycle's result, in the scheduler's thread; must not block.
        self.cycle_listeners: list[Callable[[CycleResult], None]] = []
        if runtime.coordinator is not None:
            runtime.coordinator.on_released = self._handed_over
            runtime.coordinator.on_acquired = self._taken_over

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Schedule discovery of every source (at once), housekeeping, and start the scheduler."""
        config = self.runtime.config
        now = utc_now()
        for name in self.runtime.providers:
            self._scheduler.add_job(
                self._discover,
                IntervalTrigger(seconds=config.defaults.discovery_interval.total_seconds()),
                args=[name],
                id=f"discover:{name}",
                next_run_time=now,
                executor=DISCOVERY_EXECUTOR,
            )
        self._scheduler.add_job(
            self._housekeeping,
            IntervalTrigger(seconds=self.housekeeping_every),
            id="housekeeping",
            executor=HOUSEKEEPING_EXECUTOR,
            next_run_time=now,
        )
        self._scheduler.add_listener(self._on_missed, mask=EVENT_JOB_MISSED)
        self._scheduler.add_listener(self._on_skipped, mask=EVENT_JOB_MAX_INSTANCES)
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop scheduling and wait for running jobs (they stop after the page in hand).

        APScheduler's ``shutdown(wait=True)`` holds its job-store lock while it waits for running
        jobs, and a discovery job adding, removing or rescheduling jobs needs that lock: a deadlock.
        So discovery is told to leave the scheduler alone first, APScheduler stops without waiting,
        and the jobs in flight are awaited here (the daemon bounds this by its grace period).
        """
        with self._lock:
            self._stopping = True
        self._scheduler.shutdown(wait=False)
        with self._activity:
            self._activity.wait_for(lambda: self._in_flight == 0)

    @property
    def jobs_in_flight(self) -> int:
        """Jobs running now: polls, discoveries, housekeeping (after a bounded shutdown: the ones still stuck)."""
        with self._activity:
            return self._in_flight

    @contextmanager
    def _job(self) -> Iterator[None]:
        with self._activity:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._activity:
                self._in_flight -= 1
                self._activity.notify_all()

    def _on_missed(self, _event: object) -> None:
        self.misfires += 1

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        """A run came due while APScheduler still counted the target's last one: retry it soon.

        APScheduler counts a run until its future's callbacks have run, a moment after the poll
        set its next run (:meth:`_plan_next`); a run due within that moment — "poll again at
        once" after a nudge — is skipped and the job moved to its trigger's backstop, an hour
        on, and the nudge lost. Unless the target's run is still in hand (running, or waiting
        for a worker: that one plans the next), the run is tried again shortly.
        """
        key = event.job_id
        with self._lock:
            if self._stopping or key in self._polling or self.polls.waiting(key):
                return
            if key in self._pools_of and self._scheduler.get_job(key) is not None:
                when = utc_now() + timedelta(seconds=SKIPPED_RETRY_SECONDS)
                self._scheduler.modify_job(key, next_run_time=when)

    # -- pausing ---------------------------------------------------------------------------------
    def pause_sources(self, reason: str, sources: Iterable[str]) -> None:
        """Skip the runs of ``sources`` until :meth:`resume_sources` is called with ``reason``."""
        with self._activity:
            self._paused[reason] = frozenset(sources)

    def resume_sources(self, reason: str) -> None:
        """Lift the pause taken under ``reason`` (sources paused for another reason stay paused)."""
        with self._activity:
            self._paused.pop(reason, None)

    def wait_sources_idle(self, sources: Iterable[str], timeout: float) -> bool:
        """Wait until no run of ``sources`` is in flight; False when ``timeout`` passed first."""
        names = frozenset(sources)
        with self._activity:
            return self._activity.wait_for(
                lambda: not any(self._running[name] for name in names), timeout
            )

    # -- jobs ------------------------------------------------------------------------------------
    def _discover(self, source_name: str) -> None:
        with self._job():
            self._discover_now(source_name)

    def _discover_now(self, source_name: str) -> None:
        provider = self.runtime.providers[source_name]
        try:
            targets = set(provider.targets())
        except Exception as exc:
            # A rejected credential reads the same in /readyz whether listing or polling found it.
            outcome = "auth_error" if isinstance(exc, AuthError) else "discovery_error"
            self.runtime.health.target_failed(_discovery_key(source_name), outcome, str(exc))
            self.runtime.metrics.discovery(source_name, outcome)
            # Try again after one poll interval, not a whole discovery interval (an hour by
            # default): a source whose first listing failed has no job at all until then.
            retry = self.runtime.config.effective(provider.config, "interval")
            with self._lock:
                if not self._stopping:
                    self._scheduler.modify_job(
                        f"discover:{source_name}", next_run_time=utc_now() + retry
                    )
            return
        self.runtime.health.forget_target(_discovery_key(source_name))
        self.runtime.metrics.discovery(source_name, "ok")
        with self._lock:
            if self._stopping:
                return
            known = self._targets.get(source_name, set())
            for target in sorted(targets - known):
                self._add_target(provider, target)
                self._by_name.setdefault(target.casefold(), set()).add((source_name, target))
            for target in sorted(known - targets):
                key = target_key(source_name, target)
                if self._scheduler.get_job(key) is not None:
                    self._scheduler.remove_job(key)
                self._forget(key)
                self.pacer.remove(key)
                named = self._by_name.get(target.casefold(), set())
                named.discard((source_name, target))
                if not named:
                    self._by_name.pop(target.casefold(), None)
                _log.info("discovery.target_removed", source=source_name, target=target)
            self._targets[source_name] = targets
        if self.runtime.coordinator is not None:
            self.runtime.coordinator.set_targets(
                source_name, (target_key(source_name, target) for target in targets)
            )
        if targets - known:
            _log.info(
                "discovery.targets",
                source=source_name,
                added=len(targets - known),
                total=len(targets),
            )

    def _add_target(self, provider: Provider, target: str) -> None:
        config = self.runtime.config
        source = provider.config
        key = target_key(source.name, target)
        interval = config.effective(source, "interval").total_seconds()
        jitter = config.effective(source, "jitter").total_seconds()
        pool = pool_of(provider)
        quota = provider.request_quota
        if quota is not None:
            self._quotas[pool] = quota
        self._pools_of[key] = pool
        first = self.pacer.add(key, pool=pool, interval=interval, jitter=jitter)
        backstop = max(3600.0, 4 * interval * config.defaults.max_stretch)
        self._scheduler.add_job(
            self._poll,
            _AfterEachPoll(backstop),
            args=[source.name, target],
            id=key,
            next_run_time=utc_now() + timedelta(seconds=first),
            replace_existing=True,
        )

    def _poll(self, source_name: str, target: str) -> None:
        key = target_key(source_name, target)
        with self._job():
            with self._lock:
                self._polling.add(key)
            result = None
            try:
                result = self._poll_now(source_name, target)
            finally:
                self._plan_next(key, result)

    def _plan_next(self, key: str, result: CycleResult | None) -> None:
        """Tell the pacer what the poll found and schedule the target's next run."""
        if result is not None and result.outcome != "rate_limited":
            # A poll the credential's block ended before it asked anything costs nothing; counted,
            # a blocked credential's polls brought its cost per poll down to nothing, so nothing
            # was stretched and the next burst ran into the limit again.
            self._pool_polls[self._pools_of.get(key, "")] += 1
        if result is not None and result.outcome == "ok":
            self.pacer.observe(
                key,
                changed=result.queued > 0,
                in_flight=result.in_flight,
                finished=result.finished,
            )
        delay = self.pacer.next_delay(key)
        with self._lock:
            self._polling.discard(key)
            again = key in self._again
            self._again.discard(key)
            if self._stopping or self._scheduler.get_job(key) is None:
                return
            if again:
                delay = 0.0  # nudged while it ran: the change may be newer than what it read
            deferred = self._nudged.get(key, -math.inf) - time.monotonic()
            if deferred > 0:
                delay = min(delay, deferred)  # a nudge waits for the end of its gap
            if not math.isfinite(delay):
                return  # the pacer no longer knows it: discovery removed it meanwhile
            when = utc_now() + timedelta(seconds=delay)
            if again or deferred > 0:
                self.polls.expedite(key)  # the next run is the nudge's: ahead of the backlog
                self._planned.pop(key, None)
            else:
                self._planned[key] = when  # the pacer's: moved if the plan changes meanwhile
            self._scheduler.modify_job(key, next_run_time=when)

    def _poll_now(self, source_name: str, target: str) -> CycleResult | None:
        if self.runtime.stop.is_set():
            return None
        if not self._current(source_name, target):
            return None  # removed by discovery after this run was submitted
        with self._activity:
            if any(source_name in paused for paused in self._paused.values()):
                return None
        key = target_key(source_name, target)
        coordinator = self.runtime.coordinator
        fence = None
        if coordinator is not None:
            fence = coordinator.begin(key)
            if fence is None:
                return None  # another replica holds this target
        with self._activity:
            self._running[source_name] += 1
        try:
            result = self._run(key, self.runtime.providers[source_name], target, fence)
        finally:
            if coordinator is not None:
                coordinator.end(key)
            with self._activity:
                self._running[source_name] -= 1
                self._activity.notify_all()
        if not self._current(source_name, target):
            # Discovery dropped the target while it ran: its health entry must not linger.
            self._forget(target_key(source_name, target))
            self.pacer.remove(key)
        for listener in self.cycle_listeners:
            try:
                listener(result)
            except Exception:
                _log.exception("scheduler.cycle_listener_failed")
        return result

    def _run(self, key: str, provider: Provider, target: str, fence: Fence | None) -> CycleResult:
        """One poll; a target's first is counted apart (its answers too) from what a poll costs."""
        pool = self._pools_of.get(key, "")
        with self._lock:
            first = key not in self._polled
            self._polled.add(key)
            spent = self._first_spent.setdefault(pool, Tally())
        with tally(spent) if first else nullcontext():
            result = self.runtime.poller.run_target(provider, target, fence=fence)
        if first:
            with self._lock:
                if result.outcome == "rate_limited":
                    self._polled.discard(key)  # a block ended it: its first read is still to come
                else:
                    self._first_polls[pool] += 1
        return result

    # -- nudges ----------------------------------------------------------------------------------
    def find_targets(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """``(source, target)`` of every target whose name is one of ``names`` (case-insensitive)."""
        with self._lock:
            found = {pair for name in names for pair in self._by_name.get(name.casefold(), ())}
        return sorted(found)

    def nudge(self, source_name: str, target: str, *, min_gap: float) -> str:
        """Poll a target soon, as a webhook asked; returns what became of the nudge.

        Nudged polls of one target are at least ``min_gap`` apart, however many nudges come:

        * ``polled``: its next run is now;
        * ``queued``: a poll of it is running, and another follows as soon as it ends (the change
          may have come after that poll read);
        * ``deferred``: it was nudged less than ``min_gap`` ago, so it is polled when the gap ends
          (the nudge is not lost, it only waits);
        * ``throttled``: a deferred poll is already planned, which will read this change too;
        * ``unknown_target``: no such target (discovery has not found it, or it is gone);
        * ``elsewhere``: another replica holds the target and polls it on its own schedule.
        """
        key = target_key(source_name, target)
        now = time.monotonic()
        with self._lock:
            known = not self._stopping and target in self._targets.get(source_name, set())
            job = self._scheduler.get_job(key) if known else None
            if job is None:
                return "unknown_target"
            coordinator = self.runtime.coordinator
            if coordinator is not None and not coordinator.holds(key):
                return "elsewhere"
            return self._nudge_locked(key, job, now, min_gap)

    def _nudge_locked(self, key: str, job: Job, now: float, min_gap: float) -> str:
        """:meth:`nudge` of a known target this process polls (the lock held)."""
        last = self._nudged.get(key)
        if last is not None and last > now:
            return "throttled"
        if last is not None and now - last < min_gap:
            due = last + min_gap
            self._nudged[key] = due
            when = utc_now() + timedelta(seconds=due - now)
            if key not in self._polling and job.next_run_time > when:
                self._scheduler.modify_job(key, next_run_time=when)
                self.polls.expedite(key, queued=False)  # the run at the gap's end, not before
            return "deferred"
        self._nudged[key] = now
        if key in self._polling:
            self._again.add(key)
            return "queued"
        # A run already waiting for a worker (the daemon is behind) moves ahead of the scheduled
        # ones; else the run due now is queued ahead of them.
        if not self.polls.expedite(key):
            self._scheduler.modify_job(key, next_run_time=utc_now())
        return "polled"

    def _forget(self, key: str) -> None:
        """A target left the configuration: drop its health and its per-target series.

        Left in place, ``fetcher_last_success_timestamp_seconds`` of a deleted repository would
        keep a staleness alert firing for ever.
        """
        self._nudged.pop(key, None)
        self._planned.pop(key, None)
        self._polled.discard(key)
        self.polls.forget(key)
        self.runtime.health.forget_target(key)
        self.runtime.metrics.forget_target(*split_key(key))

    def _taken_over(self, keys: Mapping[str, float | None]) -> None:
        """Targets this replica just took: when to poll each first.

        One handed over by a live replica (``keys`` says how many seconds ago it last polled it) is
        polled an interval after that poll, so the two replicas do not both poll it within one
        interval. One whose holder died has waited a lease already: its poll goes to the pool's
        urgent lane, ahead of this replica's own scheduled polls (which may be behind schedule),
        and is due within its jitter, so a takeover of hundreds of targets does not hit the CI
        system in one burst. If a run of it is already waiting for a worker, that run moves ahead.
        """
        config = self.runtime.config
        now = utc_now()
        with self._lock:
            if self._stopping:
                return
            for key, polled_ago in keys.items():
                job = self._scheduler.get_job(key)
                if job is None:
                    continue  # not discovered here yet; its first run comes with discovery
                source, _, _target = key.partition("/")
                provider = self.runtime.providers.get(source)
                if provider is None:
                    continue
                if polled_ago is None and self.polls.expedite(key):
                    continue  # its run waiting in the pool moved ahead: polled next
                jitter = config.effective(provider.config, "jitter").total_seconds()
                wait = random.uniform(0, jitter)
                if polled_ago is not None:
                    interval = config.effective(provider.config, "interval").total_seconds()
                    wait += max(0.0, interval - polled_ago)
                job.modify(next_run_time=now + timedelta(seconds=wait))

    def _handed_over(self, keys: Iterable[str]) -> None:
        """Targets another replica polls now: their health and series are that replica's to show."""
        for key in keys:
            self._forget(key)

    def _current(self, source_name: str, target: str) -> bool:
        with self._lock:
            return target in self._targets.get(source_name, set())

    def pacing_report(self) -> list[dict[str, object]]:
        """The request budgets whose targets are polled less often than configured, and why."""
        return [
            {
                "pool": f.pool,
                "targets": f.targets,
                "hot": f.hot,
                "stretch": f.stretch,
                "hot_stretch": f.hot_stretch,
                "reason": f.reason,
            }
            for f in self.pacer.figures()
            if f.reason
        ]

    def _fit_budgets(self) -> None:
        """Cap each credential's polls so its requests stay under its per-minute limits.

        What a poll costs is measured (answers per poll since the last run, smoothed), so a
        credential whose polls cost 1.4 requests on average and may make 900 a minute is polled
        at most ``0.85 × 900 / 1.4`` times a minute, whatever its targets' intervals ask. A
        target's first poll is left out, its answers and itself: it reads the whole lookback
        (tens of requests), happens once, and averaged in it would stretch every interval of a
        fleet starting up many times over for polls that will never cost that again.
        """
        for pool, quota in list(self._quotas.items()):
            with self._lock:
                mark = _Mark(
                    quota.spent(),
                    self._pool_polls[pool],
                    self._first_spent[pool].counts() if pool in self._first_spent else {},
                    self._first_polls[pool],
                )
            last = self._marks.get(pool)
            polls = (mark.polls - mark.first_polls) - (last.polls - last.first_polls) if last else 0
            if last is None:
                self._marks[pool] = mark
            elif polls >= _MIN_POLLS:  # else measured later, over more polls
                self._marks[pool] = mark
                for resource, count in mark.spent.items():
                    first = mark.first_spent.get(resource, 0) - last.first_spent.get(resource, 0)
                    answers = count - last.spent.get(resource, 0) - first
                    cost = max(0, answers) / polls
                    old = self._per_poll.get((pool, resource))
                    self._per_poll[(pool, resource)] = cost if old is None else (old + cost) / 2
            allowances = quota.allowance()
            ceilings = [
                (BUDGET_SHARE * allowance.per_minute / 60 / cost, allowance.reason)
                for allowance in allowances
                if (cost := self._per_poll.get((pool, allowance.resource), 0.0)) > 0
            ]
            ceiling, reason = min(ceilings) if ceilings else (None, "")
            self.pacer.set_ceiling(pool, ceiling, reason)
            self._report_limit(pool, quota, allowances)
            slowed = self.pacer.slowed_by_ceiling(pool)
            if slowed and self._ceilings.get(pool) != reason:
                _log.info(
                    "pacing.budget_bound",
                    pool=pool,
                    reason=reason,
                    ceiling_per_min=round((ceiling or 0) * 60, 1),
                )
                self._ceilings[pool] = reason
            elif not slowed and pool in self._ceilings:
                _log.info("pacing.budget_free", pool=pool)
                del self._ceilings[pool]

    def _report_limit(self, pool: str, quota: Quota, allowances: list[Allowance]) -> None:
        """Export a pool's tightest per-minute limit (one series, by kind) and its last minute."""
        metrics = self.runtime.metrics
        tightest = min(allowances, key=lambda a: a.per_minute, default=None)
        kind = tightest.kind if tightest is not None else None
        shown = self._limit_kinds.get(pool)
        if shown is not None and shown != kind:
            metrics.request_limit.remove(pool, shown)
        if tightest is not None:
            metrics.request_limit.labels(pool, tightest.kind).set(tightest.per_minute)
            self._limit_kinds[pool] = tightest.kind
        else:
            self._limit_kinds.pop(pool, None)
        metrics.requests_last_minute.labels(pool).set(quota.requests_last_minute())

    def _replan(self) -> None:
        """Move the runs planned on intervals the pacer has changed since (``Pacer.replan``).

        Only runs the pacer planned: not one a nudge or a takeover moved, nor a target's whose
        run is in hand (running or waiting for a worker: it plans the next when it ends).
        """
        with self._lock:
            if self._stopping:
                return
            planned = dict(self._planned)
            keep = self._polling | (self._pools_of.keys() - planned.keys())
        keep |= self.polls.waiting_names()
        for job in self._scheduler.get_jobs():
            when = planned.get(job.id)
            if when is not None and (job.next_run_time is None or job.next_run_time != when):
                keep.add(job.id)
        now = utc_now()
        for key, delay in self.pacer.replan(keep):
            when = now + timedelta(seconds=delay)
            with self._lock:
                job = self._scheduler.get_job(key)
                if self._stopping or key in self._polling or job is None:
                    continue
                if job.next_run_time == self._planned.get(key):
                    self._scheduler.modify_job(key, next_run_time=when)
                    self._planned[key] = when

    def _report_pacing(self) -> None:
        metrics = self.runtime.metrics
        for figures in self.pacer.figures():
            metrics.poll_stretch.labels(figures.pool).set(figures.stretch)
            metrics.hot_targets.labels(figures.pool).set(figures.hot)

    def _overdue(self) -> None:
        """Report the polls running past ``defaults.poll_deadline`` (readiness and a gauge), and the queue."""
        deadline = self.runtime.config.defaults.poll_deadline.total_seconds()
        now = time.monotonic()
        overdue = {
            run.name: now - run.started
            for run in self.polls.running()
            if now - run.started > deadline
        }
        self.runtime.health.set_overdue(overdue, deadline=deadline)
        self.runtime.metrics.polls_overdue.set(len(overdue))
        urgent, scheduled = self.polls.queued()
        self.runtime.metrics.polls_waiting.labels("urgent").set(urgent)
        self.runtime.metrics.polls_waiting.labels("scheduled").set(scheduled)

    def _housekeeping(self) -> None:
        # Counted as a job in flight: shutdown must not close the store under its feet.
        with self._job():
            if not self._stopping:
                self._housekeep()

    def _housekeep(self) -> None:
        runtime = self.runtime
        # The heartbeat first: a store that hangs below must show as a wedged process.
        runtime.health.beat()
        self._fit_budgets()
        self._report_pacing()
        self._replan()
        self._overdue()
        try:
            problem = runtime.store.check_writable()
            runtime.health.set_store_problem(problem)
            for stats in runtime.store.stats():
                runtime.metrics.outbox_depth.labels(stats.sink).set(stats.pending)
                runtime.metrics.dead_letters.labels(stats.sink).set(stats.dead)
            now = utc_now()
            for key, state in runtime.health.snapshot().items():
                if state.last_success is not None:
                    runtime.metrics.cursor_lag.labels(*split_key(key)).set(
                        (now - state.last_success).total_seconds()
                    )
            if time.monotonic() - self._last_prune > PRUNE_EVERY.total_seconds():
                self._last_prune = time.monotonic()
                cutoff = now - runtime.config.state.delivered_retention
                pruned = runtime.store.prune_delivered(older_than=cutoff)
                if pruned:
                    _log.info("store.pruned", rows=pruned)
        except Exception as exc:
            runtime.health.set_store_problem(str(exc))

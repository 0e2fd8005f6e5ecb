"""When each target is polled next: adaptive intervals within a fixed budget, jitter that does not drift.

A fixed 60 s schedule spends its requests evenly, though most targets are idle most of the time and a
few have a deployment in flight whose next step someone is waiting for. The :class:`Pacer` spends
the same number of polls differently:

* a target is **hot** while it has work in flight — a deployment last seen in a non-terminal status
  (pending, queued, waiting, in progress), for at most ``max_open_age`` — or for ``cooldown`` after a
  poll queued something new; a hot target is polled every ``hot_interval``;
* the targets sharing a **pool** (one CI system's credential) have a budget of polls per second: what
  their configured intervals add up to, or less when the pool has a ceiling of its own
  (:meth:`Pacer.set_ceiling`, the credential's rate limits);
* the hot targets' extra polls are paid for by the idle ones, whose intervals stretch by the same
  factor, at most ``max_stretch`` times their configured interval; when that is not enough, the
  hot targets slow down instead (never below the idle ones' rate). A ceiling below the configured
  rate stretches every target alike, beyond ``max_stretch`` if it must.

**Jitter** is drawn afresh for each run around an unjittered *nominal* time: the next nominal time is
the previous one plus the interval (or an interval from now, when that is already past), and the
run happens up to
``jitter`` after it. Gaps therefore average the interval exactly, where APScheduler's interval
trigger adds each jitter to the previous jittered run, so gaps average interval + jitter / 2.

A run is planned when the previous poll ends, on the interval the plan gives then; when the plan
changes (a burst of hot targets cools, a ceiling lifts) the runs planned on the old intervals are
**replanned** (:meth:`Pacer.replan`, every housekeeping): otherwise the targets planned at
``max_stretch`` times their interval during a burst would keep the pool below its budget for
minutes after it.

The pacer only computes; the scheduler asks it after each poll when the next one is due. Times are
``clock()`` seconds (monotonic); everything is thread-safe.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field

__all__ = ["Pacer", "PoolFigures"]

#: Open deployments remembered per target (a target with more in flight is hot either way).
MAX_OPEN = 64
#: A target's planned next run is moved when its interval now differs by more than this share
#: from the interval it was planned on (smaller changes are left to its next run).
REPLAN = 0.2


@dataclass
class _Target:
    pool: str
    interval: float
    jitter: float
    nominal: float
    open: dict[str, float] = field(default_factory=dict)
    changed_at: float = -math.inf
    #: The nominal time of the last run, and the interval from it to ``nominal`` (None: no run yet).
    previous: float = -math.inf
    planned: float | None = None


@dataclass
class _Pool:
    #: Sum of 1 / configured interval over the pool's targets: polls per second of a fixed schedule.
    rate: float = 0.0
    targets: int = 0
    #: Polls per second the pool may not exceed (its credential's limits), None for no ceiling.
    ceiling: float | None = None
    ceiling_reason: str = ""
    #: Targets that may be hot (pruned as they cool down).
    warm: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PoolFigures:
    """How a pool is paced now (for metrics and ``/readyz``)."""

    pool: str
    targets: int
    hot: int
    #: Idle targets' interval over their configured one (1.0 = as configured).
    stretch: float
    #: Hot targets' interval over ``hot_interval`` (1.0 = as fast as wanted).
    hot_stretch: float
    #: Why the pool runs slower than configured, empty when it does not.
    reason: str


@dataclass(frozen=True)
class _Plan:
    stretch: float
    hot_stretch: float
    hot: frozenset[str]


class Pacer:
    """Per-target next-run times within per-pool budgets (see the module docstring)."""

    def __init__(
        self,
        *,
        hot_interval: float,
        cooldown: float,
        max_stretch: float,
        max_open_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.hot_interval = hot_interval
        self.cooldown = cooldown
        self.max_stretch = max(1.0, max_stretch)
        self.max_open_age = max_open_age
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._targets: dict[str, _Target] = {}
        self._pools: dict[str, _Pool] = {}

    # -- targets -----------------------------------------------------------------------------------
    def add(self, key: str, *, pool: str, interval: float, jitter: float) -> float:
        """Start pacing a target; returns the delay of its first run (spread over the jitter)."""
        interval = max(interval, 1e-3)
        first = self._rng() * min(jitter, interval)
        with self._lock:
            self.remove_locked(key)
            self._targets[key] = _Target(pool, interval, jitter, self._clock() + first)
            state = self._pools.setdefault(pool, _Pool())
            state.rate += 1.0 / interval
            state.targets += 1
        return first

    def remove(self, key: str) -> None:
        """Stop pacing a target (it left the configuration)."""
        with self._lock:
            self.remove_locked(key)

    def remove_locked(self, key: str) -> None:
        """:meth:`remove`, the lock held by the caller."""
        target = self._targets.pop(key, None)
        if target is None:
            return
        state = self._pools[target.pool]
        state.rate -= 1.0 / target.interval
        state.targets -= 1
        state.warm.discard(key)
        if state.targets <= 0:
            self._pools.pop(target.pool, None)

    def set_ceiling(self, pool: str, polls_per_second: float | None, reason: str = "") -> None:
        """Cap a pool's polls per second (None lifts the cap); ``reason`` says why, for operators."""
        with self._lock:
            state = self._pools.setdefault(pool, _Pool())
            state.ceiling = polls_per_second
            state.ceiling_reason = reason if polls_per_second is not None else ""

    # -- what polls found --------------------------------------------------------------------------
    def observe(
        self,
        key: str,
        *,
        changed: bool,
        in_flight: Iterable[str] = (),
        finished: Iterable[str] = (),
    ) -> None:
        """Record a poll: whether it queued something new, which deployments are open or done."""
        now = self._clock()
        with self._lock:
            target = self._targets.get(key)
            if target is None:
                return
            if changed:
                target.changed_at = now
            for deployment in finished:
                target.open.pop(deployment, None)
            for deployment in in_flight:
                if deployment not in target.open and len(target.open) < MAX_OPEN:
                    target.open[deployment] = now
            if self._is_hot(target, now):
                self._pools[target.pool].warm.add(key)

    def _is_hot(self, target: _Target, now: float) -> bool:
        if self.hot_interval <= 0 or self.hot_interval >= target.interval:
            return False
        if now - target.changed_at < self.cooldown:
            return True
        stale = [d for d, seen in target.open.items() if now - seen >= self.max_open_age]
        for deployment in stale:
            del target.open[deployment]
        return bool(target.open)

    # -- when next ---------------------------------------------------------------------------------
    def next_delay(self, key: str) -> float:
        """Seconds until the target's next run, moving its nominal time on by one interval."""
        now = self._clock()
        with self._lock:
            target = self._targets.get(key)
            if target is None:
                return math.inf
            plan = self._plan(target.pool, now)
            interval = self._interval(key, target, plan)
            nominal = target.nominal + interval
            # A run more than an interval late (a busy process, a target just turned hot on an
            # idle schedule) starts a new rhythm from now instead of catching up in a burst.
            target.previous = target.nominal if nominal >= now else now
            target.nominal = target.previous + interval
            target.planned = interval
            return target.nominal - now + self._jitter(target, interval)

    def _jitter(self, target: _Target, interval: float) -> float:
        jitter = target.jitter * interval / target.interval
        return self._rng() * min(jitter, interval / 2)

    def replan(self, busy: Container[str] = ()) -> list[tuple[str, float]]:
        """Targets whose next run was planned on a longer interval than they have now: (key, delay).

        A target's next run is planned when its poll ends, on the interval its pool's plan gives
        then. Idle targets planned while many were hot wait up to ``max_stretch`` times their
        interval, and keep waiting after the hot ones have cooled: the pool then polls less than
        its budget until they come round (its stretch averages out over time, but the waits are
        weighted by it, so the polls fall short). Moved to the interval they have now, counted
        from their last run, they keep the pool at its budget. ``busy`` targets (a run in hand,
        which plans the next) are left alone; the delays are jittered like any run's.
        """
        now = self._clock()
        out: list[tuple[str, float]] = []
        with self._lock:
            plans: dict[str, _Plan] = {}
            for key, target in self._targets.items():
                if target.planned is None or key in busy:
                    continue
                plan = plans.get(target.pool)
                if plan is None:
                    plan = plans[target.pool] = self._plan(target.pool, now)
                interval = self._interval(key, target, plan)
                if abs(interval - target.planned) <= target.planned * REPLAN:
                    continue
                nominal = max(target.previous + interval, now)
                if abs(nominal - target.nominal) < 1.0:
                    continue
                target.nominal, target.planned = nominal, interval
                out.append((key, nominal - now + self._jitter(target, interval)))
        return out

    def interval(self, key: str) -> float:
        """The target's interval now (seconds), or NaN for an unknown target."""
        now = self._clock()
        with self._lock:
            target = self._targets.get(key)
            if target is None:
                return math.nan
            return self._interval(key, target, self._plan(target.pool, now))

    def _interval(self, key: str, target: _Target, plan: _Plan) -> float:
        cool = target.interval * plan.stretch
        if key not in plan.hot:
            return cool
        return min(min(self.hot_interval, target.interval) * plan.hot_stretch, cool)

    def _plan(self, pool: str, now: float) -> _Plan:
        """Stretch factors of one pool's idle and hot targets (the lock held)."""
        state = self._pools[pool]
        hot: set[str] = set()
        hot_rate = hot_configured = 0.0
        for key in list(state.warm):
            target = self._targets.get(key)
            if target is None or not self._is_hot(target, now):
                state.warm.discard(key)
                continue
            hot.add(key)
            hot_rate += 1.0 / min(self.hot_interval, target.interval)
            hot_configured += 1.0 / target.interval
        budget = state.rate if state.ceiling is None else min(state.rate, state.ceiling)
        base = state.rate / budget if budget > 0 else 1.0
        cool_rate = state.rate - hot_configured  # of the idle targets, as configured
        if not hot:
            return _Plan(max(base, 1.0), 1.0, frozenset())
        slowest_cool = cool_rate / (self.max_stretch * base)
        if hot_rate + slowest_cool <= budget:
            left = budget - hot_rate
            stretch = cool_rate / left if cool_rate > 0 and left > 0 else base
            return _Plan(max(stretch, base, 1.0), 1.0, frozenset(hot))
        hot_budget = budget - slowest_cool
        hot_stretch = hot_rate / hot_budget if hot_budget > 0 else math.inf
        return _Plan(self.max_stretch * base, max(hot_stretch, 1.0), frozenset(hot))

    def slowed_by_ceiling(self, pool: str) -> bool:
        """Whether a pool's ceiling is below what its targets' intervals ask."""
        with self._lock:
            state = self._pools.get(pool)
            return state is not None and state.ceiling is not None and state.ceiling < state.rate

    # -- reporting ---------------------------------------------------------------------------------
    def figures(self) -> list[PoolFigures]:
        """Every pool's pacing now."""
        now = self._clock()
        out: list[PoolFigures] = []
        with self._lock:
            for name, state in sorted(self._pools.items()):
                if state.targets <= 0:
                    continue
                plan = self._plan(name, now)
                out.append(
                    PoolFigures(
                        name,
                        state.targets,
                        len(plan.hot),
                        round(plan.stretch, 3),
                        round(plan.hot_stretch, 3),
                        self._reason(state, plan),
                    )
                )
        return out

    def _reason(self, state: _Pool, plan: _Plan) -> str:
        budget = state.rate if state.ceiling is None else min(state.rate, state.ceiling)
        if state.ceiling is not None and budget < state.rate:
            return (
                f"{state.ceiling_reason or 'a request budget'}: {budget * 60:.0f} polls/min "
                f"where the intervals ask for {state.rate * 60:.0f}"
            )
        if plan.stretch > 1.0 + 1e-9:
            return (
                f"idle targets wait longer while {len(plan.hot)} with work in flight are "
                f"polled every {self.hot_interval:g}s (same number of polls)"
            )
        return ""

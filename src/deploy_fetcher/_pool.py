"""A thread pool for polls in which a slow poll does not hold a worker from the others.

A poll cannot be cancelled from outside (a thread cannot be stopped); its requests end at their
deadlines, but a poll of many pages against a server that trickles can still run for minutes. In a
plain pool of N workers, N such polls stop every other source. Here ``size`` workers serve the polls
that run normally; a poll that has run longer than ``slow_after`` seconds stops counting against
them, and the pool starts another thread for the queue, up to ``limit`` threads in all. When the slow
poll ends, its thread is the one that goes away.

Every task can be asked for: :meth:`ElasticPool.running` lists what runs and for how long, which the
scheduler turns into "overdue" in ``/readyz`` and the metrics.

Tasks wait in two lanes. Most wait in the **scheduled** lane, first in, first out. A task someone is
waiting for (a target a webhook just announced a change on, or one taken over from a replica that
died) is *expedited* (:meth:`ElasticPool.expedite`): if it is queued already it moves to the
**urgent** lane, else the next task of that name is queued there. Free workers take urgent tasks
first, but not for ever: while both lanes wait, every ``URGENT_RUN + 1``-th task taken is the oldest
scheduled one, so a storm of webhooks slows the schedule down to a quarter of the workers'
throughput at worst and never stops it. A task is never run twice by being expedited: it moves, it is
not copied.

Within each lane, tasks are taken **fairly by group** (a poll's group is its request budget: the
credential whose limits it spends). The next task is the oldest one of the group with the fewest
tasks running now, not the oldest overall. A credential at its limit makes its polls wait inside
their workers (for the budget, or for the one connection a GitHub credential sends through); taken
first in, first out, a backlog of such polls filled every worker and the other credentials' polls
stopped behind it (measured: 16 of 16 workers waiting on one GitHub credential while 3 333 GitLab
projects waited for their first poll). Taken fairly, such a credential holds about its share of the
workers and the others go on. With one group the order is plain first in, first out.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Final, ParamSpec, TypeVar

__all__ = ["URGENT_RUN", "ElasticPool", "Running"]

P = ParamSpec("P")
T = TypeVar("T")

#: An idle thread beyond ``size`` goes away after this long.
_IDLE_SECONDS: Final = 5.0
#: How often the pool looks for polls that became slow while the queue waits.
_TICK_SECONDS: Final = 0.5
#: Urgent tasks taken in a row, while scheduled ones wait, before one scheduled task is taken.
URGENT_RUN: Final = 3


@dataclass
class Running:
    """A task running now: its name (the job's), and when it started (``time.monotonic``)."""

    name: str
    started: float
    slow: bool = False
    group: str = ""


@dataclass
class _Task:
    future: Future[Any]
    call: Callable[[], Any]
    name: str
    group: str = ""
    #: Submission order, to find the oldest task across groups.
    seq: int = 0


class _Lane:
    """Waiting tasks, first in, first out within each group; taken from the least busy group."""

    def __init__(self) -> None:
        self._groups: dict[str, deque[_Task]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[_Task]:
        return itertools.chain.from_iterable(list(self._groups.values()))

    def append(self, task: _Task) -> None:
        """Queue ``task`` behind the others of its group."""
        self._groups.setdefault(task.group, deque()).append(task)
        self._count += 1

    def take(self, running: Counter[str]) -> _Task:
        """The oldest task of the group with the fewest running tasks (ties: the oldest task)."""
        group = min(self._groups, key=lambda g: (running[g], self._groups[g][0].seq))
        return self._pop(group, self._groups[group].popleft())

    def remove(self, name: str) -> _Task | None:
        """Take the first waiting task called ``name`` out of the lane, if there is one."""
        for group, tasks in self._groups.items():
            for task in tasks:
                if task.name == name:
                    tasks.remove(task)
                    return self._pop(group, task)
        return None

    def _pop(self, group: str, task: _Task) -> _Task:
        if not self._groups[group]:
            del self._groups[group]
        self._count -= 1
        return task


@dataclass
class _State:
    #: The scheduled lane and the urgent one.
    queue: _Lane = field(default_factory=_Lane)
    urgent: _Lane = field(default_factory=_Lane)
    #: Tasks running on a normal worker now, by group (what :meth:`_Lane.take` shares the
    #: workers by). A slow task no longer counts: it gave its worker back, and counted, a group
    #: with hung polls would wait behind every other group for as long as they had work.
    busy: Counter[str] = field(default_factory=Counter)
    #: Names whose next task goes to the urgent lane (expedited while none was queued).
    expedited: set[str] = field(default_factory=set)
    #: Urgent tasks taken in a row while scheduled ones waited.
    streak: int = 0
    running: dict[int, Running] = field(default_factory=dict)
    threads: int = 0
    idle: int = 0
    shutdown: bool = False


class ElasticPool(Executor):
    """``size`` workers for normal tasks, more (up to ``limit``) while tasks run past ``slow_after``."""

    def __init__(
        self,
        size: int,
        *,
        slow_after: float,
        limit: int,
        name: str = "poll",
        clock: Callable[[], float] = time.monotonic,
        group_of: Callable[[str], str] = lambda _name: "",
    ) -> None:
        if size < 1 or limit < size:
            msg = f"need 1 <= size <= limit, got size={size}, limit={limit}"
            raise ValueError(msg)
        self.size = size
        self.limit = limit
        self.slow_after = slow_after
        self._name = name
        self._clock = clock
        self._group_of = group_of
        self._cond = threading.Condition()
        self._state = _State()
        self._ids = itertools.count()
        self._seq = itertools.count()
        self._ticker: threading.Thread | None = None

    # -- Executor ----------------------------------------------------------------------------------
    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``fn``; it runs as soon as a worker is free (or one more may be started)."""
        future: Future[T] = Future()
        name = str(getattr(args[0], "id", "") if args else "")
        task = _Task(future, lambda: fn(*args, **kwargs), name, self._group_of(name))
        with self._cond:
            task.seq = next(self._seq)
            if self._state.shutdown:
                msg = "cannot submit after shutdown"
                raise RuntimeError(msg)
            if task.name and task.name in self._state.expedited:
                self._state.expedited.discard(task.name)
                self._state.urgent.append(task)
            else:
                self._state.queue.append(task)
            self._grow()
            # Every waiter: the watch thread waits on the same condition, and must not be the
            # only one woken while an idle worker sleeps on.
            self._cond.notify_all()
            if self._ticker is None:
                self._ticker = threading.Thread(
                    target=self._tick, name=f"{self._name}-pool-watch", daemon=True
                )
                self._ticker.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; queued ones still run unless ``cancel_futures``."""
        with self._cond:
            self._state.shutdown = True
            if cancel_futures:
                for lane in (self._state.urgent, self._state.queue):
                    for task in list(lane):
                        task.future.cancel()
                self._state.urgent, self._state.queue = _Lane(), _Lane()
            self._cond.notify_all()
            if wait:
                self._cond.wait_for(lambda: self._state.threads == 0)

    # -- the urgent lane ---------------------------------------------------------------------------
    def expedite(self, name: str, *, queued: bool = True) -> bool:
        """Run the task called ``name`` before the scheduled ones; True when one waits in the urgent lane now.

        A queued task moves to the urgent lane (unless ``queued`` is False: only a later task should
        go first); otherwise the next task submitted under that name goes there (until
        :meth:`forget` is called for it).
        """
        if not name:
            return False
        with self._cond:
            state = self._state
            task = state.queue.remove(name) if queued else None
            if task is not None:
                state.urgent.append(task)
                return True
            if any(task.name == name for task in state.urgent):
                return True
            state.expedited.add(name)
            return False

    def forget(self, name: str) -> None:
        """Drop an :meth:`expedite` still waiting for a task of that name (its job is gone)."""
        with self._cond:
            self._state.expedited.discard(name)

    def waiting(self, name: str) -> bool:
        """Whether a task of that name waits in either lane."""
        with self._cond:
            return any(
                t.name == name for lane in (self._state.urgent, self._state.queue) for t in lane
            )

    def waiting_names(self) -> set[str]:
        """The names of the tasks waiting in either lane."""
        with self._cond:
            return {t.name for lane in (self._state.urgent, self._state.queue) for t in lane}

    def queued(self) -> tuple[int, int]:
        """Tasks waiting now: ``(urgent, scheduled)``."""
        with self._cond:
            return len(self._state.urgent), len(self._state.queue)

    # -- what runs ---------------------------------------------------------------------------------
    def running(self) -> list[Running]:
        """The tasks running now (copies), oldest first."""
        with self._cond:
            items = [
                Running(r.name, r.started, r.slow, r.group) for r in self._state.running.values()
            ]
        return sorted(items, key=lambda r: r.started)

    @property
    def threads(self) -> int:
        """Worker threads alive now."""
        with self._cond:
            return self._state.threads

    # -- inside ------------------------------------------------------------------------------------
    def _normal(self) -> int:
        return sum(1 for r in self._state.running.values() if not r.slow)

    def _grow(self) -> None:
        """Start a thread when work waits, no thread is idle, and a normal worker is free."""
        state = self._state
        waiting = len(state.queue) + len(state.urgent) - state.idle
        while (
            waiting > 0 and state.threads < self.limit and self._normal() + state.idle < self.size
        ):
            state.threads += 1
            state.idle += 1
            waiting -= 1
            threading.Thread(
                target=self._work, name=f"{self._name}-{next(self._ids)}", daemon=True
            ).start()

    def _mark_slow(self) -> bool:
        """Flag the tasks that became slow; True when any did (a worker is free for the queue)."""
        now = self._clock()
        changed = False
        for item in self._state.running.values():
            if not item.slow and now - item.started >= self.slow_after:
                item.slow = changed = True
                self._release_group(item.group)  # it no longer holds a normal worker
        return changed

    def _release_group(self, group: str) -> None:
        self._state.busy[group] -= 1
        if not self._state.busy[group]:
            del self._state.busy[group]

    def _tick(self) -> None:
        while True:
            with self._cond:
                if self._state.shutdown:
                    return
                if self._mark_slow():
                    self._cond.notify_all()  # an idle thread may take a queued task now
                self._grow()
                self._cond.wait(_TICK_SECONDS)

    def _next(self) -> _Task:
        """The next task to run, from a lane that has one (the lock held; see the module doc)."""
        state = self._state
        if state.urgent and (not state.queue or state.streak < URGENT_RUN):
            state.streak = state.streak + 1 if state.queue else 0
            return state.urgent.take(state.busy)
        state.streak = 0
        return state.queue.take(state.busy)

    def _take(self) -> _Task | None:
        """The next task, or None when this thread should end (called with the lock held)."""
        state = self._state
        while True:
            waiting = bool(state.queue or state.urgent)
            if waiting and self._normal() < self.size:
                state.idle -= 1
                return self._next()
            if state.shutdown and not waiting:
                break
            timed_out = not self._cond.wait(_IDLE_SECONDS)
            takeable = (state.queue or state.urgent) and self._normal() < self.size
            if timed_out and not takeable and state.threads > self.size:
                break
        state.idle -= 1
        state.threads -= 1
        self._cond.notify_all()
        return None

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            with self._cond:
                task = self._take()
                if task is None:
                    return
                if not task.future.set_running_or_notify_cancel():
                    self._state.idle += 1
                    continue
                self._state.running[me] = Running(task.name, self._clock(), group=task.group)
                self._state.busy[task.group] += 1
            try:
                task.future.set_result(task.call())
            except BaseException as exc:
                task.future.set_exception(exc)
            with self._cond:
                ran = self._state.running.pop(me)
                if not ran.slow:
                    self._release_group(ran.group)
                if ran.slow and self._state.threads > self.size:
                    # The thread that ran late is the one that goes: the pool shrinks back.
                    self._state.threads -= 1
                    self._cond.notify_all()
                    return
                self._state.idle += 1
                self._grow()

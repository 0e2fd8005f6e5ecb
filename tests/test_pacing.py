"""Adaptive poll intervals: hot targets more often, idle ones less, the same polls in all; no drift."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from deploy_fetcher.pacing import Pacer


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pacer(clock: Clock, *, seed: int = 1, **options: float) -> Pacer:
    settings = {"hot_interval": 15.0, "cooldown": 120.0, "max_stretch": 4.0} | options
    return Pacer(clock=clock, rng=random.Random(seed).random, **settings)


def _run(pacer: Pacer, clock: Clock, keys: list[str], seconds: float) -> dict[str, list[float]]:
    """Play the schedule for ``seconds``: each target runs when due; its run times by key."""
    due = {key: clock.now + pacer.add(key, pool="p", interval=60, jitter=10) for key in keys}
    runs: dict[str, list[float]] = {key: [] for key in keys}
    end = clock.now + seconds
    while True:
        key = min(due, key=due.__getitem__)
        if due[key] > end:
            return runs
        clock.now = due[key]
        runs[key].append(clock.now)
        due[key] = clock.now + pacer.next_delay(key)


def test_jitter_does_not_accumulate() -> None:
    """With a 60 s interval and 10 s of jitter, gaps average 60 s (APScheduler's average 65 s)."""
    clock = Clock()
    runs = _run(_pacer(clock), clock, ["a"], 60 * 2000)["a"]
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert (60.0, True) == (
        round(statistics.mean(gaps)),
        all(50 <= gap <= 70 for gap in gaps),
    )


def test_idle_targets_keep_their_interval() -> None:
    """Without work in flight anywhere, every target is polled at its configured interval."""
    clock = Clock()
    pacer = _pacer(clock)
    for key in ("a", "b", "c"):
        pacer.add(key, pool="p", interval=60, jitter=0)
    assert [60.0, 60.0, 60.0] == [pacer.interval(k) for k in ("a", "b", "c")]


def test_hot_targets_are_paid_for_by_idle_ones() -> None:
    """One target in ten with a deployment in flight: polled every 15 s, the others wait longer.

    10 targets at 60 s make 10 polls a minute; hot at 15 s takes 4 of them, so the 9 idle ones
    share 6: every 90 s.
    """
    clock = Clock()
    pacer = _pacer(clock)
    keys = [f"t{i}" for i in range(10)]
    for key in keys:
        pacer.add(key, pool="p", interval=60, jitter=0)
    pacer.observe("t0", changed=False, in_flight=["deploy-1"])
    intervals = [pacer.interval(key) for key in keys]
    polls_per_minute = sum(60 / i for i in intervals)
    assert (15.0, 90.0, 10.0) == (
        intervals[0],
        round(intervals[1], 6),
        round(polls_per_minute, 6),
    )


def test_a_finished_deployment_cools_the_target_after_the_cooldown() -> None:
    """A target is hot while its deployment runs and for ``cooldown`` after news, then idle again."""
    clock = Clock()
    pacer = _pacer(clock)
    for key in ("a", *(f"idle{i}" for i in range(9))):
        pacer.add(key, pool="p", interval=60, jitter=0)
    pacer.observe("a", changed=True, in_flight=["d1"])
    running = pacer.interval("a")
    clock.now += 30
    pacer.observe("a", changed=True, finished=["d1"])
    just_finished = pacer.interval("a")
    clock.now += 121
    assert (15.0, 15.0, 60.0) == (running, just_finished, pacer.interval("a"))


def test_too_many_hot_targets_slow_down_instead_of_overspending() -> None:
    """When idle targets at ``max_stretch`` cannot pay for every hot one, the hot ones slow down."""
    clock = Clock()
    pacer = _pacer(clock, max_stretch=2.0)
    keys = [f"t{i}" for i in range(4)]
    for key in keys:
        pacer.add(key, pool="p", interval=60, jitter=0)
    for key in keys[:3]:
        pacer.observe(key, changed=True)
    intervals = [pacer.interval(key) for key in keys]
    # 4 polls a minute: the idle one at 120 s takes 0.5, three hot ones share 3.5 → every 51.4 s.
    assert (4.0, 120.0) == (round(sum(60 / i for i in intervals), 6), intervals[3])
    assert 15 < intervals[0] < 60


def test_a_ceiling_stretches_every_target_alike() -> None:
    """A pool capped below what its intervals ask (a credential's limit) stretches them all."""
    clock = Clock()
    pacer = _pacer(clock)
    for i in range(30):
        pacer.add(f"t{i}", pool="p", interval=60, jitter=0)
    pacer.set_ceiling("p", 10 / 60, reason="github credential gh: 900 points/min")
    figures = pacer.figures()[0]
    assert (180.0, 3.0) == (round(pacer.interval("t0"), 6), figures.stretch)
    assert figures.reason.startswith("github credential gh: 900 points/min: 10 polls/min")


def test_a_late_run_does_not_cause_a_burst() -> None:
    """A run that happened long after its time is followed by one an interval later, not a catch-up."""
    clock = Clock()
    pacer = _pacer(clock)
    clock.now += pacer.add("a", pool="p", interval=60, jitter=0)
    clock.now += 600  # the run was ten intervals late
    assert 60.0 == pytest.approx(pacer.next_delay("a"))


def test_adaptive_intervals_can_be_turned_off() -> None:
    """``hot_interval: 0s`` polls a busy target at its interval like any other."""
    clock = Clock()
    pacer = _pacer(clock, hot_interval=0.0)
    pacer.add("a", pool="p", interval=60, jitter=0)
    pacer.add("b", pool="p", interval=60, jitter=0)
    pacer.observe("a", changed=True, in_flight=["d"])
    assert [60.0, 60.0] == [pacer.interval("a"), pacer.interval("b")]


def test_same_number_of_polls_over_a_long_run() -> None:
    """Played for hours with a few targets busy at a time, the adaptive schedule polls no more."""
    clock = Clock()
    pacer = _pacer(clock)
    keys = [f"t{i}" for i in range(20)]
    due = {key: clock.now + pacer.add(key, pool="p", interval=60, jitter=10) for key in keys}
    polls = 0
    busy = random.Random(7)
    end = clock.now + 6 * 3600
    while True:
        key = min(due, key=due.__getitem__)
        if due[key] > end:
            break
        clock.now = due[key]
        polls += 1
        if busy.random() < 0.05:  # a new deployment starts, and ends a few polls later
            pacer.observe(key, changed=True, in_flight=[f"{key}-{polls}"])
        elif busy.random() < 0.3:
            pacer.observe(key, changed=False, finished=[f"{key}-{p}" for p in range(polls)][-5:])
        due[key] = clock.now + pacer.next_delay(key)
    fixed = 20 * 6 * 60
    assert polls <= fixed * 1.02


def test_runs_planned_while_many_were_hot_are_moved_back_when_they_cool() -> None:
    """Idle targets planned at 4 × 60 s while half the pool was hot wait 60 s once it has cooled."""
    clock = Clock()
    pacer = _pacer(clock, cooldown=0.0)
    keys = [f"t{i}" for i in range(10)]
    for key in keys:
        pacer.add(key, pool="p", interval=60, jitter=0)
    for key in keys[:5]:
        pacer.observe(key, changed=False, in_flight=[f"{key}-deploy"])
    stretched = [pacer.next_delay(key) for key in keys[5:]]
    clock.now += 10
    for key in keys[:5]:
        pacer.observe(key, changed=False, finished=[f"{key}-deploy"])
    moved = dict(pacer.replan(busy={"t9"}))
    assert ([240.0] * 5, {"t5": 50.0, "t6": 50.0, "t7": 50.0, "t8": 50.0}) == (stretched, moved)


def test_a_burst_of_hot_targets_does_not_cost_polls_afterwards() -> None:
    """A third of 300 targets hot for a minute, replanned every 15 s: 10 minutes make the fixed polls."""
    clock = Clock()
    pacer = _pacer(clock)
    keys = [f"t{i}" for i in range(300)]
    due = {key: clock.now + pacer.add(key, pool="p", interval=60, jitter=10) for key in keys}
    start, polls = clock.now, 0
    housekeeping, end = clock.now + 15, clock.now + 600
    while min(*due.values(), housekeeping) <= end:
        key = min(due, key=due.__getitem__)
        if housekeeping < due[key]:
            clock.now, housekeeping = housekeeping, housekeeping + 15
            due.update({k: clock.now + delay for k, delay in pacer.replan()})
            continue
        clock.now = due[key]
        polls += 1
        pacer.observe(key, changed=clock.now - start < 60 and int(key[1:]) % 3 == 0)
        due[key] = clock.now + pacer.next_delay(key)
    assert True is (0.98 <= polls / (300 * 10) <= 1.03)

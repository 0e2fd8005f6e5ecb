"""The scheduler: one job per target, no overlapping runs, discovery adds and removes targets."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from prometheus_client import generate_latest
from structlog.testing import capture_logs

from deploy_fetcher.config import FetcherConfig, SourceConfig
from deploy_fetcher.engine import Runtime
from deploy_fetcher.providers import Page, Provider
from deploy_fetcher.scheduler import Scheduler
from tests.support import wait_until


class SlowProvider(Provider):
    """Takes longer than its interval and records how many of its runs overlap."""

    name = "slow"
    config_model = SourceConfig

    def __init__(self, config, context, targets=("a",), seconds=0.6):
        super().__init__(config, context)
        self._targets = list(targets)
        self.seconds = seconds
        self.running: dict[str, int] = {}
        self.max_parallel: dict[str, int] = {}
        self.runs: dict[str, int] = {}
        self.lock = threading.Lock()

    def targets(self):
        return list(self._targets)

    def poll(self, target, cursor):
        with self.lock:
            self.running[target] = self.running.get(target, 0) + 1
            self.max_parallel[target] = max(self.max_parallel.get(target, 0), self.running[target])
            self.runs[target] = self.runs.get(target, 0) + 1
        time.sleep(self.seconds)
        with self.lock:
            self.running[target] -= 1
        yield Page([], {"n": self.runs[target]})

    def backfill(self, target, since, until):
        return iter(())


def _runtime(tmp_path, provider_targets=("a", "b"), interval=1):
    config = FetcherConfig.model_validate(
        {
            "state": {"path": str(tmp_path / "s.db")},
            "defaults": {"interval": "1s", "jitter": "0s", "discovery_interval": "1s"},
        }
    )
    config = config.model_copy(
        update={"sources": [SourceConfig(name="slow", provider="slow", interval=interval)]}
    )
    made = []

    def factory(source, context):
        made.append(SlowProvider(source, context, provider_targets, seconds=1.3))
        return made[-1]

    runtime = Runtime(config, provider_resolver=lambda _name: factory)
    return runtime, made[0]


def test_runs_of_one_target_never_overlap_and_targets_run_in_parallel(tmp_path):
    """A 1.3 s poll on a 1 s interval never runs twice at once; two targets do run side by side."""
    runtime, provider = _runtime(tmp_path)
    scheduler = Scheduler(runtime, max_workers=4)
    scheduler.start()
    try:
        wait_until(
            lambda: min(provider.runs.get("a", 0), provider.runs.get("b", 0)) >= 2, timeout=15
        )
    finally:
        runtime.stop.set()
        scheduler.shutdown()
        runtime.close()
    assert {"a": 1, "b": 1} == provider.max_parallel
    assert {"slow/a", "slow/b"} == set(runtime.health.snapshot())


def test_discovery_adds_and_removes_targets(tmp_path):
    """A target that disappears from targets() loses its job; a new one gets one."""
    runtime, provider = _runtime(tmp_path, ("a",))
    provider.seconds = 0.0
    scheduler = Scheduler(runtime, max_workers=2)
    scheduler.start()
    try:
        wait_until(lambda: provider.runs.get("a", 0) >= 1)
        provider._targets = ["b"]
        wait_until(lambda: provider.runs.get("b", 0) >= 1, timeout=10)
        runs_of_a = provider.runs["a"]
        time.sleep(2.5)
        assert runs_of_a == provider.runs["a"]
    finally:
        runtime.stop.set()
        scheduler.shutdown()
        runtime.close()
    assert {"slow/b"} == set(runtime.health.snapshot())
    exported = generate_latest(runtime.metrics.registry).decode()
    assert 'fetcher_target_up{source="slow",target="b"} 1.0' in exported
    assert 'target="a"' not in exported  # no stale series left to keep an alert firing


def test_a_failed_discovery_is_retried_after_one_poll_interval(tmp_path):
    """A first listing that fails is retried on the poll interval, not after the discovery interval."""
    runtime, provider = _runtime(tmp_path, ("a",))
    runtime.config = runtime.config.model_copy(
        update={
            "defaults": runtime.config.defaults.model_copy(
                update={"discovery_interval": timedelta(hours=1)}
            )
        }
    )
    provider.seconds = 0.0
    calls = []
    targets = provider.targets

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("group listing failed")
        return targets()

    provider.targets = flaky
    scheduler = Scheduler(runtime, max_workers=2)
    scheduler.start()
    try:
        wait_until(lambda: provider.runs.get("a", 0) >= 1, timeout=10)
    finally:
        runtime.stop.set()
        scheduler.shutdown()
        runtime.close()
    assert 2 == len(calls)
    assert {"slow/a"} == set(runtime.health.snapshot())


def test_rejected_credentials_during_discovery_show_in_readiness(tmp_path):
    """An AuthError while listing targets reads as `credentials rejected` in the readiness problems."""
    from deploy_fetcher.errors import AuthError

    runtime, provider = _runtime(tmp_path, ("a",))

    def rejected():
        raise AuthError("401 Bad credentials")

    provider.targets = rejected
    scheduler = Scheduler(runtime, max_workers=1)
    scheduler.start()
    try:
        problems = wait_until(
            lambda: [p for p in runtime.ready_problems() if "credentials rejected" in p]
        )
    finally:
        runtime.stop.set()
        scheduler.shutdown()
        runtime.close()
    assert ["source slow (discovery): credentials rejected"] == problems


def test_shutdown_while_discovery_is_listing_does_not_deadlock(tmp_path):
    """A discovery that finishes after shutdown began neither hangs shutdown nor adds jobs."""
    runtime, provider = _runtime(tmp_path, ("a",))
    entered, release = threading.Event(), threading.Event()
    targets = provider.targets

    def slow_targets():
        entered.set()
        release.wait(10)
        return targets()

    provider.targets = slow_targets
    scheduler = Scheduler(runtime, max_workers=2)
    scheduler.start()
    assert entered.wait(10)
    runtime.stop.set()
    stopper = threading.Thread(target=scheduler.shutdown)
    stopper.start()
    time.sleep(0.3)  # shutdown is now waiting for the discovery job in flight
    release.set()
    stopper.join(10)
    alive = stopper.is_alive()
    runtime.close()
    assert not alive
    assert {} == provider.runs


def test_shutdown_waits_for_housekeeping_using_the_store(tmp_path):
    """Shutdown returns only once a housekeeping run in flight has finished with the store."""
    runtime, _provider = _runtime(tmp_path, ("a",))
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    check_writable = runtime.store.check_writable

    def slow_check():
        entered.set()
        release.wait(10)
        try:
            return check_writable()
        finally:
            finished.set()

    runtime.store.check_writable = slow_check
    scheduler = Scheduler(runtime, max_workers=1)
    scheduler.start()
    assert entered.wait(10)
    runtime.stop.set()
    stopper = threading.Thread(target=scheduler.shutdown)
    stopper.start()
    stopper.join(0.5)
    returned_early = not stopper.is_alive()
    release.set()
    stopper.join(10)
    done_when_shut = finished.is_set()
    runtime.close()
    assert (False, True) == (returned_early, done_when_shut)


def test_a_target_named_like_its_source_keeps_its_health_across_rediscovery(tmp_path):
    """A failing target called like its source is logged failing once, not again after each listing."""
    from deploy_fetcher.errors import AuthError

    runtime, provider = _runtime(tmp_path, ("slow",))

    def rejected(target, cursor):
        provider.runs[target] = provider.runs.get(target, 0) + 1
        raise AuthError("401")

    provider.poll = rejected
    scheduler = Scheduler(runtime, max_workers=2)
    with capture_logs() as logs:
        scheduler.start()
        try:
            wait_until(lambda: provider.runs.get("slow", 0) >= 3, timeout=15)
        finally:
            runtime.stop.set()
            scheduler.shutdown()
            runtime.close()
    assert 1 == sum(log["event"] == "source.failing" for log in logs)
    assert ["source slow: credentials rejected"] == [
        p for p in runtime.health.problems() if "credentials" in p
    ]


class StuckProvider(SlowProvider):
    """Its polls hang (a server that trickles) until ``release`` is set; counts them."""

    name = "stuck"

    def __init__(self, config, context, targets, release):
        super().__init__(config, context, targets, seconds=0.0)
        self.release = release

    def poll(self, target, cursor):
        with self.lock:
            self.runs[target] = self.runs.get(target, 0) + 1
        self.release.wait(30)
        yield Page([], None)


def _two_sources(tmp_path, release, *, poll_deadline="2s"):
    config = FetcherConfig.model_validate(
        {
            "state": {"path": str(tmp_path / "s.db")},
            "defaults": {
                "interval": "1s",
                "jitter": "0s",
                "timeout": "0.5s",
                "poll_deadline": poll_deadline,
            },
        }
    )
    config = config.model_copy(
        update={
            "sources": [
                SourceConfig(name="hostile", provider="stuck"),
                SourceConfig(name="healthy", provider="slow"),
            ]
        }
    )
    made = {}

    def factory(source, context):
        if source.name == "hostile":
            made["hostile"] = StuckProvider(source, context, ("h1", "h2", "h3"), release)
        else:
            made["healthy"] = SlowProvider(source, context, ("ok",), seconds=0.0)
        return made[source.name]

    runtime = Runtime(config, provider_resolver=lambda _name: factory)
    return runtime, made["hostile"], made["healthy"]


def test_hung_polls_of_one_source_do_not_stop_the_others(tmp_path):
    """Three hung targets on two workers: the healthy source keeps its 1 s schedule (counted)."""
    release = threading.Event()
    runtime, hostile, healthy = _two_sources(tmp_path, release)
    scheduler = Scheduler(runtime, max_workers=2, housekeeping_every=0.5)
    scheduler.start()
    try:
        wait_until(lambda: len(hostile.runs) >= 2, timeout=15)  # both workers held
        before = healthy.runs.get("ok", 0)
        time.sleep(6)
        during = healthy.runs.get("ok", 0) - before
        assert 3 <= during, f"healthy source polled {during} times in 6 s while the other hung"
        assert {"h1", "h2", "h3"} == set(hostile.runs)  # the third hung target got a thread too
    finally:
        release.set()
        runtime.stop.set()
        scheduler.shutdown()
        runtime.close()


def test_a_poll_past_its_deadline_is_reported_and_cleared(tmp_path):
    """A poll running past poll_deadline is named in readiness and counted in the gauge, then not."""
    release = threading.Event()
    runtime, _hostile, _healthy = _two_sources(tmp_path, release)
    scheduler = Scheduler(runtime, max_workers=4, housekeeping_every=0.5)
    scheduler.start()
    try:
        with capture_logs() as logs:
            problems = wait_until(
                lambda: [p for p in runtime.health.problems() if "poll deadline" in p], timeout=15
            )
            wait_until(lambda: 3 == runtime.metrics.polls_overdue._value.get(), timeout=10)
            time.sleep(1.5)  # three more housekeeping runs
        assert problems[0].startswith("source hostile/h")
        assert problems[0].endswith("past the poll deadline of 2s")
        overdue = [e for e in logs if e["event"] == "poll.overdue"]
        assert 3 == len(overdue)  # once per target, not once per housekeeping run
        release.set()
        wait_until(lambda: 0 == runtime.metrics.polls_overdue._value.get(), timeout=10)
        assert [] == [p for p in runtime.health.problems() if "poll deadline" in p]
    finally:
        release.set()
        runtime.stop.set()
        scheduler.shutdown()
        runtime.close()


def test_discovery_and_housekeeping_run_while_every_poll_worker_hangs(tmp_path):
    """With every poll worker (and its headroom) hung, discovery and the store check still run."""
    release = threading.Event()
    runtime, hostile, _healthy = _two_sources(tmp_path, release, poll_deadline="1h")
    runtime.config = runtime.config.model_copy(
        update={
            "defaults": runtime.config.defaults.model_copy(
                update={"discovery_interval": timedelta(seconds=1)}
            )
        }
    )
    scheduler = Scheduler(runtime, max_workers=1, housekeeping_every=0.5)
    scheduler.polls.limit = 1  # no headroom: the pool is wedged for good
    scheduler.start()
    try:
        wait_until(lambda: hostile.runs, timeout=15)
        hostile._targets.append("h4")
        wait_until(lambda: scheduler._current("hostile", "h4"), timeout=15)
        runtime.store.close()  # housekeeping must notice, though no poll can run
        wait_until(lambda: runtime.health.store_problem, timeout=15)
    finally:
        release.set()
        runtime.stop.set()
        scheduler.shutdown()


def test_a_hung_target_s_skipped_runs_are_not_logged_every_interval(tmp_path, caplog):
    """APScheduler's per-interval "maximum number of running instances" lines are dropped."""
    release = threading.Event()
    runtime, hostile, _healthy = _two_sources(tmp_path, release, poll_deadline="1h")
    scheduler = Scheduler(runtime, max_workers=4, housekeeping_every=0.5)
    scheduler.start()
    try:
        wait_until(lambda: len(hostile.runs) == 3, timeout=15)
        time.sleep(2.5)  # two or three intervals of each hung target
    finally:
        release.set()
        runtime.stop.set()
        scheduler.shutdown()
        runtime.close()
    assert [] == [r for r in caplog.records if "maximum number of running" in r.getMessage()]


def test_a_target_handed_over_is_first_polled_an_interval_after_its_last_poll(tmp_path):
    """Taken from a live replica that polled it 10 s ago: next poll 50 s on (60 s interval); else now."""
    from deploy_fetcher.model import utc_now

    runtime, _provider = _runtime(tmp_path, interval=60)
    scheduler = Scheduler(runtime, max_workers=2)
    scheduler.start()
    try:
        wait_until(lambda: scheduler._scheduler.get_job("slow/b") is not None, timeout=10)
        before = utc_now()
        scheduler._taken_over({"slow/a": 10.0, "slow/b": None})
        after = utc_now()
        first_a = scheduler._scheduler.get_job("slow/a").next_run_time
        first_b = scheduler._scheduler.get_job("slow/b").next_run_time
        # Its first run may be waiting for a worker already: then that run went to the urgent lane.
        b_waiting = scheduler.polls.waiting("slow/b")
    finally:
        scheduler.shutdown()
        runtime.close()

    assert before + timedelta(seconds=50) <= first_a <= after + timedelta(seconds=50)
    assert True is (first_b <= after or b_waiting)


class GatedProvider(SlowProvider):
    """Polls wait for ``gate``; records the order targets were polled in."""

    def __init__(self, config, context, targets):
        super().__init__(config, context, targets, seconds=0.0)
        self.gate = threading.Event()
        self.order: list[str] = []

    def poll(self, target, cursor):
        with self.lock:
            self.order.append(target)
        self.gate.wait(20)
        yield Page([], {"n": len(self.order)})


def _gated_runtime(tmp_path, targets):
    """A runtime with one source of ``targets`` polled hourly, whose polls wait for a gate."""
    config = FetcherConfig.model_validate(
        {
            "state": {"path": str(tmp_path / "s.db")},
            "defaults": {"interval": "1h", "jitter": "0s", "timeout": "60s"},
        }
    )
    config = config.model_copy(update={"sources": [SourceConfig(name="slow", provider="slow")]})
    made = []

    def factory(source, context):
        made.append(GatedProvider(source, context, targets))
        return made[-1]

    runtime = Runtime(config, provider_resolver=lambda _name: factory)
    return runtime, made[0]


def test_nudged_and_taken_over_targets_are_polled_before_the_queued_scheduled_polls(tmp_path):
    """Every worker busy, nine scheduled polls queued: a taken-over target, then a nudged one, go next.

    ``fetcher_polls_waiting`` shows them in the urgent lane meanwhile.
    """
    targets = tuple("abcdefghij")
    runtime, provider = _gated_runtime(tmp_path, targets)
    scheduler = Scheduler(runtime, max_workers=1)
    scheduler.start()
    try:
        wait_until(lambda: (0, 9) == scheduler.polls.queued(), timeout=10)
        first = list(provider.order)
        scheduler._taken_over({"slow/i": None})
        nudged = scheduler.nudge("slow", "j", min_gap=60)
        scheduler._overdue()  # housekeeping's report of the queue
        registry = runtime.metrics.registry
        lanes = tuple(
            registry.get_sample_value("fetcher_polls_waiting", {"lane": lane})
            for lane in ("urgent", "scheduled")
        )
        provider.gate.set()
        wait_until(lambda: len(provider.order) == len(targets), timeout=15)
    finally:
        provider.gate.set()
        runtime.stop.set()
        scheduler.shutdown()
        runtime.close()
    rest = [t for t in targets if t not in {*first, "i", "j"}]
    assert (["a"], "polled", (2, 7)) == (first, nudged, lanes)
    assert ["a", "i", "j", *rest] == provider.order


def test_polls_share_the_workers_by_request_budget(tmp_path):
    """A poll runs in the group of its request budget (here the CI system's: no quota declared).

    The pool shares workers fairly between such groups (tests/test_pool.py), so one credential at
    its limit cannot hold every worker.
    """
    runtime, provider = _gated_runtime(tmp_path, ("a",))
    scheduler = Scheduler(runtime, max_workers=1)
    scheduler.start()
    try:
        wait_until(scheduler.polls.running, timeout=10)
        running = [(r.name, r.group) for r in scheduler.polls.running()]
    finally:
        provider.gate.set()
        runtime.stop.set()
        scheduler.shutdown()
        runtime.close()
    assert [("slow/a", "slow")] == running

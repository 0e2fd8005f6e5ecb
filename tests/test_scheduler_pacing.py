"""The scheduler paces targets by what their polls find: in-flight work is polled more often."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from deploy_fetcher.config import FetcherConfig, SourceConfig
from deploy_fetcher.engine import Runtime
from deploy_fetcher.errors import RateLimited
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers import Page, Provider
from deploy_fetcher.providers.kit import Quota
from deploy_fetcher.scheduler import Scheduler
from tests.support import wait_until


class BusyProvider(Provider):
    """Four targets; ``busy`` ones report a deployment in progress on every poll."""

    name = "busy"
    config_model = SourceConfig

    def __init__(self, config, context, make_event):
        super().__init__(config, context)
        self.make_event = make_event
        self.busy: set[str] = set()
        self.done: set[str] = set()
        self.polls: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def targets(self):
        return ["a", "b", "c", "d"]

    def poll(self, target, cursor):
        with self.lock:
            self.polls.setdefault(target, []).append(time.monotonic())
            busy, done = target in self.busy, target in self.done
        if busy or done:
            status = "success" if done else "in-progress"
            yield Page([self.make_event(deployment_id=f"d-{target}", status=status)], None)
        yield Page([], {"n": 1})

    def backfill(self, target, since, until):
        return iter(())


def _scheduler(tmp_path, make_event: Callable[..., DeployEvent]) -> tuple[Scheduler, BusyProvider]:
    config = FetcherConfig.model_validate(
        {
            "state": {"path": str(tmp_path / "s.db")},
            "defaults": {
                "interval": "4s",
                "jitter": "0s",
                "hot_interval": "1s",
                "cooldown": "0s",
                "max_stretch": 4,
            },
        }
    )
    config = config.model_copy(update={"sources": [SourceConfig(name="src", provider="busy")]})
    made: list[BusyProvider] = []

    def factory(source, context):
        made.append(BusyProvider(source, context, make_event))
        return made[-1]

    scheduler = Scheduler(Runtime(config, provider_resolver=lambda _name: factory), max_workers=4)
    return scheduler, made[0]


def _count_since(polls: list[float], since: float) -> int:
    return sum(1 for at in polls if at >= since)


def test_a_target_with_work_in_flight_is_polled_more_often(tmp_path, make_event) -> None:
    """While its deployment runs a target is polled about every second, the idle ones less often."""
    scheduler, provider = _scheduler(tmp_path, make_event)
    provider.busy.add("a")
    scheduler.start()
    try:
        wait_until(lambda: all(provider.polls.get(t) for t in "abcd"), timeout=15)
        since = time.monotonic()
        time.sleep(8)
        counts = {t: _count_since(provider.polls[t], since) for t in "abcd"}
    finally:
        scheduler.shutdown()
        scheduler.runtime.close()
    # 4 targets at 4 s: 8 polls in 8 s. Hot at 1 s takes 8 of them… capped by the idle ones'
    # stretch (4×: 3 × 8/16 = 1.5 polls), so the hot one gets about 6.5.
    assert counts["a"] >= 4, counts
    assert all(counts[t] <= 2 for t in "bcd"), counts


def test_a_finished_deployment_returns_the_target_to_its_interval(tmp_path, make_event) -> None:
    """Once its deployment is seen finished (and no cooldown), a target is polled at its interval."""
    scheduler, provider = _scheduler(tmp_path, make_event)
    provider.busy.add("a")
    scheduler.start()
    try:
        wait_until(lambda: len(provider.polls.get("a", [])) >= 3, timeout=15)
        with provider.lock:
            provider.busy.discard("a")
            provider.done.add("a")
        time.sleep(1.5)  # the poll that reads the success
        since = time.monotonic()
        time.sleep(6)
        after = _count_since(provider.polls["a"], since)
    finally:
        scheduler.shutdown()
        scheduler.runtime.close()
    assert after <= 2


class MeteredProvider(BusyProvider):
    """Each poll costs three answers on a credential that may make 120 requests a minute."""

    name = "metered"

    def __init__(self, config, context, make_event):
        super().__init__(config, context, make_event)
        self.quota = Quota(
            provider="metered", label="cred", metrics=context.metrics, clock=context.clock
        )
        self.quota.declare("core", 120, "the test's limit of 120 requests a minute")

    @property
    def request_quota(self) -> Quota:
        return self.quota

    def poll(self, target, cursor):
        for _ in range(3):
            self.quota.observe(200, {})
        yield from super().poll(target, cursor)


@contextmanager
def _paced(
    tmp_path, make_event, provider: type[MeteredProvider]
) -> Iterator[tuple[Scheduler, Runtime, list[MeteredProvider]]]:
    """A scheduler over one source of four 1 s targets of ``provider``, once it has fitted a budget."""
    config = FetcherConfig.model_validate(
        {
            "state": {"path": str(tmp_path / "s.db")},
            "defaults": {"interval": "1s", "jitter": "0s", "hot_interval": "0s"},
        }
    )
    config = config.model_copy(
        update={"sources": [SourceConfig(name="src", provider=provider.name)]}
    )
    made: list[MeteredProvider] = []

    def factory(source, context):
        made.append(provider(source, context, make_event))
        return made[-1]

    runtime = Runtime(config, provider_resolver=lambda _name: factory)
    scheduler = Scheduler(runtime, max_workers=4, housekeeping_every=0.5)
    scheduler.start()
    try:
        wait_until(scheduler.pacing_report, timeout=20)
        yield scheduler, runtime, made
    finally:
        scheduler.shutdown()
        runtime.close()


def test_a_per_minute_limit_stretches_the_credentials_intervals(tmp_path, make_event) -> None:
    """Polls costing 3 requests under a 120/min limit are held to 0.85 × 120 / 3 = 34 polls a minute."""
    with _paced(tmp_path, make_event, MeteredProvider) as (scheduler, runtime, _made):
        [report] = scheduler.pacing_report()
        interval = scheduler.pacer.interval("src/a")
        registry = runtime.metrics.registry
        limit = registry.get_sample_value(
            "fetcher_request_limit_per_minute", {"pool": "metered/cred", "limit": "declared"}
        )
        made_last_minute = registry.get_sample_value(
            "fetcher_requests_last_minute", {"pool": "metered/cred"}
        )
    # 4 targets at 1 s ask for 240 polls a minute; 34 are allowed: every interval × 240 / 34.
    assert ("metered/cred", 34) == (report["pool"], round(240 / report["stretch"]))
    assert "the test's limit of 120 requests a minute: 34 polls/min" in str(report["reason"])
    assert 7.06 == round(interval, 2)
    assert 120 == limit
    assert made_last_minute is not None
    assert made_last_minute >= 15  # the five polls measured at least, three requests each


class FirstReadProvider(MeteredProvider):
    """A target's first poll (no cursor yet) reads its lookback: 60 answers; later ones cost 3."""

    name = "firstread"

    def poll(self, target, cursor):
        if cursor is None:
            for _ in range(57):
                self.quota.observe(200, {})
        yield from super().poll(target, cursor)


class SometimesBlockedProvider(MeteredProvider):
    """Every other poll ends at once, rate limited, without a request; the others cost 3."""

    name = "sometimesblocked"

    def __init__(self, config, context, make_event):
        super().__init__(config, context, make_event)
        self.calls = 0

    def poll(self, target, cursor):
        with self.lock:
            self.calls += 1
            blocked = self.calls % 2 == 0
        if blocked:
            msg = "metered rate limited for credential cred; next request at 2030-01-01T00:00:00Z"
            raise RateLimited(msg, retry_at=None)
        yield from super().poll(target, cursor)


def test_polls_ended_by_a_block_are_left_out_of_what_a_poll_costs(tmp_path, make_event) -> None:
    """Polls a block ended before any request cost nothing: counted, they halved the measured cost.

    Polls of 3 answers under 120/min make 34 a minute; with half the polls counted at 0, 68.
    """
    with _paced(tmp_path, make_event, SometimesBlockedProvider) as (scheduler, _runtime, made):
        [report] = scheduler.pacing_report()
        blocked = made[0].calls // 2
    assert ("metered/cred", 34, True) == (
        report["pool"],
        round(240 / report["stretch"]),
        blocked >= 2,
    )


def test_first_polls_are_left_out_of_what_a_poll_costs(tmp_path, make_event) -> None:
    """Four first polls of 60 answers do not count: polls of 3 answers under 120/min make 34 a minute."""
    with _paced(tmp_path, make_event, FirstReadProvider) as (scheduler, _runtime, made):
        [report] = scheduler.pacing_report()
        spent = made[0].quota.spent()["core"]
    # Averaged in, the first polls (4 × 60 answers over 5 or more polls) would allow 3 or fewer.
    assert ("metered/cred", 34, True) == (
        report["pool"],
        round(240 / report["stretch"]),
        spent >= 4 * 60,
    )

"""The scheduler's side of a nudge: poll now, or right after the poll in flight, once per gap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy_fetcher.config import FetcherConfig, SourceConfig
from deploy_fetcher.engine import Runtime
from deploy_fetcher.providers import Page, Provider
from deploy_fetcher.scheduler import Scheduler
from tests.support import wait_until


class CountingProvider(Provider):
    """Counts polls per target; each poll takes ``seconds``."""

    name = "counting"
    config_model = SourceConfig

    def __init__(self, config, context, seconds):
        super().__init__(config, context)
        self.seconds = seconds
        self.runs: dict[str, int] = {}
        self.running: dict[str, bool] = {}
        self.lock = threading.Lock()

    def targets(self):
        return ["Octo/API", "octo/web"]

    def poll(self, target, cursor):
        with self.lock:
            self.runs[target] = self.runs.get(target, 0) + 1
            self.running[target] = True
        time.sleep(self.seconds)
        with self.lock:
            self.running[target] = False
        yield Page([], {"n": self.runs[target]})

    def backfill(self, target, since, until):
        return iter(())


def _scheduler(tmp_path: Path, seconds: float) -> tuple[Scheduler, CountingProvider]:
    """A scheduler (not started) over one source whose polls take ``seconds``, polled hourly."""
    config = FetcherConfig.model_validate(
        {
            "state": {"path": str(tmp_path / "s.db")},
            "defaults": {"interval": "1h", "jitter": "0s"},
        }
    )
    config = config.model_copy(update={"sources": [SourceConfig(name="src", provider="counting")]})
    made: list[CountingProvider] = []

    def factory(source, context):
        made.append(CountingProvider(source, context, seconds))
        return made[-1]

    scheduler = Scheduler(Runtime(config, provider_resolver=lambda _name: factory), max_workers=4)
    return scheduler, made[0]


@pytest.fixture
def scheduled(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Scheduler, CountingProvider]]:
    scheduler, provider = _scheduler(tmp_path, getattr(request, "param", 0.0))
    scheduler.start()
    wait_until(lambda: provider.runs.get("Octo/API") and provider.runs.get("octo/web"))
    # Until the scheduler's own poll has ended, not only the provider's: a nudge between the two
    # would find the target's first poll still in flight and be queued.
    wait_until(lambda: not scheduler.polls.running())
    yield scheduler, provider
    scheduler.shutdown()
    scheduler.runtime.close()


def test_nudge_polls_now_and_only_that_target(scheduled) -> None:
    """A nudge polls its target at once (its next scheduled run is an hour away); others wait."""
    scheduler, provider = scheduled
    assert "polled" == scheduler.nudge("src", "Octo/API", min_gap=60)
    wait_until(lambda: provider.runs["Octo/API"] == 2, timeout=10)
    time.sleep(0.3)
    assert {"Octo/API": 2, "octo/web": 1} == provider.runs


def test_nudges_within_the_gap_wait_for_its_end(scheduled) -> None:
    """A second nudge within ``min_gap`` polls when the gap ends; a third costs nothing more."""
    scheduler, provider = scheduled
    outcomes = [
        scheduler.nudge("src", "Octo/API", min_gap=2),
        scheduler.nudge("src", "Octo/API", min_gap=2),
        scheduler.nudge("src", "Octo/API", min_gap=2),
        scheduler.nudge("src", "octo/web", min_gap=2),
    ]
    started = time.monotonic()
    wait_until(lambda: provider.runs["Octo/API"] == 2, timeout=10)
    wait_until(lambda: provider.runs["Octo/API"] == 3, timeout=10)
    gap = time.monotonic() - started
    time.sleep(1.0)
    assert (["polled", "deferred", "throttled", "polled"], True, 3) == (
        outcomes,
        gap >= 1.5,
        provider.runs["Octo/API"],
    )


@pytest.mark.parametrize("scheduled", [3.0], indirect=True)
def test_nudge_during_a_poll_polls_again_right_after(scheduled) -> None:
    """A target nudged while its poll runs is polled again as soon as that poll ends."""
    scheduler, provider = scheduled
    assert "polled" == scheduler.nudge("src", "Octo/API", min_gap=0)
    wait_until(lambda: provider.running.get("Octo/API"), timeout=10)
    queued = scheduler.nudge("src", "Octo/API", min_gap=0)
    wait_until(lambda: provider.runs["Octo/API"] == 3, timeout=10)
    assert "queued" == queued


def test_unknown_targets_are_not_nudged(scheduled) -> None:
    """A name no source has (or another source's) is not scheduled."""
    scheduler, _provider = scheduled
    assert ["unknown_target", "unknown_target"] == [
        scheduler.nudge("src", "octo/gone", min_gap=0),
        scheduler.nudge("other", "Octo/API", min_gap=0),
    ]


def test_targets_are_found_by_name_whatever_the_case(scheduled) -> None:
    """Webhooks spell names their own way: targets are found case-insensitively."""
    scheduler, _provider = scheduled
    assert [("src", "Octo/API")] == scheduler.find_targets(["OCTO/api", "octo/nothing"])


def test_a_nudge_during_a_poll_is_not_lost_while_the_poll_s_run_is_released(tmp_path) -> None:
    """The poll again is due at once, before APScheduler has counted the run done: it still comes."""
    scheduler, provider = _scheduler(tmp_path, 1.0)
    poll = scheduler._poll

    def released_late(source_name: str, target: str) -> None:
        poll(source_name, target)
        time.sleep(0.5)  # a loaded machine: the run ends, APScheduler hears of it later

    scheduler._poll = released_late  # type: ignore[method-assign]
    scheduler.start()
    try:
        wait_until(lambda: provider.running.get("Octo/API"), timeout=10)
        queued = scheduler.nudge("src", "Octo/API", min_gap=0)
        wait_until(lambda: provider.runs["Octo/API"] == 2, timeout=10)
    finally:
        scheduler.shutdown()
        scheduler.runtime.close()
    assert "queued" == queued

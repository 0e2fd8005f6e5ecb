"""What every registered provider owes the engine, run the same way over each of them.

Driven through the engine's own :class:`Poller` and a real state file, as the daemon drives them:
a first poll queues valid events and stores a cursor; an unchanged world queues nothing more; a
replay from scratch is deduplicated; the cursor moves on with the world; a backfill yields its window
without cursors; and failures come out as the error taxonomy's classes, the cursor left in place.
Waits (retries, rate limits) are skipped so the suite measures behaviour, not patience.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.contract.rigs import PROVIDER_RIGS, SINK_RIGS, ProviderRig

from deploy_fetcher.config import SourceConfig
from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.engine import CycleResult, Health, Poller, target_key
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent, utc_now
from deploy_fetcher.plugins import available_providers, available_sinks, load_provider, parse_config
from deploy_fetcher.providers import Provider, ProviderContext
from deploy_fetcher.store import SqliteStore
from deploy_fetcher.store._codec import dump_cursor

NAMES = sorted(PROVIDER_RIGS)
#: Whether a provider's world is a server the suite can fail (the scripted ones read a file).
PROVIDER_RIGS_SERVE = {name: not name.startswith("scripted") for name in NAMES}


class NoWaits(ProviderContext):
    """The daemon's context, except that waits (retries, rate limits) return at once."""

    def sleep(self, seconds: float) -> bool:
        return not self.stop.is_set()


@dataclass
class Bench:
    """A provider built from its rig, with the engine's poller over a real state file."""

    rig: ProviderRig
    provider: Provider
    poller: Poller
    store: SqliteStore

    def cycle(self) -> list[CycleResult]:
        """One poll of every target, as a scheduler tick would run them."""
        return [self.poller.run_target(self.provider, t) for t in self.provider.targets()]

    def cursors(self) -> dict[str, Any]:
        return {r.key: r.cursor for r in self.store.list_cursors()}

    def queued(self) -> list[DeployEvent]:
        return [row.event for row in self.store.list_rows(limit=1_000_000)]


def _bench(stack: ExitStack, tmp_path: Path, name: str, broken: str = "") -> Bench:
    """The bench of provider ``name``; ``broken``: "credentials" or "target" to break its source."""
    rig: ProviderRig = stack.enter_context(PROVIDER_RIGS[name](tmp_path))
    overrides = {"credentials": rig.bad_credentials, "target": rig.missing_target}.get(broken, {})
    config = parse_config(
        yaml.safe_dump(
            {
                "state": {"path": str(tmp_path / "state.db")},
                "sinks": [{"name": "out", "type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
                "sources": [{**rig.source, **overrides}],
            }
        ),
        environ={},
    )
    metrics = Metrics()
    store = SqliteStore(config.state.path)
    stack.callback(store.close)
    context = NoWaits(metrics=metrics, defaults=config.defaults)
    stack.callback(context.shared.close)
    provider = load_provider(config.sources[0].provider)(config.sources[0], context)
    stack.callback(provider.close)
    return Bench(rig, provider, Poller(config, store, metrics, Health()), store)


@pytest.fixture
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    with ExitStack() as stack:
        yield _bench(stack, tmp_path, request.param)


@pytest.fixture
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    """A bench whose source is broken as ``request.param`` = (provider, "credentials" | "target")."""
    name, how = request.param
    with ExitStack() as stack:
        yield _bench(stack, tmp_path, name, how)


def _outcomes(results: list[CycleResult]) -> set[str]:
    return {r.outcome for r in results}


# -- registration -------------------------------------------------------------------------------
def test_every_registered_plugin_has_a_rig() -> None:
    """Each installed provider and sink is covered by this suite (a new one must add its rig)."""
    assert sorted(available_providers()) == NAMES
    assert sorted(available_sinks()) == sorted(SINK_RIGS)


@pytest.mark.parametrize("name", NAMES)
def test_provider_is_registered_under_its_own_name(name: str) -> None:
    """The entry point's name is the class's ``name``; its config model extends SourceConfig."""
    cls = load_provider(name)
    assert name == cls.name
    assert issubclass(cls, Provider)
    assert issubclass(cls.config_model, SourceConfig)


# -- polling ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bench", NAMES, indirect=True)
def test_a_first_poll_queues_valid_events_and_stores_a_cursor(bench: Bench) -> None:
    """From no cursor: events carrying provider, source and repo metadata; a JSON cursor per target."""
    results = bench.cycle()
    assert {"ok"} == _outcomes(results)
    events = bench.queued()
    assert events
    assert {bench.provider.name} == {e.provider for e in events}
    assert {"src"} == {e.source for e in events}
    assert all(e.metadata.get("repo") for e in events)
    cursors = bench.cursors()
    assert {target_key("src", t) for t in bench.provider.targets()} == set(cursors)
    for key, cursor in cursors.items():
        dump_cursor(key, cursor)  # what JSON cannot carry back unchanged raises here


@pytest.mark.parametrize("bench", NAMES, indirect=True)
def test_an_unchanged_world_queues_nothing_more(bench: Bench) -> None:
    """A second poll of a world that did not move queues no row."""
    bench.cycle()
    results = bench.cycle()
    assert {"ok"} == _outcomes(results)
    assert 0 == sum(r.queued for r in results)


@pytest.mark.parametrize("bench", NAMES, indirect=True)
def test_a_replay_from_scratch_is_deduplicated(bench: Bench) -> None:
    """Forgetting the cursors re-reads the lookback window; every event is already queued."""
    first = bench.cycle()
    for key in bench.cursors():
        bench.store.reset_cursor(key)
    again = bench.cycle()
    assert sum(r.events for r in again) >= sum(r.queued for r in first) > 0
    assert 0 == sum(r.queued for r in again)


@pytest.mark.parametrize("bench", NAMES, indirect=True)
def test_the_cursor_moves_on_with_the_world(bench: Bench) -> None:
    """New activity is queued by the next poll, and the stored cursor changes with it."""
    bench.cycle()
    before = bench.cursors()
    bench.rig.advance()
    results = bench.cycle()
    assert {"ok"} == _outcomes(results)
    assert sum(r.queued for r in results) > 0
    assert before != bench.cursors()


@pytest.mark.parametrize("bench", NAMES, indirect=True)
def test_a_backfill_yields_its_window_without_cursors(bench: Bench) -> None:
    """Backfill pages carry no cursor and only events inside [since, until)."""
    until = utc_now() + timedelta(days=400)
    since = until - timedelta(days=800)
    pages = [p for t in bench.provider.targets() for p in bench.provider.backfill(t, since, until)]
    events = [e for p in pages for e in p.events]
    assert events
    assert [None] * len(pages) == [p.cursor for p in pages]
    assert all(since <= e.happened_at < until for e in events)
    window_end = max(e.happened_at for e in events)
    narrower = [
        e
        for t in bench.provider.targets()
        for p in bench.provider.backfill(t, since, window_end)
        for e in p.events
    ]
    assert all(e.happened_at < window_end for e in narrower)


# -- failures -----------------------------------------------------------------------------------
@pytest.mark.parametrize("broken", [(n, "credentials") for n in NAMES], indirect=True, ids=NAMES)
def test_rejected_credentials_are_an_auth_error(broken: Bench) -> None:
    """Wrong credentials end the cycle as auth_error (readiness 503), not as a crash."""
    results = [broken.poller.run_target(broken.provider, broken.provider.targets()[0])]
    assert {"auth_error"} == _outcomes(results)
    assert {} == broken.cursors()


@pytest.mark.parametrize("broken", [(n, "target") for n in NAMES], indirect=True, ids=NAMES)
def test_a_missing_target_is_reported_as_not_found(broken: Bench) -> None:
    """A repository, project or script that does not exist is not_found, and stores nothing."""
    results = broken.cycle()
    assert {"not_found"} == _outcomes(results)
    assert [] == broken.queued()


@pytest.mark.parametrize("bench", [n for n in NAMES if PROVIDER_RIGS_SERVE[n]], indirect=True)
@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        (Fault(status=503, count=10**6), "transient_error"),
        (Fault(kind="malformed", count=10**6), "transient_error"),
        (Fault(kind="drop", count=10**6), "transient_error"),
    ],
    ids=["503", "malformed", "dropped"],
)
def test_a_server_failing_throughout_ends_the_cycle_and_keeps_the_cursor(
    bench: Bench, fault: Fault, outcome: str
) -> None:
    """A CI system failing every request: the cycle ends as transient_error, the cursor stays."""
    bench.cycle()
    before = bench.cursors()
    assert bench.rig.emulator is not None
    bench.rig.advance()
    bench.rig.emulator.inject(
        Fault(kind=fault.kind, status=fault.status, count=fault.count, match=bench.rig.polls)
    )
    results = bench.cycle()
    assert {outcome} == _outcomes(results)
    assert before == bench.cursors()

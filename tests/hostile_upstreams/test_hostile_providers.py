"""Every CI provider against a hostile server: no credential leaves, nothing hangs or grows, it recovers.

Each provider's source points at a real local proxy (:class:`HostileServer`) in front of its
emulator; the proxy redirects to another host, echoes the credential, trickles, never ends, nests
JSON, answers markup or dates every item decades ahead. Each cycle must end as a failed cycle (never a hang, a traceback, or a
success counted from another host's answer), nothing may reach another host or any output, and
once the proxy forwards again the source polls successfully.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from deploy_fetcher.emulators.hostile import FUTURE_YEAR, HostileServer
from deploy_fetcher.engine import CycleResult, Health, Poller
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import utc_now
from deploy_fetcher.plugins import load_provider, parse_config
from deploy_fetcher.providers import Provider, ProviderContext
from deploy_fetcher.providers.kit import SLOW_SERVER_CUTS, SLOW_SERVER_PAUSE
from deploy_fetcher.store import SqliteStore
from tests.contract.rigs import PROVIDER_RIGS, ProviderRig

NAMES = ["azure-devops", "github", "gitlab"]
SECRET = "hostile-provider-token-4e4e"
URL_KEYS = ("base_url", "url", "organization_url")


@dataclass
class Hostile:
    """A provider whose CI server is behind the hostile proxy."""

    provider: Provider
    poller: Poller
    health: Health
    server: HostileServer
    rig: ProviderRig
    store: SqliteStore
    #: How far the providers' clock runs ahead of the real one.
    ahead: list[timedelta]

    def cycle(self) -> list[CycleResult]:
        return [self.poller.run_target(self.provider, t) for t in self.provider.targets()]

    def later(self, delta: timedelta) -> None:
        """Move the providers' clock on (what a server left alone waits for)."""
        self.ahead[0] += delta


def _behind(source: dict[str, Any], upstream: str, hostile: str) -> dict[str, Any]:
    return {
        k: v.replace(upstream, hostile) if k in URL_KEYS and isinstance(v, str) else v
        for k, v in source.items()
    }


@pytest.fixture(params=NAMES)
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hostile]:
    name: str = request.param
    with ExitStack() as stack:
        rig: ProviderRig = stack.enter_context(PROVIDER_RIGS[name](tmp_path))
        assert rig.emulator is not None
        upstream = rig.emulator.url()
        server = stack.enter_context(HostileServer(upstream, trickle=0.5))
        source = _behind(rig.source, upstream, server.url) | {"timeout": "2s", "retries": 0}
        config = parse_config(
            yaml.safe_dump(
                {
                    "state": {"path": str(tmp_path / "state.db")},
                    "sinks": [{"name": "o", "type": "jsonl", "path": str(tmp_path / "o.jsonl")}],
                    "sources": [source],
                }
            ),
            environ={},
        )
        metrics, health = Metrics(), Health()
        store = SqliteStore(config.state.path)
        stack.callback(store.close)
        ahead = [timedelta(0)]
        context = ProviderContext(
            metrics=metrics, defaults=config.defaults, clock=lambda: utc_now() + ahead[0]
        )
        stack.callback(context.shared.close)
        provider = load_provider(name)(config.sources[0], context)
        stack.callback(provider.close)
        poller = Poller(config, store, metrics, health)
        yield Hostile(provider, poller, health, server, rig, store, ahead)


def _secret_of(hostile: Hostile) -> str:
    """The credential the rig configured (the emulator's token or PAT)."""
    source = hostile.rig.source
    return str(source.get("token") or source.get("pat"))


def _recovers(hostile: Hostile) -> None:
    hostile.server.mode = "normal"
    assert {"ok"} == {r.outcome for r in hostile.cycle()}


def _failed(results: list[CycleResult]) -> None:
    assert results
    assert "ok" not in {r.outcome for r in results}


def test_a_redirect_to_another_host_takes_no_credential_there(hostile: Hostile) -> None:
    """A 302 to another host fails the cycle naming both hosts; the other host gets no credential."""
    hostile.server.mode = "redirect"
    results = hostile.cycle()
    _failed(results)
    assert any(f"127.0.0.2:{hostile.server.foreign.port}" in r.error for r in results)
    secret = _secret_of(hostile)
    assert [] == [
        seen for seen in hostile.server.foreign.seen if secret in json.dumps(seen.headers)
    ]
    _recovers(hostile)


def test_an_echoed_credential_reaches_no_error_log_or_readiness(hostile: Hostile) -> None:
    """A server quoting the request headers in its error body: *** everywhere the token was."""
    hostile.server.mode = "echo"
    secret = _secret_of(hostile)
    with capture_logs() as logs:
        results = hostile.cycle()
    _failed(results)
    outputs = [r.error for r in results] + hostile.health.problems()
    outputs += [json.dumps(entry, default=str) for entry in logs]
    assert [] == [text for text in outputs if secret in text]
    _recovers(hostile)


def test_a_trickling_server_ends_the_cycle_at_the_request_deadline(hostile: Hostile) -> None:
    """Headers, then a byte every 0.5 s: the deadline ends each cycle; after a few the server is left alone."""
    hostile.server.mode = "slow"
    for _ in range(SLOW_SERVER_CUTS):
        results = hostile.cycle()
        assert {"transient_error"} == {r.outcome for r in results}
        assert [] == [r.error for r in results if "left alone" in r.error]
    hostile.server.mode = "normal"
    paused = hostile.cycle()
    assert (True, True) == (bool(paused), all("left alone" in r.error for r in paused))
    hostile.later(SLOW_SERVER_PAUSE)
    _recovers(hostile)


def test_an_endless_body_ends_the_cycle_at_the_byte_cap(hostile: Hostile) -> None:
    """A 200 whose body never ends is cut at max_response_size: a transient failure, not OOM."""
    hostile.server.mode = "endless"
    results = hostile.cycle()
    assert {"transient_error"} == {r.outcome for r in results}
    _recovers(hostile)


def test_deeply_nested_json_fails_the_cycle_without_a_traceback(hostile: Hostile) -> None:
    """An answer nested 100 000 levels deep is a failed cycle, logged without a traceback."""
    hostile.server.mode = "nested"
    with capture_logs() as logs:
        results = hostile.cycle()
    _failed(results)
    assert [] == [e for e in logs if "exc_info" in e or e["event"].endswith("unexpected_error")]
    _recovers(hostile)


def test_markup_in_an_error_body_stays_inert_text(hostile: Hostile) -> None:
    """A 422 of terminal escapes and rich markup: the error carries no control character."""
    hostile.server.mode = "markup"
    results = hostile.cycle()
    _failed(results)
    assert [] == [r.error for r in results if "\x1b" in r.error]
    _recovers(hostile)


def test_items_dated_far_in_the_future_do_not_stop_the_source(hostile: Hostile) -> None:
    """Every item dated in 2096: no mark moves past the server's clock; later items are still read."""
    hostile.server.mode = "future"
    assert {"ok"} == {r.outcome for r in hostile.cycle()}
    # A cursor's top-level times are its marks (``mark``, ``start``); its per-item records may
    # keep an item's own date.
    marks = [
        value
        for record in hostile.store.list_cursors()
        for value in record.cursor.values()
        if isinstance(value, str) and value[:4].isdigit()
    ]
    assert marks
    assert [] == [mark for mark in marks if mark.startswith(str(FUTURE_YEAR))]
    queued = {row.event.deployment_id for row in hostile.store.list_rows(limit=10_000)}
    hostile.server.mode = "normal"
    hostile.rig.advance()
    assert {"ok"} == {r.outcome for r in hostile.cycle()}
    later = [
        row.event
        for row in hostile.store.list_rows(limit=10_000)
        if row.event.deployment_id not in queued
    ]
    assert later
    assert [] == [e.deployment_id for e in later if e.happened_at.year == FUTURE_YEAR]

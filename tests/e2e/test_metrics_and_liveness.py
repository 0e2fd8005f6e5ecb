"""What /metrics and /healthz tell an operator: failures visible, a wedged scheduler restarted."""

from __future__ import annotations

import gzip
import json
import threading
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support import FetcherProcess, free_port, wait_until, write_config

from deploy_fetcher import __version__
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.engine import Runtime
from deploy_fetcher.plugins import parse_config
from deploy_fetcher.scheduler import Scheduler
from deploy_fetcher.server import HealthServer

REVOKED = "ghp_revoked0000000000000000000000000000"


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def github():
    emulator = GitHubEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def revoked_daemon(tmp_path, github):
    """A daemon whose GitHub token the CI system refuses, reading a wildcard of repositories."""
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml",
        {
            "server": {"port": port},
            "defaults": {"interval": "1s", "jitter": "0s"},
            "sinks": [{"name": "out", "type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
            "sources": [
                {
                    "name": "gh",
                    "provider": "github",
                    "token": REVOKED,
                    "base_url": github.url().rstrip("/"),
                    "repos": ["octo/*"],
                }
            ],
        },
    )
    proc = FetcherProcess(config, port, tmp_path / "fetcher.log").start()
    yield proc
    proc.terminate()


def test_a_revoked_token_during_discovery_is_counted_and_marks_the_source_down(revoked_daemon):
    """A refused wildcard listing counts an auth failure and sets fetcher_discovery_up to 0."""
    labels = (("source", "gh"), ("target", ""))
    samples = wait_until(
        lambda: (
            (s := _samples(revoked_daemon.get("/metrics")[1])).get(
                ("fetcher_auth_failures_total", labels)
            )
            and s
        )
    )
    assert 0.0 == samples[("fetcher_discovery_up", (("source", "gh"),))]
    assert samples[
        ("fetcher_discovery_cycles_total", (("outcome", "auth_error"), ("source", "gh")))
    ]
    status, body = revoked_daemon.get("/readyz")
    assert (503, True) == (status, "credentials rejected" in body)
    assert REVOKED not in revoked_daemon.get("/metrics")[1]


def test_metrics_negotiate_openmetrics_and_gzip(revoked_daemon):
    """/metrics answers OpenMetrics when asked, gzip when accepted, and the text format otherwise."""
    port = revoked_daemon.port
    status, headers, body = _get(
        port,
        "/metrics",
        {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
    )
    text = gzip.decompress(body).decode()
    assert (200, "gzip") == (status, headers["Content-Encoding"])
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert "# EOF" == text.rstrip().splitlines()[-1]
    status, headers, body = _get(port, "/metrics")
    assert (200, None) == (status, headers["Content-Encoding"])
    assert headers["Content-Type"].startswith("text/plain")


def test_metrics_carry_build_info_and_process_series_and_no_created_series(revoked_daemon):
    """fetcher_build_info names the version; process_* series are there; no *_created series."""
    text = revoked_daemon.get("/metrics")[1]
    names = {name for name, _ in _samples(text)}
    build = [labels for name, labels in _samples(text) if name == "fetcher_build_info"]
    assert __version__ == dict(build[0])["version"]
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert [] == sorted(name for name in names if name.endswith("_created"))


def test_every_poll_series_joins_on_source_and_target(tmp_path):
    """Per-target series carry the source's name in `source` and the target in `target`."""
    script = tmp_path / "e.jsonl"
    script.write_text("", encoding="utf-8")
    config = parse_config(
        json.dumps(
            {
                "state": {"path": str(tmp_path / "s.db")},
                "sources": [
                    {"name": "replay", "provider": "scripted", "script": str(script)},
                ],
            }
        )
    )
    runtime = Runtime(config)
    try:
        runtime.poller.run_target(runtime.providers["replay"], "replay")
    finally:
        runtime.close()
    from prometheus_client import generate_latest

    samples = _samples(generate_latest(runtime.metrics.registry).decode())
    per_target = {
        name: dict(labels)
        for name, labels in samples
        if name
        in {
            "fetcher_poll_cycles_total",
            "fetcher_target_up",
            "fetcher_last_success_timestamp_seconds",
        }
    }
    expected = {"source": "replay", "target": "replay"}
    assert dict.fromkeys(per_target, expected) == {
        name: {k: v for k, v in labels.items() if k in {"source", "target"}}
        for name, labels in per_target.items()
    }
    assert 3 == len(per_target)


class _HangingStore:
    """A store whose writability check blocks while ``hang`` is set (a wedged disk, a stuck lock)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.hang = threading.Event()
        self.released = threading.Event()

    def check_writable(self) -> str | None:
        while self.hang.is_set() and not self.released.wait(0.05):
            pass
        return self._inner.check_writable()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_healthz_fails_when_the_scheduler_stops_beating_and_recovers(tmp_path):
    """/healthz turns 503 naming the heartbeat when housekeeping is stuck, and 200 once it runs."""
    from deploy_fetcher.store import open_store

    script = tmp_path / "e.jsonl"
    script.write_text("", encoding="utf-8")
    config = parse_config(
        json.dumps(
            {
                "state": {"path": str(tmp_path / "s.db")},
                "sources": [{"name": "replay", "provider": "scripted", "script": str(script)}],
            }
        )
    )
    store = _HangingStore(open_store(config))
    runtime = Runtime(config, store=store)  # type: ignore[arg-type]
    runtime.health.heartbeat_limit = 1.0
    scheduler = Scheduler(runtime, housekeeping_every=0.2)
    server = HealthServer(
        "127.0.0.1",
        0,
        registry=runtime.metrics.registry,
        problems=runtime.ready_problems,
        liveness=runtime.health.liveness_problem,
    )
    port = server.start()
    scheduler.start()
    try:
        wait_until(lambda: _get(port, "/healthz")[0] == 200)
        store.hang.set()
        _status, _, body = wait_until(lambda: (r := _get(port, "/healthz"))[0] == 503 and r)
        assert "heartbeat" in json.loads(body)["problems"][0]
        store.released.set()
        store.hang.clear()
        wait_until(lambda: _get(port, "/healthz")[0] == 200)
    finally:
        store.released.set()
        runtime.stop.set()
        scheduler.shutdown()
        server.stop()
        runtime.close()

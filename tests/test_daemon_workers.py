"""The daemon runs as many polls at once as ``defaults.poll_workers`` says."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from deploy_fetcher.config import parse_config
from deploy_fetcher.daemon import Daemon
from deploy_fetcher.errors import ConfigError
from deploy_fetcher.plugins import load_provider, load_sink
from tests.support import wait_until


def _daemon(tmp_path: Path, defaults: dict[str, object]) -> Daemon:
    config = parse_config(
        yaml.safe_dump(
            {
                "state": {"path": str(tmp_path / "state.db")},
                "server": {"enabled": False},
                "defaults": defaults,
                "sinks": [{"name": "out", "type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
            }
        ),
        environ={},
        provider_resolver=load_provider,
        sink_resolver=load_sink,
    )
    return Daemon(config, grace=2.0)


@pytest.mark.parametrize(("configured", "expected"), [({}, 16), ({"poll_workers": 3}, 3)])
def test_the_poll_pool_has_the_configured_workers_and_four_times_as_many_threads_at_most(
    tmp_path: Path, configured: dict[str, object], expected: int
) -> None:
    """16 workers by default, ``poll_workers`` when set; slow polls may use four times as many."""
    daemon = _daemon(tmp_path, configured)
    daemon.start()
    try:
        pool = daemon.scheduler.polls
        sizes = (pool.size, pool.limit)
        release = threading.Event()
        futures = [pool.submit(release.wait, 5) for _ in range(expected + 2)]
        running = wait_until(lambda: len(pool.running()) >= expected and len(pool.running()))
        release.set()
        assert all(future.result(timeout=5) for future in futures)
    finally:
        daemon.stop()

    assert (expected, expected * 4) == sizes
    assert expected == running


def test_poll_workers_out_of_range_names_the_key(tmp_path: Path) -> None:
    """More than 64 workers is refused at load, naming ``defaults.poll_workers``."""
    with pytest.raises(ConfigError, match=r"defaults\.poll_workers"):
        _daemon(tmp_path, {"poll_workers": 65})

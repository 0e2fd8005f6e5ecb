"""Engine throughput and memory: scripted events → outbox → Deployment Dashboard emulator.

Measures the engine alone (no CI API): how fast pages are committed to the SQLite outbox, how fast the
delivery worker drains it over real HTTP to the dashboard emulator (running in its own process so its
memory is not counted), and the peak RSS of the fetcher's process. Run with several sizes to show the
memory stays flat as the event count grows:

    .venv/bin/python benchmarks/engine_throughput.py --events 10000 50000 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _sizes import run_sizes

API_KEY = "bench-key"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_one(events: int, page_size: int) -> dict[str, float]:
    """Run one measurement in this process (called in a fresh subprocess per size)."""
    from deploy_fetcher._logging import configure_logging
    from deploy_fetcher.engine import Runtime

    configure_logging("warning", "json")
    port = _free_port()
    dashboard = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy_fetcher.emulators.dashboard",
            "--port",
            str(port),
            "--api-key",
            API_KEY,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/api/matrix", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as tmp:
            config = _load(tmp, events, page_size, url)
            runtime = Runtime(config)
            provider = runtime.providers["bench"]
            started = time.perf_counter()
            result = runtime.poller.run_target(provider, "bench")
            poll_seconds = time.perf_counter() - started
            if result.outcome != "ok":
                raise SystemExit(f"the scripted poll failed: {result}")
            started = time.perf_counter()
            runtime.start_delivery()
            while runtime.store.pending_count("dashboard"):
                time.sleep(0.05)
            deliver_seconds = time.perf_counter() - started
            runtime.stop_delivery(5)
            runtime.close()
        # Read the peak before fetching the emulator's request log: that JSON is not the engine's.
        peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with urllib.request.urlopen(  # noqa: S310
            url + "/_emulator/requests?match=^/api/deployments$", timeout=30
        ) as r:
            posted = json.load(r)["count"]
    finally:
        dashboard.terminate()
        dashboard.wait(10)
    return {
        "events": events,
        "queued_per_s": events / poll_seconds,
        "delivered_per_s": events / deliver_seconds,
        "posts": posted,
        "peak_rss_mib": peak_rss_mib,
    }


def _load(tmp: str, events: int, page_size: int, url: str):
    import yaml

    from deploy_fetcher.plugins import load_config

    path = Path(tmp) / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state": {"path": str(Path(tmp) / "state.db")},
                "server": {"enabled": False},
                "sources": [
                    {
                        "name": "bench",
                        "provider": "scripted",
                        "generate": {"count": events},
                        "page_size": page_size,
                    }
                ],
                "sinks": [
                    {
                        "name": "dashboard",
                        "type": "deployment-dashboard",
                        "url": url,
                        "api_key": API_KEY,
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    return load_config(path, environ={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.events[0], args.page_size)))
        return
    print(f"{'events':>8} {'queued/s':>10} {'delivered/s':>12} {'POSTs':>8} {'peak RSS MiB':>13}")
    for row in run_sizes(__file__, args.events, args.page_size):
        print(
            f"{row['events']:>8} {row['queued_per_s']:>10.0f} {row['delivered_per_s']:>12.0f} "
            f"{row['posts']:>8} {row['peak_rss_mib']:>13.1f}"
        )


if __name__ == "__main__":
    main()

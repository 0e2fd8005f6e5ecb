"""A large backfill through the outbox: events per second and the process's memory, flat or not.

What ``fetcher sync`` does, measured: the scripted provider's ``generate`` mode yields N events page
by page, the engine commits each page to the SQLite outbox while the delivery worker drains it to a
JSON-lines sink (a file, so the measurement is the outbox's work and not a network's), until nothing
is pending. Each size runs in a fresh process; its resident memory is sampled every half second, so
the output shows whether memory grows with the number of events (it must not: pages are streamed,
claims are batched, nothing holds the whole outbox).

    .venv/bin/python benchmarks/backfill.py                     # 100 000 and 1 000 000 events
    .venv/bin/python benchmarks/backfill.py --events 20000      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _sizes import run_sizes

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mib() -> float:
    """The resident set size of this process now."""
    with open("/proc/self/statm", encoding="ascii") as handle:  # noqa: PTH123
        return int(handle.read().split()[1]) * PAGE / 2**20


class Sampler(threading.Thread):
    """Samples the RSS every ``period`` seconds until stopped."""

    def __init__(self, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()
        self.started_at = time.perf_counter()

    def run(self) -> None:
        """Sample until halted."""
        while not self.halt.wait(self.period):
            self.samples.append((time.perf_counter() - self.started_at, _rss_mib()))


def run_one(events: int, page_size: int) -> dict[str, float]:
    """One measurement in this process (the parent runs each size in a fresh one)."""
    import yaml

    from deploy_fetcher._logging import configure_logging
    from deploy_fetcher.engine import Runtime
    from deploy_fetcher.plugins import load_config

    configure_logging("warning", "json")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
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
                            "generate": {
                                "count": events,
                                "services": 50,
                                "start": start.isoformat(),
                                "step": "1s",
                            },
                            "page_size": page_size,
                        }
                    ],
                    "sinks": [
                        {
                            "name": "file",
                            "type": "jsonl",
                            "path": str(Path(tmp) / "out.jsonl"),
                            "fsync": False,
                        }
                    ],
                }
            ),
            encoding="utf-8",
        )
        config = load_config(path, environ={})
        baseline = _rss_mib()
        sampler = Sampler()
        sampler.start()
        runtime = Runtime(config)
        provider = runtime.providers["bench"]
        started = time.perf_counter()
        runtime.start_delivery()
        result = runtime.poller.backfill_target(
            provider, "bench", start, start + timedelta(seconds=events + 1)
        )
        queued_at = time.perf_counter()
        if result.outcome != "ok" or result.queued != events:
            raise SystemExit(f"the backfill did not queue every event: {result}")
        while runtime.store.pending_count("file"):
            runtime.wake(["file"])
            time.sleep(0.1)
        done_at = time.perf_counter()
        delivered = runtime.workers["file"].delivered
        runtime.stop_delivery(5)
        runtime.close()
        sampler.halt.set()
        sampler.join()
        lines = sum(1 for _ in (Path(tmp) / "out.jsonl").open("rb"))
    samples = [rss for _, rss in sampler.samples] or [_rss_mib()]
    tenth = max(1, len(samples) // 10)
    return {
        "events": events,
        "queued_per_s": events / (queued_at - started),
        "end_to_end_per_s": events / (done_at - started),
        "seconds": done_at - started,
        "delivered": delivered,
        "lines": lines,
        "rss_baseline_mib": baseline,
        "rss_first_tenth_mib": max(samples[:tenth]),
        "rss_last_tenth_mib": max(samples[-tenth:]),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.events[0], args.page_size)))
        return
    print(
        f"{'events':>9} {'seconds':>8} {'queued/s':>9} {'end-to-end/s':>13} {'delivered':>10} "
        f"{'RSS start':>10} {'RSS 1st 10%':>12} {'RSS last 10%':>13} {'peak RSS':>9}  (MiB)"
    )
    for row in run_sizes(__file__, args.events, args.page_size):
        print(
            f"{row['events']:>9} {row['seconds']:>8.1f} {row['queued_per_s']:>9.0f} "
            f"{row['end_to_end_per_s']:>13.0f} {row['delivered']:>10} "
            f"{row['rss_baseline_mib']:>10.1f} {row['rss_first_tenth_mib']:>12.1f} "
            f"{row['rss_last_tenth_mib']:>13.1f} {row['peak_rss_mib']:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Hostile upstreams: memory under an endless body, and healthy sources' polls while one is slow.

Two measurements against the hostile proxy (``deploy_fetcher.emulators.hostile``) on 127.0.0.1:

1. **RSS during an endless body.** Each HTTP sink, and each CI provider, is pointed at a server that
   answers ``200`` with a JSON array that never ends. The component runs in a fresh process, which
   samples its own RSS (and reads its kernel peak at the end); a run ends when the component returns, after ``--seconds``, or when RSS
   passes ``--rss-cap`` MiB (then the growth is the finding).
2. **Healthy polls while one source hangs.** One daemon scheduler, ``--healthy`` scripted sources
   polled every second, and one GitLab source of ``--hostile`` projects behind a server that
   trickles a byte a second (every read completes, so no read timeout ever fires). Counts the
   healthy sources' completed polls over ``--window`` seconds, against what their interval asks
   for, with the poll pool as it is (slow polls free their worker) and as a plain pool
   (``headroom 1``: every worker a hung poll takes is gone).

Run: ``.venv/bin/python benchmarks/hostile.py`` (``--json`` for one machine-readable line).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SECRET = "bench-hostile-secret-7f7f"  # noqa: S105 - a dummy credential the proxy may echo
PAGE = 4096


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:  # noqa: PTH123 - a proc file
        return int(handle.read().split()[1]) * PAGE / 2**20


class _Watch:
    """Samples this process's RSS; ends the process (reporting) past the cap or the time limit."""

    def __init__(self, cap_mib: float, seconds: float, name: str) -> None:
        self.start = time.monotonic()
        self.base = _rss_mib()
        self.peak = self.base
        self.cap, self.seconds, self.name = cap_mib, seconds, name
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, _rss_mib())
            elapsed = time.monotonic() - self.start
            if self.peak - self.base > self.cap or elapsed > self.seconds:
                ended = "rss cap" if self.peak - self.base > self.cap else "time limit"
                self.report(ended)
                os._exit(0)
            time.sleep(0.05)

    def report(self, ended: str) -> None:
        # The kernel's peak as well: a burst shorter than one sample is still counted.
        self.peak = max(self.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        row = {
            "component": self.name,
            "ended_by": ended,
            "seconds": round(time.monotonic() - self.start, 1),
            "rss_base_mib": round(self.base, 1),
            "rss_peak_mib": round(self.peak, 1),
            "rss_growth_mib": round(self.peak - self.base, 1),
        }
        print(json.dumps(row), flush=True)


def _sink_run(name: str, url: str, seconds: float, cap: float) -> None:
    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.model import DeployEvent
    from deploy_fetcher.plugins import load_sink
    from deploy_fetcher.sinks import SinkContext

    keys: dict[str, Any] = {
        "cloudlink": {"url": url, "api_key": SECRET},
        "ctoai": {"url": url, "api_key": SECRET, "team_id": "team"},
        "deployment-dashboard": {"url": url, "api_key": SECRET},
        "webhook": {"url": url + "/hook"},
    }[name]
    cls = load_sink(name)
    config = cls.config_model.model_validate({"name": "b", "type": name, "timeout": "5s", **keys})
    sink = cls(config, SinkContext(metrics=Metrics(), user_agent="bench"))
    watch = _Watch(cap, seconds, f"sink {name}")
    event = DeployEvent(
        deployment_id="d",
        service="api",
        environment="prod",
        status="success",
        happened_at="2026-03-01T10:00:00Z",
    )
    for _ in range(20):  # twenty deliveries, each answered by an endless body
        sink.send(event)
    watch.report("returned")


def _provider_source(name: str, url: str) -> dict[str, Any]:
    return {
        "github": {"provider": "github", "base_url": url, "token": SECRET, "repos": ["o/r"]},
        "gitlab": {"provider": "gitlab", "url": url, "token": SECRET, "projects": ["g/p"]},
        "azure-devops": {
            "provider": "azure-devops",
            "organization_url": url + "/org",
            "pat": SECRET,
            "projects": ["p"],
        },
    }[name]


def _provider_run(name: str, url: str, seconds: float, cap: float) -> None:
    from deploy_fetcher._logging import configure_logging
    from deploy_fetcher.engine import Runtime
    from deploy_fetcher.plugins import parse_config

    configure_logging("error", "json")
    with tempfile.TemporaryDirectory() as scratch:
        text = json.dumps(
            {
                "state": {"path": f"{scratch}/s.db"},
                "sources": [{"name": "p", **_provider_source(name, url)}],
                "sinks": [{"name": "j", "type": "jsonl", "path": f"{scratch}/o.jsonl"}],
            }
        )
        runtime = Runtime(parse_config(text, environ={}))
        watch = _Watch(cap, seconds, f"provider {name}")
        provider = runtime.providers["p"]
        for target in provider.targets():
            runtime.poller.run_target(provider, target)
        watch.report("returned")


def endless(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measurement 1: one fresh process per component, against an endless body."""
    from deploy_fetcher.emulators.hostile import HostileServer

    rows = []
    components = [("sink", n) for n in ("cloudlink", "ctoai", "deployment-dashboard", "webhook")]
    components += [("provider", n) for n in ("github", "gitlab", "azure-devops")]
    for kind, name in components:
        with HostileServer("http://127.0.0.1:9", mode="endless") as server:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    kind,
                    name,
                    server.url,
                    str(args.seconds),
                    str(args.rss_cap),
                ],
                capture_output=True,
                text=True,
                timeout=args.seconds + 120,
                check=False,
            )
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            row = json.loads(lines[-1]) if lines else {"component": f"{kind} {name}"}
            row["offered_mib"] = round(server.bytes_offered / 2**20, 1)
            rows.append(row)
    return rows


def _schedule(args: argparse.Namespace, headroom: int) -> dict[str, Any]:
    from deploy_fetcher import scheduler as scheduler_module
    from deploy_fetcher._logging import configure_logging
    from deploy_fetcher.emulators.hostile import HostileServer
    from deploy_fetcher.engine import Runtime
    from deploy_fetcher.plugins import parse_config
    from deploy_fetcher.scheduler import Scheduler

    configure_logging("error", "json")
    scheduler_module.SLOW_POLL_HEADROOM = headroom
    with (
        tempfile.TemporaryDirectory() as scratch,
        HostileServer("http://127.0.0.1:9", mode="slow", trickle=1.0) as server,
    ):
        script = Path(scratch) / "empty.jsonl"
        script.write_text("", encoding="utf-8")
        sources: list[dict[str, Any]] = [
            {"name": f"ok{n}", "provider": "scripted", "script": str(script)}
            for n in range(args.healthy)
        ]
        sources.append(
            {
                "name": "hostile",
                "provider": "gitlab",
                "url": server.url,
                "token": SECRET,
                "projects": [f"g/p{n}" for n in range(args.hostile)],
            }
        )
        text = json.dumps(
            {
                "state": {"path": f"{scratch}/s.db"},
                "defaults": {"interval": "1s", "jitter": "0s", "timeout": "5s"},
                "sources": sources,
                "sinks": [{"name": "j", "type": "jsonl", "path": f"{scratch}/o.jsonl"}],
            }
        )
        runtime = Runtime(parse_config(text, environ={}))
        sched = Scheduler(runtime, max_workers=args.workers)
        sched.start()
        time.sleep(args.warmup)

        def healthy_ok() -> float:
            return sum(
                sample.value
                for metric in runtime.metrics.registry.collect()
                if metric.name == "fetcher_poll_cycles"
                for sample in metric.samples
                if sample.name == "fetcher_poll_cycles_total"
                and sample.labels["source"].startswith("ok")
                and sample.labels["outcome"] == "ok"
            )

        before = healthy_ok()
        time.sleep(args.window)
        done = healthy_ok() - before
        runtime.stop.set()
        server.stop()  # ends the trickles, so the hung polls return
        sched.shutdown()
        runtime.close()
    expected = args.healthy * args.window / 1.0
    return {
        "pool": "elastic (slow polls free their worker)" if headroom > 1 else "plain (headroom 1)",
        "workers": args.workers,
        "hostile_targets": args.hostile,
        "healthy_targets": args.healthy,
        "window_s": args.window,
        "healthy_polls": int(done),
        "healthy_polls_expected": int(expected),
        "share_of_schedule": round(done / expected, 2),
    }


def main() -> None:
    """Parse arguments, run both measurements (or one child), print the figures."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, name, url, seconds, cap = sys.argv[2:7]
        run = _sink_run if kind == "sink" else _provider_run
        run(name, url, float(seconds), float(cap))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="limit per endless run")
    parser.add_argument(
        "--rss-cap", type=float, default=1024.0, help="MiB of growth that ends a run"
    )
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--hostile", type=int, default=12, help="hung targets")
    parser.add_argument("--healthy", type=int, default=20, help="healthy targets, 1 s interval")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds before counting")
    parser.add_argument("--window", type=float, default=30.0, help="seconds counted")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {
        "endless_body": endless(args),
        "slow_source": [_schedule(args, 1), _schedule(args, 4)],
    }
    if args.json:
        print(json.dumps(result))
        return
    print("RSS during an endless body (growth over the process's own baseline):")
    for row in result["endless_body"]:
        print(
            f"  {row['component']:<32} {row.get('rss_growth_mib', '?'):>8} MiB growth, "
            f"peak {row.get('rss_peak_mib', '?')} MiB, {row.get('seconds', '?')} s, "
            f"ended by {row.get('ended_by', '?')}; server offered {row['offered_mib']} MiB"
        )
    print("Healthy sources' polls while one source's server trickles:")
    for row in result["slow_source"]:
        print(
            f"  {row['pool']:<40} {row['healthy_polls']:>5} of {row['healthy_polls_expected']} "
            f"({row['share_of_schedule']:.0%}) with {row['hostile_targets']} hung targets on "
            f"{row['workers']} workers"
        )


if __name__ == "__main__":
    main()

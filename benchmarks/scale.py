"""Scale: one daemon, 1 000 sources over the three CI emulators, a 60 s interval, for minutes.

One real ``fetcher run`` process polls N sources (a third each on GitHub, GitLab and Azure DevOps
emulators: one repository, project or pipeline per source, as teams configure them) and delivers to
the Deployment Dashboard emulator. All emulators run in this process; the daemon's own cost is read
from ``/proc`` for its process alone. After a warm-up (every source polled once and the history its
first poll read delivered), two phases:

* **idle** — the CI worlds stand still: what 1 000 sources cost when nothing happens (requests per
  cycle and per source, CPU per poll);
* **active** — the worlds' clocks follow the wall clock and new pipelines keep starting: delivery
  latency from the moment a state change appears in an emulator to the dashboard row arriving
  (p50 / p95 / max; the change's own timestamp is when it appeared, since the clocks agree).

Throughout: whether jobs run on schedule (cycles per source against the interval, and the
scheduler's own "skipped" / "missed" warnings), the daemon's CPU share and peak RSS.

    .venv/bin/python benchmarks/scale.py             # 1 000 sources, 10 minutes measured
    .venv/bin/python benchmarks/scale.py --quick     # 1 000 sources, 2 minutes measured
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from deploy_fetcher.emulators._server import EmulatorServer
from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator
from deploy_fetcher.emulators.azure_devops import Scenario as AzureScenario
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.emulators.github import GitHubEmulator, RepoSpec, WorkflowSpec
from deploy_fetcher.emulators.github import Scenario as GitHubScenario
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.emulators.gitlab import Scenario as GitLabScenario
from deploy_fetcher.model import parse_timestamp, utc_now

TOKEN = "emulator-token"  # noqa: S105 - the emulators' public test token
API_KEY = "scale-dashboard-key"
INTERVAL = 60.0
TICKS = os.sysconf("SC_CLK_TCK")
#: Seconds between two new pipelines, over all sources of one CI system, once clocks move.
ACTIVITY = 6.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the worlds ---------------------------------------------------------------------------------
@dataclass
class Worlds:
    """The three CI emulators, the dashboard, and the ``sources[]`` entries reading them."""

    github: GitHubEmulator
    gitlab: GitLabEmulator
    azure: AzureDevOpsEmulator
    dashboard: DashboardEmulator
    sources: list[dict[str, Any]]

    @property
    def ci(self) -> dict[str, EmulatorServer]:
        """The CI emulators by provider name."""
        return {"github": self.github, "gitlab": self.gitlab, "azure-devops": self.azure}

    def stop(self) -> None:
        """Stop every emulator."""
        for emulator in (*self.ci.values(), self.dashboard):
            emulator.stop()


def build_worlds(sources: int, seed: int) -> Worlds:
    """N sources split over three emulators, each with a little history and steady activity."""
    n_github = n_gitlab = sources // 3
    n_azure = sources - n_github - n_gitlab
    chain = ("dev", "staging", "prod")
    github = GitHubEmulator(
        scenario=GitHubScenario(
            repos=[
                RepoSpec(
                    f"scale/svc-{i:04d}", (WorkflowSpec(f"Deploy svc-{i}", "deploy.yml", chain),)
                )
                for i in range(n_github)
            ],
            history_pipelines=1,
            history=timedelta(hours=6),
            activity=ACTIVITY,
            seed=seed,
        ),
        rate_limit=10**9,
    )
    gitlab_scenario = GitLabScenario(seed)
    for i in range(n_gitlab):
        gitlab_scenario.project(
            f"scale/svc-{i:04d}",
            environments=("staging", "production"),
            history=1,
            activity=ACTIVITY * n_gitlab,
        )
    gitlab = GitLabEmulator(scenario=gitlab_scenario, rate_limit=10**9)
    start = utc_now()
    azure_scenario = AzureScenario.empty(
        pipelines=tuple(f"svc{i:04d}" for i in range(n_azure)), approval_on=None, seed=seed
    )
    for index, pipeline in enumerate(azure_scenario.pipelines):
        azure_scenario.random_run(pipeline, start - timedelta(hours=3, seconds=index))
    azure_scenario.cadence = ACTIVITY * n_azure
    azure_scenario.next_run = {
        p.id: start + timedelta(seconds=(index * ACTIVITY) % (ACTIVITY * n_azure))
        for index, p in enumerate(azure_scenario.pipelines)
    }
    azure = AzureDevOpsEmulator(scenario=azure_scenario, start=start, tstu_limit=1e12)
    dashboard = DashboardEmulator(api_key=API_KEY)
    for emulator in (github, gitlab, azure, dashboard):
        emulator.start()
    entries: list[dict[str, Any]] = []
    entries += [
        {
            "name": f"gh-{i:04d}",
            "provider": "github",
            "token": TOKEN,
            "base_url": github.url(),
            "repos": [f"scale/svc-{i:04d}"],
        }
        for i in range(n_github)
    ]
    entries += [
        {
            "name": f"gl-{i:04d}",
            "provider": "gitlab",
            "token": TOKEN,
            "url": gitlab.url(),
            "projects": [f"scale/svc-{i:04d}"],
        }
        for i in range(n_gitlab)
    ]
    entries += [
        {
            "name": f"ado-{i:04d}",
            "provider": "azure-devops",
            "organization_url": azure.url("/contoso"),
            "projects": ["shop"],
            "pat": TOKEN,
            "mode": "stages",
            "pipelines": [f"svc{i:04d}"],
        }
        for i in range(n_azure)
    ]
    return Worlds(github, gitlab, azure, dashboard, entries)


# -- the daemon ---------------------------------------------------------------------------------
@dataclass
class Daemon:
    """The ``fetcher run`` process and what can be read about it from outside."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics``, by name and labels."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as r:
            text = r.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def cpu_seconds(self) -> float:
        """User and system CPU time the daemon has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def status(self, key: str) -> int:
        """A ``/proc/<pid>/status`` value in kB (``VmHWM`` is the peak RSS)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def warnings(self) -> Counter[str]:
        """The scheduler's own complaints (plain text lines in the log)."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return Counter(
            {
                "skipped (still running)": len(
                    re.findall(r"maximum number of running instances", text)
                ),
                "missed": len(re.findall(r"was missed by", text)),
            }
        )

    def errors(self) -> Counter[str]:
        """Warning and error log lines, by event."""
        counts: Counter[str] = Counter()
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{") and (
                '"level": "error"' in line or '"level": "warning"' in line
            ):
                counts[json.loads(line).get("event", "?")] += 1
        return counts


def start_daemon(workdir: Path, worlds: Worlds) -> Daemon:
    port = _free_port()
    config = workdir / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"path": str(workdir / "state.db")},
                "server": {"port": port},
                "log": {"level": "info", "format": "json"},
                "defaults": {"interval": f"{INTERVAL:g}s", "lookback": "1d"},
                "sinks": [
                    {
                        "name": "dashboard",
                        "type": "deployment-dashboard",
                        "url": worlds.dashboard.url(),
                        "api_key": API_KEY,
                    }
                ],
                "sources": worlds.sources,
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    log = workdir / "fetcher.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy_fetcher.cli", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
        )
    daemon = Daemon(proc, port, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited: {log.read_text()[-2000:]}")
        try:
            daemon.metrics()
        except OSError:
            time.sleep(0.5)
        else:
            return daemon
    raise SystemExit("the daemon did not come up within 120 s")


# -- measuring ----------------------------------------------------------------------------------
def cycles(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """Poll cycles per source (any outcome)."""
    out: Counter[str] = Counter()
    for (name, labels), value in metrics.items():
        if name == "fetcher_poll_cycles_total":
            out[dict(labels)["source"]] += value
    return dict(out)


def outcomes(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Counter[str]:
    out: Counter[str] = Counter()
    for (name, labels), value in metrics.items():
        if name == "fetcher_poll_cycles_total":
            out[dict(labels)["outcome"]] += value
    return out


@dataclass
class Snapshot:
    """What is counted at a phase boundary."""

    at: float
    cpu: float
    cycles: dict[str, float]
    outcomes: Counter[str]
    requests: dict[str, int]
    not_modified: dict[str, int]
    rows: int
    #: Rows waiting in the outbox for the dashboard.
    depth: float
    #: CPU time of this process: the emulators' cost, to show how loaded the machine was.
    emulators_cpu: float


def snapshot(daemon: Daemon, worlds: Worlds) -> Snapshot:
    metrics = daemon.metrics()
    return Snapshot(
        at=time.monotonic(),
        cpu=daemon.cpu_seconds(),
        cycles=cycles(metrics),
        outcomes=outcomes(metrics),
        requests={name: len(e.log) for name, e in worlds.ci.items()},
        not_modified={
            name: sum(1 for r in list(e.log) if r.status == 304) for name, e in worlds.ci.items()
        },
        rows=len(worlds.dashboard.rows()),
        depth=metrics.get(("fetcher_outbox_depth", (("sink", "dashboard"),)), 0.0),
        emulators_cpu=sum(os.times()[:2]),
    )


@dataclass
class Phase:
    """Two snapshots and what lies between them."""

    name: str
    first: Snapshot
    last: Snapshot
    sources: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """How long the phase lasted."""
        return self.last.at - self.first.at

    def report(self) -> dict[str, Any]:
        """The phase's figures."""
        cycles_done = {
            k: self.last.cycles.get(k, 0) - self.first.cycles.get(k, 0) for k in self.last.cycles
        }
        polls = sum(cycles_done.values())
        per_cycle = self.seconds / INTERVAL
        expected = int(per_cycle)
        late = sorted(k for k, v in cycles_done.items() if v < expected - 1)
        requests = {k: self.last.requests[k] - self.first.requests[k] for k in self.last.requests}
        prefixes = {"github": "gh-", "gitlab": "gl-", "azure-devops": "ado-"}
        polls_by = {
            k: sum(v for name, v in cycles_done.items() if name.startswith(prefix))
            for k, prefix in prefixes.items()
        }
        not_modified = {
            k: self.last.not_modified[k] - self.first.not_modified[k] for k in self.last.requests
        }
        cpu = self.last.cpu - self.first.cpu
        return {
            "phase": self.name,
            "seconds": round(self.seconds),
            "polls": int(polls),
            "cycles_per_source": {
                "expected": round(per_cycle, 1),
                "min": min(cycles_done.values()),
                "max": max(cycles_done.values()),
            },
            "sources_behind_schedule": len(late),
            "outcomes": dict(self.last.outcomes - self.first.outcomes),
            "cpu_share_of_one_core": round(cpu / self.seconds, 4),
            "cpu_ms_per_poll": round(1000 * cpu / polls, 2) if polls else None,
            "requests_per_minute": {k: round(v / per_cycle, 1) for k, v in requests.items()},
            "requests_per_poll": {
                k: round(v / polls_by[k], 3) if polls_by[k] else None for k, v in requests.items()
            },
            "not_modified_share": {
                k: round(not_modified[k] / requests[k], 3) if requests[k] else None
                for k in requests
            },
            "rows_delivered": self.last.rows - self.first.rows,
            "outbox_depth_at_start": self.first.depth,
            "outbox_depth_at_end": self.last.depth,
            "emulators_cpu_share_of_one_core": round(
                (self.last.emulators_cpu - self.first.emulators_cpu) / self.seconds, 3
            ),
        }


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem / 2**20, 1),
        "python": sys.version.split()[0],
    }


def run(sources: int, duration: float, seed: int, workdir: Path) -> dict[str, Any]:
    """Warm up, then an idle and an active phase; return every figure."""
    worlds = build_worlds(sources, seed)
    split = {
        "github": sum(1 for s in worlds.sources if s["provider"] == "github"),
        "gitlab": sum(1 for s in worlds.sources if s["provider"] == "gitlab"),
        "azure-devops": sum(1 for s in worlds.sources if s["provider"] == "azure-devops"),
    }
    daemon = start_daemon(workdir, worlds)
    try:
        started = time.monotonic()
        polled_after = None
        while time.monotonic() - started < 600:
            metrics = daemon.metrics()
            if polled_after is None and len(cycles(metrics)) >= sources:
                polled_after = time.monotonic() - started
            depth = metrics.get(("fetcher_outbox_depth", (("sink", "dashboard"),)), 1.0)
            if polled_after is not None and depth == 0:
                break
            time.sleep(2)
        warm_up = time.monotonic() - started
        print(
            f"warm-up: every source polled once after {polled_after or 0:.0f}s, "
            f"their history delivered after {warm_up:.0f}s",
            flush=True,
        )
        idle_start = snapshot(daemon, worlds)
        time.sleep(max(INTERVAL, duration * 0.3))
        idle_end = snapshot(daemon, worlds)
        print("idle phase measured; the worlds' clocks move from now on", flush=True)
        frozen_for = time.monotonic() - started + 5
        for emulator in worlds.ci.values():
            emulator.advance(frozen_for)  # catch up with the wall clock
        active_wall = time.time()
        last = time.monotonic()
        active_start = snapshot(daemon, worlds)
        while time.monotonic() - active_start.at < duration - (idle_end.at - idle_start.at):
            time.sleep(1)
            now = time.monotonic()
            for emulator in worlds.ci.values():
                emulator.advance(now - last)
            last = now
        active_end = snapshot(daemon, worlds)
        active_end_wall = time.time()
        # Clocks stop; one more interval (and the jitter) lets the last changes reach the dashboard.
        print("active phase measured; waiting one interval for the last changes", flush=True)
        time.sleep(INTERVAL + 20)
        result = {
            "machine": machine(),
            "sources": split,
            "interval_s": INTERVAL,
            "first_poll_of_every_source_after_s": round(polled_after or 0),
            "first_reads_delivered_after_s": round(warm_up),
            "phases": [
                Phase("idle", idle_start, idle_end, split).report(),
                Phase("active", active_start, active_end, split).report(),
            ],
            "latency_s": latencies_window(worlds, active_wall + 5, active_end_wall),
            "daemon_peak_rss_mib": round(daemon.status("VmHWM") / 1024, 1),
            "daemon_rss_end_mib": round(daemon.status("VmRSS") / 1024, 1),
            "scheduler_warnings": dict(daemon.warnings()),
            "log_warnings_and_errors": dict(daemon.errors()),
        }
    finally:
        daemon.proc.terminate()
        daemon.proc.wait(60)
        worlds.stop()
    return result


def latencies_window(
    worlds: Worlds, since_wall: float, until_wall: float
) -> dict[str, float | int]:
    """:func:`latencies` for changes that appeared between two wall-clock times."""
    values = []
    for row in worlds.dashboard.rows():
        happened = parse_timestamp(row["happened_at"]).timestamp()
        if since_wall <= happened <= until_wall:
            values.append(parse_timestamp(row["received_at"]).timestamp() - happened)
    if not values:
        return {"rows": 0}
    values.sort()
    return {
        "rows": len(values),
        "p50": round(statistics.median(values), 1),
        "p95": round(values[int(0.95 * (len(values) - 1))], 1),
        "max": round(values[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument(
        "--duration", type=float, default=600.0, help="seconds measured after the warm-up"
    )
    parser.add_argument("--quick", action="store_true", help="measure 2 minutes instead of 10")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    duration = 120.0 if args.quick else args.duration
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.sources, duration, args.seed, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Scale: one daemon, N sources over the three CI emulators, for minutes; prints JSON.

One real ``fetcher run`` process polls N sources (split over GitHub, GitLab and Azure DevOps emulators
by ``--mix``: one repository, project or pipeline per source, as teams configure them, one credential
per CI system) and delivers to the Deployment Dashboard emulator. Each emulator runs in a process of
its own (one Python process could not answer 10 000 sources); the daemon's own cost is read from
``/proc`` for its process alone, as CPU-seconds (user + system)
rather than wall time, so other work on a loaded machine does not count against it. After a warm-up
(every source polled once and the history its first poll read delivered), two phases:

* **idle** — the CI worlds stand still: what N sources cost when nothing happens (requests per
  cycle and per source, CPU per poll);
* **active** — the worlds' clocks follow the wall clock and new pipelines keep starting: delivery
  latency from the moment a state change appears in an emulator to the dashboard row arriving,
  split into *new* deployments (their first status, and what they went through before it arrived)
  and *in-flight* changes (a status of a deployment whose first row had arrived when it happened),
  p50 / p95 / max.

Throughout: whether jobs run on schedule (cycles per source against the interval, and how many
sources fell behind it), the daemon's CPU share and peak RSS, and what each
credential asked of its CI system per minute — the mean over the phase and the busiest sliding
minute — against the provider's documented limit (GitHub: 900 REST points per minute, a GET one point,
a ``304`` counted like any answer; 100 requests in flight. GitLab.com: 2 000 API requests per minute
per user). The GitHub emulator enforces the 900 points as GitHub does (a 403 with ``retry-after``)
and the JSON says how many requests it refused.

    .venv/bin/python benchmarks/scale.py                       # 1 000 sources, 10 minutes measured
    .venv/bin/python benchmarks/scale.py --quick               # 1 000 sources, 2 minutes measured
    .venv/bin/python benchmarks/scale.py --sources 1000 3000   # one fresh daemon per size, and a fit
    .venv/bin/python benchmarks/scale.py --mix github=2,gitlab=1,azure-devops=0 --sources 600
    .venv/bin/python benchmarks/scale.py --fit a.json b.json   # fit RSS over earlier runs' JSON

Progress goes to stderr; stdout is one JSON document (``--json`` also writes it to a file).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from _hooks import Hooks
from prometheus_client.parser import text_string_to_metric_families

from deploy_fetcher.emulators._server import LoggedRequest
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
HOOK_SECRET = "scale-webhook-secret"  # noqa: S105 - the benchmark's own webhook secret
TICKS = os.sysconf("SC_CLK_TCK")
#: Seconds between two new pipelines, over all sources of one CI system, once clocks move.
ACTIVITY = 6.0
PROVIDERS = ("github", "gitlab", "azure-devops")
PREFIXES = {"github": "gh-", "gitlab": "gl-", "azure-devops": "ado-"}
#: Documented per-credential limits, per minute (see the module docstring).
LIMITS_PER_MINUTE = {"github": 900, "gitlab": 2000}
GITHUB_CONCURRENCY_LIMIT = 100


def progress(message: str) -> None:
    """One line for the person watching (stdout is kept for the JSON)."""
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_mix(text: str) -> dict[str, float]:
    """``github=1,gitlab=1,azure-devops=1`` → weights by provider (missing providers weigh 0)."""
    weights = dict.fromkeys(PROVIDERS, 0.0)
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in weights:
            msg = f"--mix: unknown provider {name!r} (one of {', '.join(PROVIDERS)})"
            raise argparse.ArgumentTypeError(msg)
        weights[name.strip()] = float(value or 1)
    if sum(weights.values()) <= 0:
        msg = "--mix: at least one provider needs a positive weight"
        raise argparse.ArgumentTypeError(msg)
    return weights


def split_sources(total: int, mix: Mapping[str, float]) -> dict[str, int]:
    """How many of ``total`` sources each provider gets (largest remainders, summing to ``total``)."""
    weight = sum(mix.values())
    exact = {name: total * mix[name] / weight for name in PROVIDERS}
    counts = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(PROVIDERS, key=lambda n: exact[n] - counts[n], reverse=True)
    for name in by_remainder[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


# -- the worlds ---------------------------------------------------------------------------------
#: GitHub's secondary limit the GitHub emulator enforces (points per credential and minute).
SECONDARY_LIMIT = 900
#: GitLab.com's limit of API requests per user and minute, which the GitLab emulator enforces.
GITLAB_PER_MINUTE = 2000


def _github(count: int, seed: int) -> tuple[GitHubEmulator, list[dict[str, Any]]]:
    chain = ("dev", "staging", "prod")
    emulator = GitHubEmulator(
        scenario=GitHubScenario(
            repos=[
                RepoSpec(
                    f"scale/svc-{i:05d}", (WorkflowSpec(f"Deploy svc-{i}", "deploy.yml", chain),)
                )
                for i in range(count)
            ],
            history_pipelines=1,
            history=timedelta(hours=6),
            activity=ACTIVITY,
            seed=seed,
        ),
        rate_limit=10**9,
        secondary_points_per_minute=SECONDARY_LIMIT,
    )
    emulator.start()
    return emulator, [
        {
            "name": f"gh-{i:05d}",
            "provider": "github",
            "token": TOKEN,
            "base_url": emulator.url(),
            "repos": [f"scale/svc-{i:05d}"],
            "secondary_limit": SECONDARY_LIMIT,  # as on github.com (the default there)
        }
        for i in range(count)
    ]


def _gitlab(count: int, seed: int) -> tuple[GitLabEmulator, list[dict[str, Any]]]:
    scenario = GitLabScenario(seed)
    for i in range(count):
        scenario.project(
            f"scale/svc-{i:05d}",
            environments=("staging", "production"),
            history=1,
            activity=ACTIVITY * count,
            # Spread like the Azure DevOps pipelines: one project's first pipeline every ACTIVITY s.
            # Left random (at least a fifth of ACTIVITY × count, 400 s at 333 projects), no GitLab
            # project changed during a measurement of a few minutes.
            first_activity=i * ACTIVITY,
        )
    # GitLab.com's 2 000 requests a minute per user, stated in RateLimit-* and enforced with 429s.
    emulator = GitLabEmulator(scenario=scenario, rate_limit=GITLAB_PER_MINUTE)
    emulator.start()
    return emulator, [
        {
            "name": f"gl-{i:05d}",
            "provider": "gitlab",
            "token": TOKEN,
            "url": emulator.url(),
            "projects": [f"scale/svc-{i:05d}"],
        }
        for i in range(count)
    ]


def _azure(count: int, seed: int) -> tuple[AzureDevOpsEmulator, list[dict[str, Any]]]:
    start = utc_now()
    scenario = AzureScenario.empty(
        pipelines=tuple(f"svc{i:05d}" for i in range(count)), approval_on=None, seed=seed
    )
    for index, pipeline in enumerate(scenario.pipelines):
        scenario.random_run(pipeline, start - timedelta(hours=3, seconds=index))
    scenario.cadence = ACTIVITY * count
    scenario.next_run = {
        p.id: start + timedelta(seconds=(index * ACTIVITY) % (ACTIVITY * count))
        for index, p in enumerate(scenario.pipelines)
    }
    emulator = AzureDevOpsEmulator(scenario=scenario, start=start, tstu_limit=1e12)
    emulator.start()
    return emulator, [
        {
            "name": f"ado-{i:05d}",
            "provider": "azure-devops",
            "organization_url": emulator.url("/contoso"),
            "projects": ["shop"],
            "pat": TOKEN,
            "mode": "stages",
            "pipelines": [f"svc{i:05d}"],
        }
        for i in range(count)
    ]


class Remote:
    """An emulator running in a child process, driven over a pipe (see :func:`_serve`)."""

    def __init__(self, kind: str, count: int, seed: int) -> None:
        self.kind = kind
        parent, child = multiprocessing.Pipe()
        self._conn = parent
        self._proc = multiprocessing.Process(
            target=_serve, args=(kind, count, seed, child), name=f"emulator-{kind}", daemon=True
        )
        self._proc.start()
        self.base_url, self.sources = self._ask("ready")

    def _ask(self, command: str, *args: Any) -> Any:
        if command != "ready":
            self._conn.send((command, args))
        answer = self._conn.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def url(self) -> str:
        """The emulator's base URL."""
        return str(self.base_url)

    def log_length(self) -> int:
        """Requests answered so far."""
        return int(self._ask("log_length"))

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward."""
        self._ask("advance", seconds)

    def figures(self, first: int, last: int, minutes: float) -> dict[str, Any]:
        """Per-credential figures of the requests logged between two log lengths."""
        return dict(self._ask("figures", first, last, minutes))

    def rows(self) -> list[dict[str, Any]]:
        """The dashboard's rows (dashboard only)."""
        return list(self._ask("rows"))

    def row_count(self) -> int:
        """How many rows the dashboard holds (dashboard only)."""
        return int(self._ask("row_count"))

    def cpu_seconds(self) -> float:
        """CPU time the emulator's process has used."""
        return float(self._ask("cpu"))

    def refused(self) -> int:
        """Requests the emulator refused for a secondary rate limit."""
        return int(self._ask("refused"))

    def catch_up(self) -> None:
        """Advance the emulator's clock to the wall clock (it stood still until now)."""
        self._ask("catch_up")

    def send_hooks_to(self, url: str) -> None:
        """From now on, send a webhook to ``url`` for each target that changes."""
        self._ask("hooks", url)

    def hook_figures(self) -> dict[str, Any]:
        """Webhooks sent so far, by event (and failed sends), when it sends any."""
        return dict(self._ask("hook_figures"))

    def stop(self) -> None:
        """Stop the emulator and its process."""
        with contextlib.suppress(EOFError, OSError):  # the process is gone already
            self._ask("stop")
        self._proc.join(30)


def _serve(kind: str, count: int, seed: int, conn: Any) -> None:
    """The child process: build one emulator, then answer the parent's commands until ``stop``."""
    builders = {"github": _github, "gitlab": _gitlab, "azure-devops": _azure}
    if kind == "dashboard":
        emulator: Any = DashboardEmulator(api_key=API_KEY)
        emulator.start()
        entries: list[dict[str, Any]] = []
    else:
        emulator, entries = builders[kind](count, seed)
    conn.send((emulator.url(), entries))
    hooks: Hooks | None = None
    while True:
        command, args = conn.recv()
        try:
            if command == "stop":
                emulator.stop()
                if hooks is not None:
                    hooks.stop()
                conn.send(None)
                return
            if command == "hooks":
                hooks = Hooks(kind, emulator, *args, HOOK_SECRET)
                conn.send(None)
                continue
            if command == "hook_figures":
                conn.send(hooks.figures() if hooks is not None else {})
                continue
            answer = _answer(kind, emulator, command, args)
            if command in {"advance", "catch_up"} and hooks is not None:
                hooks.after_advance()
            conn.send(answer)
        except Exception as exc:  # reported to the parent, which raises it
            conn.send(exc)


def _answer(kind: str, emulator: Any, command: str, args: tuple[Any, ...]) -> Any:
    handlers: dict[str, Callable[[], Any]] = {
        "log_length": lambda: len(emulator.log),
        "advance": lambda: emulator.advance(args[0]),
        "catch_up": lambda: emulator.advance(max(0.0, time.time() - _clock(kind, emulator))),
        "figures": lambda: credential_figures(kind, emulator.log[args[0] : args[1]], args[2]),
        "rows": getattr(emulator, "rows", list),
        "row_count": lambda: len(emulator.rows()),
        "cpu": lambda: sum(os.times()[:2]),
        "refused": lambda: getattr(emulator, "secondary_refusals", 0),
    }
    if command not in handlers:
        msg = f"unknown command {command!r}"
        raise ValueError(msg)
    return handlers[command]()


def _clock(kind: str, emulator: Any) -> float:
    """An emulator's clock, as a Unix time (GitLab's ``now`` is a property, the others' a method)."""
    now = emulator.now if kind == "gitlab" else emulator.now()
    return float(now.timestamp())


@dataclass
class Worlds:
    """The CI emulators, the dashboard, and the ``sources[]`` entries reading them."""

    ci: dict[str, Remote]
    dashboard: Remote
    sources: list[dict[str, Any]]

    def stop(self) -> None:
        """Stop every emulator."""
        for emulator in (*self.ci.values(), self.dashboard):
            emulator.stop()

    def cpu_seconds(self) -> float:
        """CPU time of every emulator process."""
        return sum(e.cpu_seconds() for e in (*self.ci.values(), self.dashboard))


def build_worlds(split: Mapping[str, int], seed: int) -> Worlds:
    """The emulators of the providers with sources, each with a little history and steady activity."""
    ci = {name: Remote(name, split[name], seed) for name in PROVIDERS if split[name]}
    sources = [entry for remote in ci.values() for entry in remote.sources]
    return Worlds(ci, Remote("dashboard", 0, seed), sources)


# -- the daemon ---------------------------------------------------------------------------------
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Daemon:
    """The ``fetcher run`` process and what can be read about it from outside."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def metrics(self) -> Samples:
        """Every sample of ``/metrics``, by name and labels."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=60) as r:
            text = r.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def cpu_seconds(self) -> float:
        """User and system CPU time the daemon has used so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def status(self, key: str) -> int:
        """A ``/proc/<pid>/status`` value in kB (``VmHWM`` is the peak RSS)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def errors(self) -> Counter[str]:
        """Warning and error log lines, by event."""
        counts: Counter[str] = Counter()
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{") and (
                '"level": "error"' in line or '"level": "warning"' in line
            ):
                counts[json.loads(line).get("event", "?")] += 1
        return counts


@dataclass(frozen=True)
class Options:
    """How the daemon is set up beyond the sources."""

    interval: float = 60.0
    #: ``defaults.hot_interval`` (None: the daemon's default; 0: every target at ``interval``).
    hot_interval: float | None = None
    #: Whether the CI emulators send webhooks and the daemon takes them as nudges.
    nudges: bool = False
    #: ``nudges.min_gap`` in seconds (None: the default).
    nudge_gap: float | None = None


def start_daemon(workdir: Path, worlds: Worlds, options: Options) -> Daemon:
    """Write the configuration and start ``fetcher run``; return once ``/metrics`` answers."""
    port = _free_port()
    config = workdir / "config.yaml"
    defaults: dict[str, Any] = {"interval": f"{options.interval:g}s", "lookback": "1d"}
    if options.hot_interval is not None:
        defaults["hot_interval"] = f"{options.hot_interval:g}s"
    nudges: dict[str, Any] = {}  # absent unless asked for: a daemon without nudges runs too
    if options.nudges:
        nudges = {
            "enabled": True,
            "github": {"secret": HOOK_SECRET},
            "gitlab": {"token": HOOK_SECRET},
            "azure_devops": {"username": "hooks", "password": HOOK_SECRET},
        }
        if options.nudge_gap is not None:
            nudges["min_gap"] = f"{options.nudge_gap:g}s"
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"path": str(workdir / "state.db")},
                "server": {"port": port},
                **({"nudges": nudges} if nudges else {}),
                "log": {"level": "info", "format": "json"},
                "defaults": defaults,
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
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited: {log.read_text()[-2000:]}")
        try:
            daemon.metrics()
        except OSError:
            time.sleep(0.5)
        else:
            return daemon
    raise SystemExit("the daemon did not come up within 300 s")


# -- measuring ----------------------------------------------------------------------------------
def _by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    out: Counter[str] = Counter()
    for (sample, labels), value in samples.items():
        if sample == name:
            out[dict(labels)[label]] += value
    return dict(out)


def _pacing_sample(samples: Samples, second: int) -> dict[str, Any]:
    """Hot targets and stretch per budget, and polls and mean poll seconds per CI system, now."""
    count = _by_label(samples, "fetcher_poll_cycle_duration_seconds_count", "provider")
    total = _by_label(samples, "fetcher_poll_cycle_duration_seconds_sum", "provider")
    return {
        "s": second,
        "hot": {
            k.split("/")[0]: v for k, v in _by_label(samples, "fetcher_hot_targets", "pool").items()
        },
        "stretch": {
            k.split("/")[0]: v
            for k, v in _by_label(samples, "fetcher_poll_interval_stretch", "pool").items()
        },
        "polls": count,
        "poll_seconds_total": {k: round(v, 1) for k, v in total.items()},
    }


def credential_of(provider: str, request: LoggedRequest) -> str:
    """A name for the credential a request carried (a digest: the token itself is never shown)."""
    headers = request.headers
    secret = headers.get("authorization") or headers.get("private-token") or "anonymous"
    return f"{provider}#{hashlib.sha256(secret.encode()).hexdigest()[:6]}"


@dataclass
class Snapshot:
    """What is counted at a phase boundary."""

    at: float
    cpu: float
    cycles: dict[str, float]
    outcomes: dict[str, float]
    requests: dict[str, int]
    rows: int
    #: Rows waiting in the outbox for the dashboard.
    depth: float
    #: CPU time of the emulators' processes, to show what else the machine was doing.
    emulators_cpu: float
    load: float


def snapshot(daemon: Daemon, worlds: Worlds) -> Snapshot:
    """Read the daemon's counters, CPU time and the emulators' logs' lengths."""
    metrics = daemon.metrics()
    return Snapshot(
        at=time.monotonic(),
        cpu=daemon.cpu_seconds(),
        cycles=_by_label(metrics, "fetcher_poll_cycles_total", "source"),
        outcomes=_by_label(metrics, "fetcher_poll_cycles_total", "outcome"),
        requests={name: e.log_length() for name, e in worlds.ci.items()},
        rows=worlds.dashboard.row_count(),
        depth=metrics.get(("fetcher_outbox_depth", (("sink", "dashboard"),)), 0.0),
        emulators_cpu=worlds.cpu_seconds(),
        load=os.getloadavg()[0],
    )


def busiest_minute(times: Sequence[float]) -> int:
    """The most of ``times`` (sorted seconds) that fall in any 60-second window."""
    best = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= 60.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def most_in_flight(requests: Iterable[LoggedRequest]) -> int:
    """The most requests that were open at the same instant."""
    edges = sorted(
        [(r.started, 1) for r in requests if r.started]
        + [(r.at, -1) for r in requests if r.started]
    )
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def credential_figures(
    provider: str, logged: Sequence[LoggedRequest], minutes: float
) -> dict[str, Any]:
    """Per credential: requests (and GitHub REST points) per minute, busiest minute, peak in flight."""
    out: dict[str, Any] = {}
    by_credential: dict[str, list[LoggedRequest]] = defaultdict(list)
    for request in logged:
        by_credential[credential_of(provider, request)].append(request)
    for credential, requests in sorted(by_credential.items()):
        rest = [r for r in requests if not r.path.endswith("/graphql")]
        # GitHub's points: a GET (HEAD, OPTIONS) 1, any other method 5; a 304 like any answer.
        points = [1 if r.method in {"GET", "HEAD", "OPTIONS"} else 5 for r in rest]
        figures: dict[str, Any] = {
            "requests": len(requests),
            "per_minute": round(len(requests) / minutes, 1),
            "busiest_minute": busiest_minute(sorted(r.at for r in requests)),
            "not_modified": sum(1 for r in requests if r.status == 304),
            # Rate-limited answers (GitHub's secondary limit: 403; GitLab's and Azure's: 429).
            "rate_limited": sum(1 for r in requests if r.status in {403, 429}),
            "most_in_flight": most_in_flight(requests),
        }
        if provider == "github":
            figures["rest_points_per_minute"] = round(sum(points) / minutes, 1)
            figures["busiest_minute_rest_points"] = _busiest_points(rest, points)
            figures["limit_rest_points_per_minute"] = LIMITS_PER_MINUTE["github"]
            figures["limit_in_flight"] = GITHUB_CONCURRENCY_LIMIT
            figures["graphql_per_minute"] = round((len(requests) - len(rest)) / minutes, 1)
        elif provider in LIMITS_PER_MINUTE:
            figures["limit_per_minute"] = LIMITS_PER_MINUTE[provider]
        out[credential] = figures
    return out


def _busiest_points(requests: Sequence[LoggedRequest], points: Sequence[int]) -> int:
    pairs = sorted(zip((r.at for r in requests), points, strict=True))
    best = total = start = 0
    for at, value in pairs:
        total += value
        while at - pairs[start][0] >= 60.0:
            total -= pairs[start][1]
            start += 1
        best = max(best, total)
    return best


@dataclass
class Phase:
    """Two snapshots and what lies between them."""

    name: str
    first: Snapshot
    last: Snapshot
    interval: float
    split: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """How long the phase lasted."""
        return self.last.at - self.first.at

    def report(self, worlds: Worlds) -> dict[str, Any]:
        """The phase's figures."""
        cycles_done = {
            k: self.last.cycles.get(k, 0) - self.first.cycles.get(k, 0) for k in self.last.cycles
        }
        polls = sum(cycles_done.values())
        per_cycle = self.seconds / self.interval
        expected = int(per_cycle)
        late = sorted(k for k, v in cycles_done.items() if v < expected - 1)
        requests = {k: self.last.requests[k] - self.first.requests[k] for k in self.last.requests}
        polls_by = {
            k: sum(v for name, v in cycles_done.items() if name.startswith(PREFIXES[k]))
            for k in requests
        }
        cpu = self.last.cpu - self.first.cpu
        outcomes = {
            k: int(v - self.first.outcomes.get(k, 0))
            for k, v in self.last.outcomes.items()
            if v - self.first.outcomes.get(k, 0)
        }
        return {
            "phase": self.name,
            "seconds": round(self.seconds),
            "polls": int(polls),
            "cycles_per_source": {
                "expected": round(per_cycle, 1),
                "min": min(cycles_done.values(), default=0),
                "max": max(cycles_done.values(), default=0),
            },
            "sources_behind_schedule": len(late),
            "outcomes": outcomes,
            "daemon_cpu_seconds": round(cpu, 1),
            "cpu_share_of_one_core": round(cpu / self.seconds, 4),
            "cpu_ms_per_poll": round(1000 * cpu / polls, 2) if polls else None,
            "polls_per_minute": {
                k: round(v * 60 / self.seconds, 1) for k, v in polls_by.items() if self.seconds
            },
            "requests_per_poll": {
                k: round(v / polls_by[k], 3) if polls_by[k] else None for k, v in requests.items()
            },
            "credentials": {
                credential: figures
                for name, emulator in worlds.ci.items()
                for credential, figures in emulator.figures(
                    self.first.requests[name], self.last.requests[name], self.seconds / 60
                ).items()
            },
            "rows_delivered": self.last.rows - self.first.rows,
            "outbox_depth_at_start": self.first.depth,
            "outbox_depth_at_end": self.last.depth,
            "emulators_cpu_share_of_one_core": round(
                (self.last.emulators_cpu - self.first.emulators_cpu) / self.seconds, 3
            ),
            "load_average_at_end": round(self.last.load, 1),
        }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
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
        "load_average_at_start": round(os.getloadavg()[0], 1),
    }


def latencies(worlds: Worlds, since_wall: float, until_wall: float) -> dict[str, Any]:
    """Change → dashboard delays for changes between two wall-clock times, new and in-flight apart.

    A row is *in-flight* when the dashboard already held a row of the same deployment when this
    change happened: the poller knew the deployment was running. Statuses that happened before the
    deployment's first row arrived are caught up with it, so they count with the *new* ones (how
    soon a new deployment is seen, whatever it went through meanwhile).
    """
    rows = sorted(worlds.dashboard.rows(), key=lambda r: r["happened_at"])
    first_received: dict[str, float] = {}
    for row in rows:
        received = parse_timestamp(row["received_at"]).timestamp()
        deployment = row["deployment_id"]
        first_received[deployment] = min(received, first_received.get(deployment, received))
    delays: dict[str, list[float]] = {"new": [], "in_flight": []}
    by_provider: dict[str, list[float]] = defaultdict(list)
    hosts = {urlsplit(remote.url()).netloc: name for name, remote in worlds.ci.items()}
    for row in rows:
        happened = parse_timestamp(row["happened_at"]).timestamp()
        if not since_wall <= happened <= until_wall:
            continue
        kind = "in_flight" if first_received[row["deployment_id"]] <= happened else "new"
        delay = parse_timestamp(row["received_at"]).timestamp() - happened
        delays[kind].append(delay)
        if kind == "in_flight":
            provider = hosts.get(urlsplit(str(row.get("run_url") or "")).netloc, "other")
            by_provider[provider].append(delay)
    figures: dict[str, Any] = {kind: _percentiles(values) for kind, values in delays.items()}
    # Told apart by the host of each row's run URL (each CI emulator listens on its own port).
    figures["in_flight_by_provider"] = {
        name: _percentiles(values) for name, values in sorted(by_provider.items())
    }
    return figures


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"rows": 0}
    values.sort()
    return {
        "rows": len(values),
        "p50": round(statistics.median(values), 1),
        "p95": round(values[int(0.95 * (len(values) - 1))], 1),
        "max": round(values[-1], 1),
    }


def warm_up(daemon: Daemon, sources: int) -> tuple[float, float]:
    """Wait until every source was polled once and the outbox drained; seconds to each."""
    started = time.monotonic()
    polled_after = None
    told = started
    while time.monotonic() - started < 1800:
        metrics = daemon.metrics()
        polled = _by_label(metrics, "fetcher_poll_cycles_total", "source")
        if polled_after is None and len(polled) >= sources:
            polled_after = time.monotonic() - started
        depth = metrics.get(("fetcher_outbox_depth", (("sink", "dashboard"),)), 1.0)
        if time.monotonic() - told >= 60:
            told = time.monotonic()
            by_system = Counter(name.split("-")[0] for name in polled)
            progress(
                f"warm-up {told - started:.0f}s: {len(polled)} sources polled once "
                f"({dict(by_system)}), {depth:.0f} rows queued"
            )
        if polled_after is not None and depth == 0:
            break
        # /metrics of 10 000 sources is about 4 MB to render: scraped every 2 s, it alone took 7 %
        # of the daemon's samples. Prometheus scrapes every 15 s or more.
        time.sleep(10)
    return polled_after or 0.0, time.monotonic() - started


def run(
    split: dict[str, int], duration: float, seed: int, workdir: Path, options: Options
) -> dict[str, Any]:
    """Warm up, then an idle and an active phase; return every figure."""
    interval = options.interval
    sources = sum(split.values())
    progress(f"{sources} sources {split}: building the worlds")
    worlds = build_worlds(split, seed)
    daemon = start_daemon(workdir, worlds, options)
    if options.nudges:
        for emulator in worlds.ci.values():
            emulator.send_hooks_to(f"http://127.0.0.1:{daemon.port}/hooks")
    try:
        rss_started = daemon.status("VmRSS")
        polled_after, warmed = warm_up(daemon, sources)
        progress(
            f"warm-up: every source polled once after {polled_after:.0f}s, "
            f"their history delivered after {warmed:.0f}s"
        )
        idle_start = snapshot(daemon, worlds)
        time.sleep(max(interval, duration * 0.3))
        idle_end = snapshot(daemon, worlds)
        progress("idle phase measured; the worlds' clocks move from now on")
        for emulator in worlds.ci.values():
            emulator.catch_up()  # the worlds stood still: their clocks join the wall clock
        active_wall = time.time()
        last = time.monotonic()
        active_start = snapshot(daemon, worlds)
        waiting: dict[str, list[float]] = {"urgent": [], "scheduled": []}
        trace: list[dict[str, Any]] = []
        sampled = 0.0
        while time.monotonic() - active_start.at < duration - (idle_end.at - idle_start.at):
            time.sleep(1)
            now = time.monotonic()
            for emulator in worlds.ci.values():
                emulator.advance(now - last)
            last = now
            if now - sampled >= 15:  # the daemon's housekeeping sets the gauges every 15 s
                sampled = now
                metrics = daemon.metrics()
                for lane, value in _by_label(metrics, "fetcher_polls_waiting", "lane").items():
                    waiting.setdefault(lane, []).append(value)
                trace.append(_pacing_sample(metrics, round(now - active_start.at)))
        active_end = snapshot(daemon, worlds)
        active_end_wall = time.time()
        # Clocks stop; one more interval (and the jitter) lets the last changes reach the dashboard.
        progress("active phase measured; waiting one interval for the last changes")
        time.sleep(interval + 20)
        peak = daemon.status("VmHWM") / 1024
        return {
            "sources": sources,
            "split": split,
            "interval_s": interval,
            "first_poll_of_every_source_after_s": round(polled_after),
            "first_reads_delivered_after_s": round(warmed),
            "phases": [
                Phase("idle", idle_start, idle_end, interval, split).report(worlds),
                Phase("active", active_start, active_end, interval, split).report(worlds),
            ],
            "latency_s": latencies(worlds, active_wall + 5, active_end_wall),
            "daemon_rss_after_start_mib": round(rss_started / 1024, 1),
            "daemon_peak_rss_mib": round(peak, 1),
            "daemon_peak_rss_per_source_mib": round(peak / sources, 4),
            "daemon_rss_end_mib": round(daemon.status("VmRSS") / 1024, 1),
            "options": {
                "interval_s": options.interval,
                "hot_interval_s": options.hot_interval,
                "nudges": options.nudges,
            },
            "nudges": _by_label(daemon.metrics(), "fetcher_nudges_total", "outcome"),
            "webhooks": {name: remote.hook_figures() for name, remote in worlds.ci.items()},
            "secondary_limit_refusals": {
                name: emulator.refused() for name, emulator in worlds.ci.items()
            },
            "pacing_trace_active": trace,
            "polls_waiting_active": {
                lane: {"median": statistics.median(values), "max": max(values)}
                for lane, values in waiting.items()
                if values
            },
            "pacing": {
                name: _by_label(daemon.metrics(), metric, "pool")
                for name, metric in (
                    ("hot_targets", "fetcher_hot_targets"),
                    ("stretch", "fetcher_poll_interval_stretch"),
                )
            },
            "log_warnings_and_errors": dict(daemon.errors()),
        }
    finally:
        daemon.proc.terminate()
        daemon.proc.wait(120)
        worlds.stop()


def fit(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Least-squares fits of peak RSS (MiB) over the number of sources: linear, and with an N² term.

    The slope of the linear fit is the memory one more source costs; the quadratic term's share of
    the largest run says whether anything grows faster than the number of sources.
    """
    points = sorted((float(r["sources"]), float(r["daemon_peak_rss_mib"])) for r in runs)
    n = [p[0] for p in points]
    rss = [p[1] for p in points]
    out: dict[str, Any] = {"points": [[int(x), y] for x, y in points]}
    if len(set(n)) < 2:
        return out
    slope, intercept = statistics.linear_regression(n, rss)
    out["linear"] = {
        "base_mib": round(intercept, 1),
        "mib_per_source": round(slope, 4),
        "residuals_mib": [round(y - (intercept + slope * x), 1) for x, y in points],
    }
    if len(set(n)) >= 3:
        a, b, c = _quadratic(n, rss)
        largest = max(n)
        out["quadratic"] = {
            "base_mib": round(a, 1),
            "mib_per_source": round(b, 4),
            "mib_per_source_squared": float(f"{c:.3g}"),
            "n2_term_at_largest_mib": round(c * largest * largest, 1),
        }
    return out


def _quadratic(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least squares for ``y = a + b·x + c·x²`` (normal equations, solved by Cramer's rule)."""
    s = [sum(v**k for v in x) for k in range(5)]
    t = [sum(w * v**k for v, w in zip(x, y, strict=True)) for k in range(3)]
    m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]]

    def det(a: list[list[float]]) -> float:
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    d = det(m)
    coefficients = []
    for column in range(3):
        replaced = [row[:] for row in m]
        for i in range(3):
            replaced[i][column] = t[i]
        coefficients.append(det(replaced) / d)
    return coefficients[0], coefficients[1], coefficients[2]


def main() -> None:
    """Parse the arguments, run each size in a fresh daemon (or fit earlier runs), print JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sources", type=int, nargs="+", default=[1000])
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default="github=1,gitlab=1,azure-devops=1",
        help="weights of the providers, e.g. github=2,gitlab=1,azure-devops=0",
    )
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between polls")
    parser.add_argument(
        "--duration", type=float, default=600.0, help="seconds measured after the warm-up"
    )
    parser.add_argument("--quick", action="store_true", help="measure 2 minutes instead of 10")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--hot-interval",
        type=float,
        help="seconds between polls of a target with work in flight (0: a fixed schedule)",
    )
    parser.add_argument(
        "--nudges", action="store_true", help="the CI emulators send webhooks as targets change"
    )
    parser.add_argument(
        "--nudge-gap", type=float, help="with --nudges: nudges.min_gap in seconds (default 5)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--fit", type=Path, nargs="+", help="fit RSS over the runs in these JSON files; run nothing"
    )
    args = parser.parse_args()
    if args.fit:
        runs = [r for path in args.fit for r in json.loads(path.read_text())["runs"]]
        result: dict[str, Any] = {"runs": runs, "rss_fit": fit(runs)}
    else:
        duration = 120.0 if args.quick else args.duration
        result = {"machine": machine(), "mix": args.mix, "runs": []}
        for size in args.sources:
            with tempfile.TemporaryDirectory() as tmp:
                split = split_sources(size, args.mix)
                options = Options(args.interval, args.hot_interval, args.nudges, args.nudge_gap)
                result["runs"].append(run(split, duration, args.seed, Path(tmp), options))
            result["rss_fit"] = fit(result["runs"])
            if args.json:  # after each size, so a long series keeps what it measured
                args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

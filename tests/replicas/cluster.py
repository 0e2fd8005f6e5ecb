"""Three `fetcher run` replicas over one PostgreSQL database, reading the GitHub emulator.

Each replica authenticates with a token of its own, so the emulator's request log tells which
replica polled which repository and when. Each repository holds tool deployments whose statuses
the test writes, so the events that must reach the dashboard are known exactly.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from tests.support import FetcherProcess, free_port, wait_until, write_config

from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.engine.replicas import owner_of
from deploy_fetcher.model import format_rfc3339, utc_now

API_KEY = "replicas-dashboard-key"
REPOS = [f"acme/svc-{n}" for n in range(9)]
TTL = 4.0
INTERVAL = 1.0

Key = tuple[str, str, str]
_STATES = {"in_progress": "in-progress", "success": "success"}


def repo_of(path: str) -> str | None:
    """The repository a GitHub API path is about."""
    parts = path.split("/")
    return f"{parts[2]}/{parts[3]}" if len(parts) > 3 and parts[1] == "repos" else None


@dataclass
class Cluster:
    """The emulators, the database and the replicas of one test module."""

    tmp_path: Path
    url: str
    replicas: list[FetcherProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.github = GitHubEmulator(scenario=None)
        self.github.start()
        self.dashboard = DashboardEmulator(api_key=API_KEY)
        self.dashboard.start()
        self.deployed = 0
        for repo in REPOS:
            self.github.add_repo(repo)
            self.deploy(repo)
        self.replicas = [self._process(n) for n in range(3)]

    # -- the world ---------------------------------------------------------------------------------
    def deploy(self, repo: str) -> None:
        """A new deployment of ``repo``: in progress, then a success a few seconds later."""
        self.deployed += 1
        # Whole seconds: the dashboard keeps happened_at to the second.
        start = utc_now().replace(microsecond=0) - timedelta(minutes=10)
        at = start + timedelta(seconds=self.deployed)
        self.github.add_deployment(
            repo,
            "prod",
            sha=f"{self.deployed:040x}",
            at=at,
            statuses=[("in_progress", at), ("success", at + timedelta(seconds=5))],
        )

    def deploy_everywhere(self) -> None:
        """One new deployment in every repository."""
        for repo in REPOS:
            self.deploy(repo)

    def expected(self) -> set[Key]:
        """Every status the test wrote, as the dashboard must show it."""
        out: set[Key] = set()
        for repo in REPOS:
            for dep in self.github.repo(repo).deployments.values():
                for status in dep.statuses:
                    out.add(
                        (
                            f"gh-deploy-{dep.id}",
                            _STATES[status.state],
                            format_rfc3339(status.created_at),
                        )
                    )
        return out

    def rows(self) -> list[Key]:
        """The dashboard's rows, one per POST it accepted."""
        return [
            (row["deployment_id"], row["status"], row["happened_at"])
            for row in self.dashboard.rows()
        ]

    def missing(self) -> set[Key]:
        return self.expected() - set(self.rows())

    def out_of_order(self) -> list[str]:
        """Deployments whose success reached the dashboard before their in-progress."""
        first: dict[tuple[str, str], int] = {}
        for index, (deployment, status, _at) in enumerate(self.rows()):
            first.setdefault((deployment, status), index)
        return sorted(
            deployment
            for (deployment, status), index in first.items()
            if status == "success" and first.get((deployment, "in-progress"), -1) > index
        )

    def pending(self) -> int:
        """Rows of the outbox not yet delivered nor dead."""
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM deploy_fetcher.outbox WHERE state = 'pending'"
            ).fetchone()
        return int(str(row[0])) if row else 0

    def duplicates(self) -> int:
        rows = self.rows()
        return len(rows) - len(set(rows))

    def all_delivered(self, timeout: float = 60) -> None:
        wait_until(lambda: not self.missing(), timeout=timeout, interval=0.2)

    def polls(self, since: float = 0.0) -> dict[str, Counter[str]]:
        """Per repository, how many API requests each replica (by token) made after ``since``."""
        out: dict[str, Counter[str]] = {repo: Counter() for repo in REPOS}
        for request in self.github.requests_to("^/repos/"):
            repo = repo_of(request.path)
            token = request.headers.get("authorization", request.headers.get("Authorization", ""))
            if repo in out and request.at >= since:
                out[repo][token.removeprefix("token ")] += 1
        return out

    # -- the replicas -------------------------------------------------------------------------------
    def _process(self, n: int) -> FetcherProcess:
        token = f"replica-{n}-token"
        self.github.add_token(token)
        port = free_port()
        config = write_config(
            self.tmp_path / f"replica-{n}.yaml",
            {
                "state": {"backend": "postgres", "url": "${STATE_URL}", "lease_ttl": f"{TTL:g}s"},
                "server": {"port": port},
                "defaults": {"interval": f"{INTERVAL:g}s", "jitter": "0s"},
                "sources": [
                    {
                        "name": "gh",
                        "provider": "github",
                        "token": token,
                        "base_url": self.github.url(),
                        "repos": REPOS,
                    }
                ],
                "sinks": [
                    {
                        "name": "dashboard",
                        "type": "deployment-dashboard",
                        "url": self.dashboard.url(),
                        "api_key": API_KEY,
                        "timeout": "2s",
                        "backoff_initial": "100ms",
                        "backoff_max": "1s",
                    }
                ],
            },
        )
        return FetcherProcess(config, port, self.tmp_path / f"replica-{n}.log")

    def start(self, n: int | None = None) -> None:
        """Start replica ``n`` (a fresh process), or all three."""
        env = {"STATE_URL": self.url}
        for index in range(3) if n is None else [n]:
            previous = os.environ.copy()
            os.environ.update(env)
            try:
                self.replicas[index] = self._process_again(index)
                self.replicas[index].start()
            finally:
                os.environ.clear()
                os.environ.update(previous)

    def _process_again(self, n: int) -> FetcherProcess:
        old = self.replicas[n]
        return FetcherProcess(old.config_path, old.port, old.log_path)

    def token_of(self, n: int) -> str:
        return f"replica-{n}-token"

    def pid(self, n: int) -> int:
        proc = self.replicas[n].proc
        assert proc is not None
        return proc.pid

    def running(self) -> list[int]:
        return [
            n for n, r in enumerate(self.replicas) if r.proc is not None and r.proc.poll() is None
        ]

    def readiness(self, n: int) -> tuple[int, dict[str, Any]]:
        status, body = self.replicas[n].get("/readyz")
        return status, json.loads(body)

    def settled(self) -> bool:
        """Every replica is ready, and every target held once, by its owner among those that listed it.

        The last part waits out the handovers still to come after a replica joined or listed the
        source, so a test's counting window does not see a target move.
        """
        running = self.running()
        bodies = []
        for n in running:
            status, body = self.readiness(n)
            if status != 200 or body["replica"]["members"] != len(running):
                return False
            bodies.append(body["replica"])
        with psycopg.connect(self.url) as conn:
            listed = sorted(
                str(row[0])
                for row in conn.execute(
                    "SELECT id FROM deploy_fetcher.members"
                    " WHERE expires_at > clock_timestamp() AND 'gh' = ANY(sources)"
                )
            )
            held = {
                str(key): str(holder)
                for key, holder in conn.execute(
                    "SELECT key, holder FROM deploy_fetcher.leases"
                    " WHERE expires_at > clock_timestamp()"
                )
            }
        return (
            len(listed) == len(running)
            and sum(b["targets"] for b in bodies) == len(REPOS)
            and len(held) == len(REPOS) + 1
            and all(held.get(f"gh/{repo}") == owner_of(f"gh/{repo}", listed) for repo in REPOS)
        )

    def settle(self, timeout: float = 60) -> None:
        wait_until(self.settled, timeout=timeout, interval=0.2)

    def holders(self) -> dict[str, int]:
        """Live leases: key → pid of the holding replica."""
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT key, holder FROM deploy_fetcher.leases WHERE expires_at > clock_timestamp()"
            ).fetchall()
        return {str(key): int(str(holder).rsplit("-", 2)[1]) for key, holder in rows}

    def replica_by_pid(self, pid: int) -> int:
        return next(n for n in self.running() if self.pid(n) == pid)

    def targets_of(self, n: int) -> list[str]:
        pid = self.pid(n)
        return sorted(
            key.removeprefix("gh/")
            for key, holder in self.holders().items()
            if holder == pid and key.startswith("gh/")
        )

    def sink_holder(self) -> int:
        return self.replica_by_pid(self.holders()["sink:dashboard"])

    def signal(self, n: int, sig: signal.Signals) -> None:
        proc = self.replicas[n].proc
        assert proc is not None
        proc.send_signal(sig)

    def log_events(self, n: int) -> list[dict[str, Any]]:
        return self.replicas[n].logs()

    def stop(self) -> None:
        for n in self.running():
            try:
                self.signal(n, signal.SIGCONT)
                self.replicas[n].terminate(timeout=30)
            except Exception:
                self.replicas[n].kill()
        self.github.stop()
        self.dashboard.stop()


def now() -> float:
    """The clock of the emulators' request log."""
    return time.monotonic()

"""What the stress tests share: a scripted feed, the dashboard emulator, a real daemon, the tally.

Events come from a JSON-lines script the test appends to (the ``scripted`` provider re-reads it every
poll), so the test knows exactly which events exist and the dashboard emulator, append-only like the
real dashboard, shows every copy that reached it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from tests.support import FetcherProcess, free_port, wait_until, write_config

from deploy_fetcher.emulators.dashboard import DashboardEmulator

API_KEY = "stress-dashboard-key-7c1e"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
INGEST = "^/api/deployments$"

Key = tuple[str, str, str]


def event_line(n: int) -> str:
    """The ``n``-th event: deployments of three services, each started then finished."""
    return json.dumps(
        {
            "deployment_id": f"stress-{n // 2}",
            "service": f"svc-{n % 3}",
            "environment": ("dev", "prod")[n // 6 % 2],
            "status": ("in-progress", "success")[n % 2],
            "happened_at": (T0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "version": f"v{n // 2}",
            "run_number": n // 2,
        }
    )


def key_of(row: dict[str, Any]) -> Key:
    """The dedup key of a dashboard row."""
    return (row["deployment_id"], row["status"], row["happened_at"])


@dataclass
class Tally:
    """What reached the dashboard compared with what exists."""

    expected: set[Key]
    rows: list[Key]

    @property
    def missing(self) -> set[Key]:
        """Events that never arrived."""
        return self.expected - set(self.rows)

    @property
    def unexpected(self) -> set[Key]:
        """Rows for events that do not exist."""
        return set(self.rows) - self.expected

    @property
    def duplicates(self) -> int:
        """Copies beyond the first of every event."""
        return len(self.rows) - len(set(self.rows))

    def duplicated(self) -> list[Key]:
        """Events that arrived more than once."""
        return [key for key, count in Counter(self.rows).items() if count > 1]


@dataclass
class Stage:
    """A dashboard emulator, a script file, a config for a daemon, and what was written."""

    tmp_path: Path
    sink: dict[str, Any] = field(default_factory=dict)
    interval: str = "1s"
    page_size: int = 50
    #: Where the state file lives (a small or read-only mount in the disk tests).
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        self.dashboard = DashboardEmulator(api_key=API_KEY)
        self.dashboard.start()
        self.script = self.tmp_path / "events.jsonl"
        self.script.write_text("", encoding="utf-8")
        self.state = (self.state_dir or self.tmp_path) / "state.db"
        self.written = 0
        self.port = free_port()
        self.log = self.tmp_path / "fetcher.log"
        self.config = self.write_config()

    def write_config(self, **state: Any) -> Path:
        """The daemon's configuration (``state`` keys override the state section)."""
        sink = {
            "name": "dashboard",
            "type": "deployment-dashboard",
            "url": self.dashboard.url(),
            "api_key": API_KEY,
            "timeout": "2s",
            "backoff_initial": "100ms",
            "backoff_max": "1s",
            **self.sink,
        }
        return write_config(
            self.tmp_path / "config.yaml",
            {
                "state": {"path": str(self.state), **state},
                "server": {"port": self.port},
                "defaults": {"interval": self.interval, "jitter": "0s"},
                "sources": [
                    {
                        "name": "scripted",
                        "provider": "scripted",
                        "script": str(self.script),
                        "page_size": self.page_size,
                    }
                ],
                "sinks": [sink],
            },
        )

    def add(self, count: int) -> None:
        """Append ``count`` new events to the script."""
        with self.script.open("a", encoding="utf-8") as handle:
            handle.writelines(
                event_line(n) + "\n" for n in range(self.written, self.written + count)
            )
        self.written += count

    def expected(self) -> set[Key]:
        """Every event written so far."""
        return {key_of(json.loads(event_line(n))) for n in range(self.written)}

    def tally(self) -> Tally:
        """The dashboard's rows against the events written."""
        return Tally(self.expected(), [key_of(row) for row in self.dashboard.rows()])

    def all_delivered(self) -> bool:
        """Whether every written event reached the dashboard at least once."""
        return not self.tally().missing

    def fetcher(self, *, housekeeping: float | None = None) -> FetcherProcess:
        """A daemon for this stage (not started); ``housekeeping`` shortens that period."""
        if housekeeping is not None:
            return QuickHousekeeping(self.config, self.port, self.log, period=housekeeping)
        return FetcherProcess(self.config, self.port, self.log)

    def close(self) -> None:
        """Stop the dashboard."""
        self.dashboard.stop()


def metric(fetcher: FetcherProcess, name: str, **labels: str) -> float | None:
    """A sample of the daemon's ``/metrics`` (None when it is not there)."""
    status, text = fetcher.get("/metrics")
    if status != 200:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


class QuickHousekeeping(FetcherProcess):
    """``fetcher run`` whose housekeeping (store check, gauges) runs every ``period`` seconds.

    Production checks the store every 15 s; a test that waits for readiness to follow the disk
    would spend most of its time waiting for that tick, so this process sets the period first.
    """

    def __init__(self, *args: Any, period: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.period = period

    def start(self) -> QuickHousekeeping:
        """Start the daemon (as :meth:`FetcherProcess.start`) with the shorter period."""
        code = (
            "import sys\n"
            "import deploy_fetcher.scheduler as scheduler\n"
            f"scheduler.HOUSEKEEPING_SECONDS = {self.period!r}\n"
            "from deploy_fetcher.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        env = {**os.environ, "FETCHER_LOG__FORMAT": "json", "FETCHER_LOG__LEVEL": "debug"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=log,
                env=env,
            )
        wait_until(self._alive, timeout=30)
        return self

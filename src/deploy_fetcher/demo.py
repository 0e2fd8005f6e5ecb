"""The offline demo: bundled CI emulators → the real daemon → the dashboard emulator.

Everything a production run does happens here — the same config loader, the same :class:`Daemon`,
the same adapters over real HTTP — only the URLs point at emulators on 127.0.0.1. The emulators'
clocks are advanced while it runs, so new deployments and status changes keep appearing.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import structlog
import yaml

from deploy_fetcher._logging import configure_logging
from deploy_fetcher.daemon import Daemon
from deploy_fetcher.emulators import EmulatorServer
from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator
from deploy_fetcher.emulators.azure_devops import demo_source as azure_source
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.emulators.github import demo_source as github_source
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.emulators.gitlab import demo_source as gitlab_source
from deploy_fetcher.plugins import load_config

__all__ = ["Demo", "provider_of"]

_log = structlog.get_logger(__name__)

API_KEY = "demo-dashboard-key"

#: Every bundled CI emulator: (label, emulator class, the ``sources[]`` entry pointing at it).
PROVIDERS: tuple[tuple[str, type[EmulatorServer], Callable[[str], dict[str, Any]]], ...] = (
    ("github", GitHubEmulator, github_source),
    ("gitlab", GitLabEmulator, gitlab_source),
    ("azure-devops", AzureDevOpsEmulator, azure_source),
)

_PREFIXES = {"gh-": "github", "gl-": "gitlab", "ado-": "azure-devops"}


def provider_of(deployment_id: str) -> str:
    """Which CI system a dashboard row came from, by its deployment_id prefix."""
    for prefix, name in _PREFIXES.items():
        if deployment_id.startswith(prefix):
            return name
    return "other"


@dataclass
class Demo:
    """Starts the emulators and the daemon, advances time, reports what reached the dashboard."""

    workdir: Path
    interval: float = 3.0
    advance_every: float = 2.0
    advance_by: float = 120.0
    dashboard: DashboardEmulator = field(init=False)
    emulators: dict[str, EmulatorServer] = field(default_factory=dict, init=False)
    daemon: Daemon | None = field(default=None, init=False)

    def start(self) -> None:
        """Start every emulator on a free port, write the config, start the real daemon."""
        self.dashboard = DashboardEmulator(api_key=API_KEY)
        self.dashboard.start()
        sources = []
        for label, emulator_class, demo_source in PROVIDERS:
            emulator = emulator_class()
            url = emulator.start()
            self.emulators[label] = emulator
            # Each source names services by the default rule, the repository's (or project's)
            # short name: octo/web on GitHub, acme/web on GitLab and the Azure DevOps pipeline
            # building the repository web all deploy the one service "web".
            source = demo_source(url)
            source.setdefault("interval", f"{self.interval:g}s")
            source.setdefault("jitter", "1s")
            sources.append(source)
        config_path = self.workdir / "config.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "state": {"path": str(self.workdir / "state.db")},
                    "server": {"port": 0},
                    "defaults": {"lookback": "2d"},
                    # The same rules a real installation would use: one vocabulary of
                    # environments across the three CI systems, and promotion-order parents.
                    "rules": {
                        "environment": {"rename": {"production": "prod"}},
                        "promotion": {"*": ["dev", "staging", "prod"]},
                    },
                    "sinks": [
                        {
                            "name": "dashboard",
                            "type": "deployment-dashboard",
                            "url": self.dashboard.url(),
                            "api_key": API_KEY,
                            "backoff_max": "5s",
                        }
                    ],
                    "sources": sources,
                },
                sort_keys=False,
            ),
            encoding="utf-8",
        )
        config = load_config(config_path, environ={})
        self.daemon = Daemon(config, grace=5.0)
        self.daemon.start()

    def advance(self) -> None:
        """Move every CI emulator's clock forward: deployments start, finish and appear."""
        for emulator in self.emulators.values():
            emulator.advance(self.advance_by)

    def stop(self) -> None:
        """Stop the daemon (it flushes what it can), then the emulators."""
        if self.daemon is not None:
            self.daemon.stop()
        for emulator in self.emulators.values():
            emulator.stop()
        self.dashboard.stop()

    def counts(self) -> Counter[str]:
        """Rows at the dashboard per CI system."""
        return Counter(provider_of(row["deployment_id"]) for row in self.dashboard.rows())


def run_demo(duration: float | None, *, interactive: bool | None = None) -> int:
    """Run until Ctrl-C or ``duration`` seconds; exit 0 when every CI system delivered events.

    The last frame is drawn after the daemon has stopped (and flushed), so it shows exactly what
    the summary below it counts.
    """
    interactive = sys.stdout.isatty() if interactive is None else interactive
    configure_logging("warning", "console" if interactive else "json")
    with tempfile.TemporaryDirectory(prefix="fetcher-demo-") as tmp:
        demo = Demo(Path(tmp))
        demo.start()
        stop = threading.Event()
        view = _LiveView(demo) if interactive else _LineView(demo)
        try:
            _drive(demo, duration, stop, view.render)
        except KeyboardInterrupt:
            pass
        finally:
            demo.stop()
            view.close()
        counts = demo.counts()
    print("\nEvents delivered to the dashboard emulator:")  # noqa: T201
    for label, *_ in PROVIDERS:
        print(f"  {label:<14} {counts.get(label, 0)}")  # noqa: T201
    missing = [label for label, *_ in PROVIDERS if not counts.get(label)]
    if missing:
        print(f"no events arrived from: {', '.join(missing)}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def _drive(
    demo: Demo, duration: float | None, stop: threading.Event, render: Callable[[], None]
) -> None:
    started = time.monotonic()
    next_advance = started + demo.advance_every
    while not stop.is_set():
        now = time.monotonic()
        if duration is not None and now - started >= duration:
            return
        if now >= next_advance:
            demo.advance()
            next_advance = now + demo.advance_every
        render()
        time.sleep(0.25)


#: Column widths of the plain view: happened_at, CI system, service/environment, status, version.
_WIDTHS = (24, 13, 26, 12, 12)


class _LineView:
    """Plain lines in aligned columns, one per new dashboard row (for logs and pipes)."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.shown = 0
        header = ("happened_at", "from", "service/environment", "status", "version")
        print(self._line(*header, "deployment_id"))  # noqa: T201

    @staticmethod
    def _line(*cells: str) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells, _WIDTHS, strict=False)]
        return " ".join([*padded, *cells[len(_WIDTHS) :]]).rstrip()

    def render(self) -> None:
        """Print the rows that arrived since the last call."""
        rows = self.demo.dashboard.rows()
        for row in rows[self.shown :]:
            print(  # noqa: T201
                self._line(
                    row["happened_at"],
                    provider_of(row["deployment_id"]),
                    f"{row['service']}/{row['environment']}",
                    row["status"],
                    row.get("version") or "-",
                    row["deployment_id"],
                ),
                flush=True,
            )
        self.shown = len(rows)

    def close(self) -> None:
        """The rows delivered while the daemon stopped."""
        self.render()


class _LiveView:
    """A live table of the dashboard's matrix on a terminal."""

    STYLES: ClassVar[dict[str, str]] = {
        "success": "green",
        "failure": "red",
        "in-progress": "yellow",
        "waiting": "magenta",
    }

    def __init__(self, demo: Demo) -> None:
        from rich.console import Console
        from rich.live import Live

        self.demo = demo
        self.live = Live(console=Console(), refresh_per_second=4, transient=False)
        self.live.start()

    def _table(self, caption: str) -> Any:
        from rich.table import Table

        counts = self.demo.counts()
        title = "Deployment Dashboard (emulator) — " + ", ".join(
            f"{label}: {counts.get(label, 0)}" for label, *_ in PROVIDERS
        )
        table = Table(title=title, caption=caption)
        for column in ("service", "environment", "status", "version", "from", "happened_at"):
            table.add_column(column)
        for cell in self.demo.dashboard.matrix():
            row: dict[str, Any] = cell["deployment"]
            status = row["status"]
            table.add_row(
                cell["service"],
                cell["environment"],
                f"[{self.STYLES.get(status, 'white')}]{status}[/]",
                row.get("version") or "-",
                provider_of(row["deployment_id"]),
                row["happened_at"],
            )
        return table

    def render(self) -> None:
        """Redraw the table."""
        self.live.update(self._table("Ctrl-C to stop"))

    def close(self) -> None:
        """The final frame, drawn once the daemon has stopped: it matches the summary."""
        self.live.update(self._table("stopped: final state"))
        self.live.stop()

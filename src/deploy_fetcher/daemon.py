"""The long-lived process: scheduler + delivery workers + health server, stopped cleanly by a signal.

A dashboard sink with a ``control`` section gets a control channel (its reset choreography pauses
polling and delivery through the scheduler and the sink's worker).

On SIGTERM/SIGINT: polling stops after the page in hand (its events are committed with its cursor),
delivery goes on for up to the grace period so queued events get out, unsent claims are released for
the next start, and the process exits 0.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

import structlog

from deploy_fetcher._version import __version__
from deploy_fetcher.config import FetcherConfig
from deploy_fetcher.engine import DeliveryPolicy, Runtime
from deploy_fetcher.errors import FetcherError
from deploy_fetcher.nudges import PREFIX, NudgeApp
from deploy_fetcher.scheduler import Scheduler
from deploy_fetcher.server import HealthServer
from deploy_fetcher.sinks.dashboard.channel import build_channels

__all__ = ["Daemon"]

_log = structlog.get_logger(__name__)


def _accepts_nudge(provider: object, target: str, pipelines: frozenset[str]) -> bool:
    """Whether a provider wants a nudge about these pipelines of one target (True unless it says)."""
    accepts = getattr(provider, "accepts_nudge", None)
    return provider is not None and (accepts is None or bool(accepts(target, pipelines)))


class Daemon:
    """Owns the runtime, the scheduler and the server of ``fetcher run``."""

    def __init__(
        self,
        config: FetcherConfig,
        *,
        grace: float = 20.0,
        policy: DeliveryPolicy | None = None,
        max_workers: int = 8,
    ) -> None:
        self.config = config
        self.grace = grace
        self.runtime = Runtime(config, policy=policy, coordinate=True)
        self.scheduler = Scheduler(self.runtime, max_workers=max_workers)
        self.control = build_channels(self.runtime, self.scheduler)
        self.nudges: NudgeApp | None = None
        if config.nudges.enabled:
            providers = self.runtime.providers
            self.nudges = NudgeApp(
                config.nudges,
                self.scheduler,
                self.runtime.metrics,
                provider_of=lambda name: p.config.provider if (p := providers.get(name)) else None,
                accepts=lambda name, target, named: _accepts_nudge(
                    providers.get(name), target, named.pipelines
                ),
            )
        self.server: HealthServer | None = None
        if config.server.enabled:
            self.server = HealthServer(
                config.server.host,
                config.server.port,
                registry=self.runtime.metrics.registry,
                problems=self.runtime.ready_problems,
                liveness=self.runtime.health.liveness_problem,
                details=self._details,
                mounts={PREFIX: self.nudges} if self.nudges is not None else None,
            )
        self.stopping = threading.Event()

    def _details(self) -> dict[str, Any]:
        """What ``/readyz`` shows besides the problems: replica membership, slowed budgets."""
        out: dict[str, Any] = {}
        if self.runtime.coordinator is not None:
            out["replica"] = self.runtime.coordinator.status().as_dict()
        slowed = self.scheduler.pacing_report()
        if slowed:
            out["slowed"] = slowed
        return out

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT ask for a clean stop (a second one is ignored: the grace period rules)."""

        def _handler(signum: int, _frame: FrameType | None) -> None:
            if not self.stopping.is_set():
                _log.info("fetcher.signal", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    def start(self) -> None:
        """Start the server, join the replica set (if any), start delivery and the scheduler.

        The server binds first: when its port is taken, nothing else has started, and the error
        says which address (a second daemon on the same machine is the usual cause).
        """
        port = self._serve()
        self._warn_unconfigured_sinks()
        if self.runtime.coordinator is not None:
            self.runtime.coordinator.start()
        self.runtime.start_delivery()
        self.scheduler.start()
        for channel in self.control:
            channel.start()
        state = self.config.state
        _log.info(
            "fetcher.started",
            version=__version__,
            sources=sorted(self.runtime.providers),
            sinks=sorted(self.runtime.sinks),
            port=port,
            nudges=self.nudges.providers if self.nudges is not None else [],
            state=str(state.path) if state.backend == "sqlite" else repr(self.runtime.store),
        )

    def _warn_unconfigured_sinks(self) -> None:
        """Rows queued for a sink removed from the configuration wait for ever: say so, once."""
        configured = {sink.name for sink in self.config.sinks}  # a disabled one keeps its rows
        for stats in self.runtime.store.stats():
            if stats.sink not in configured and (stats.pending or stats.dead):
                _log.warning(
                    "outbox.unconfigured_sink",
                    sink=stats.sink,
                    pending=stats.pending,
                    dead=stats.dead,
                    hint=f"fetcher outbox purge --sink {stats.sink} --all drops them",
                )

    def _serve(self) -> int | None:
        if self.server is None:
            return None
        try:
            return self.server.start()
        except OSError as exc:
            where = f"{self.server.host}:{self.server.port}"
            msg = (
                f"cannot serve /healthz, /readyz and /metrics on {where}: "
                f"{exc.strerror or exc} (another fetcher run? set server.port, or "
                "server.enabled: false)"
            )
            raise FetcherError(msg) from None

    def stop(self) -> None:
        """Stop in order: sources, then delivery (within the grace period), then the server."""
        deadline = time.monotonic() + self.grace
        for channel in self.control:
            channel.stop(timeout=min(5.0, self.grace))
        self.runtime.stop.set()
        stopper = threading.Thread(
            target=self.scheduler.shutdown, name="scheduler-stop", daemon=True
        )
        stopper.start()
        stopper.join(max(0.0, deadline - time.monotonic()))
        if stopper.is_alive():
            _log.warning("fetcher.poll_still_running_at_grace_end")
        self._flush(deadline)
        self.runtime.stop_delivery(max(1.0, deadline - time.monotonic()))
        if self.runtime.coordinator is not None:
            # Hand every target and sink over now rather than when the leases run out.
            self.runtime.coordinator.stop(leave=True)
        if self.server is not None:
            self.server.stop()
        pending = {name: self.runtime.store.pending_count(name) for name in self.runtime.sinks}
        self.runtime.close()
        _log.info("fetcher.stopped", pending=pending)

    def _flush(self, deadline: float) -> None:
        """Let delivery drain what it can until the deadline.

        Paused or backing-off sinks keep their rows, and so do sinks this replica may not deliver
        to (another replica holds their lease and sends them): nothing is waited for in vain.
        """
        while time.monotonic() < deadline:
            busy = [
                name
                for name, worker in self.runtime.workers.items()
                if worker.alive
                and not worker.held
                and worker.gate()
                and name not in self.runtime.health.paused_sinks
                and self.runtime.store.pending_count(name) > 0
                and worker.backing_off <= 0
            ]
            if not busy:
                return
            for name in busy:
                self.runtime.workers[name].wake()
            time.sleep(0.1)

    def run_forever(self) -> int:
        """Run until a signal; return the exit code."""
        self.install_signal_handlers()
        try:
            self.start()
        except FetcherError:
            self.runtime.close()
            raise
        while not self.stopping.wait(0.5):  # short waits keep signal delivery prompt
            pass
        _log.info("fetcher.stopping", grace_seconds=self.grace)
        self.stop()
        return 0

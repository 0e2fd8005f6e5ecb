"""One dashboard sink's control channel: the stream thread, the reset choreography, the reports."""

from __future__ import annotations

import threading

import httpx
import structlog

from deploy_fetcher.engine import Runtime
from deploy_fetcher.scheduler import Scheduler
from deploy_fetcher.sinks.dashboard.client import dashboard_client
from deploy_fetcher.sinks.dashboard.config import ControlConfig, DashboardConfig
from deploy_fetcher.sinks.dashboard.controls import DaemonControls, EngineControls
from deploy_fetcher.sinks.dashboard.reporter import Reporter
from deploy_fetcher.sinks.dashboard.reset import ResetChoreography
from deploy_fetcher.sinks.dashboard.stream import ControlStream
from deploy_fetcher.store import StateStore

__all__ = ["ControlChannel", "build_channels"]

_log = structlog.get_logger(__name__)

#: Connecting and sending may take this long; reading the stream waits ``idle_timeout``.
_CONNECT_SECONDS = 10.0


class ControlChannel:
    """Everything the fetcher does on one dashboard's control API, in two daemon threads.

    ``transport`` is for tests (an ``httpx.MockTransport``).
    """

    def __init__(
        self,
        sink: DashboardConfig,
        control: ControlConfig,
        engine: EngineControls,
        store: StateStore,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = sink.name
        self.control = control
        self.stop_event = threading.Event()
        idle = control.idle_timeout.total_seconds()
        self._stream_client = dashboard_client(
            sink,
            timeout=httpx.Timeout(_CONNECT_SECONDS, read=idle),
            transport=transport,
        )
        self._post_client = dashboard_client(
            sink, timeout=httpx.Timeout(sink.timeout.total_seconds()), transport=transport
        )
        self.reporter = Reporter(
            self._post_client,
            control,
            stop=self.stop_event,
            status=engine.status,
            rate_limits=engine.rate_limits,
        )
        self.reset = ResetChoreography(
            sink.name, engine, self.reporter, reset_timeout=control.reset_timeout.total_seconds()
        )
        self.stream = ControlStream(
            self._stream_client,
            control,
            sink=sink.name,
            store=store,
            on_event=self.reset.handle,
            stop=self.stop_event,
        )
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the stream in a daemon thread; start the reporter when status reports are on."""
        self._thread = threading.Thread(target=self._run, name=f"control-{self.name}", daemon=True)
        self._thread.start()
        if self.control.report_status:
            self.reporter.start()

    def _run(self) -> None:
        try:
            self.stream.run()
        except Exception:  # the daemon goes on without its control channel, loudly
            _log.exception("control.stream_crashed", sink=self.name)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads (the open stream is cut) and close the clients."""
        self.stop_event.set()
        self.stream.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
        self.reporter.join(timeout)
        self.reset.close()
        self._stream_client.close()
        self._post_client.close()


def build_channels(runtime: Runtime, scheduler: Scheduler) -> list[ControlChannel]:
    """A channel per enabled dashboard sink with an enabled ``control`` section; reports wired in."""
    engine = DaemonControls(runtime, scheduler)
    channels: list[ControlChannel] = []
    for sink in runtime.config.sinks:
        if not (sink.enabled and isinstance(sink, DashboardConfig) and sink.control_enabled):
            continue
        assert sink.control is not None  # noqa: S101 - control_enabled says so
        channel = ControlChannel(sink, sink.control, engine, runtime.store)
        if sink.control.report_status:
            scheduler.cycle_listeners.append(channel.reporter.cycle_done)
        channels.append(channel)
    return channels

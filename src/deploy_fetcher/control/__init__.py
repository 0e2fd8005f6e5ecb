"""The fetcher's side of the Deployment Dashboard's operator contract, beyond ingest.

* :class:`HttpStateSlot` — the dashboard's state slot, where the ``dashboard`` state backend keeps the
  cursors (``GET``/``PUT /api/fetcher/state/{slot}``);
* :class:`ControlChannel` — the control stream (Server-Sent Events) and its reset choreography, and
  the component events (acknowledgements, ``status``, ``rate-limit``) posted back;
* :class:`SseParser` — the event-stream parser they rest on, pure and tested alone.
"""

from deploy_fetcher.control._channel import ControlChannel, build_channels
from deploy_fetcher.control._engine import DaemonControls, EngineControls
from deploy_fetcher.control._reporter import Reporter
from deploy_fetcher.control._reset import ResetChoreography
from deploy_fetcher.control._slot import HttpStateSlot
from deploy_fetcher.control._sse import SseError, SseEvent, SseParser
from deploy_fetcher.control._stream import ControlStream, last_event_id_key

__all__ = [
    "ControlChannel",
    "ControlStream",
    "DaemonControls",
    "EngineControls",
    "HttpStateSlot",
    "Reporter",
    "ResetChoreography",
    "SseError",
    "SseEvent",
    "SseParser",
    "build_channels",
    "last_event_id_key",
]

"""The Deployment Dashboard integration, in one package.

* :class:`DashboardSink` (``adapter``, ``mapping``, ``statuses``) — ingest: ``POST /api/deployments``
  with ``X-Api-Key`` (seed 001), the status set the dashboard takes;
* :class:`HttpStateSlot` (``slot``) and :class:`DashboardStore` (``backend``) — the ``dashboard``
  state backend: the cursors in the dashboard's state slot (``GET``/``PUT /api/fetcher/state/{slot}``),
  the outbox in a temporary file;
* ``channel``, ``stream``, ``sse``, ``reset``, ``reporter``, ``controls`` — the control channel: the
  Server-Sent Events stream and its reset choreography, the component events posted back, and what
  they may do to the running fetcher. The daemon builds it (``channel.build_channels``); it is not
  imported here, so loading the sink stays light.
"""

from deploy_fetcher.sinks.dashboard.adapter import DashboardSink
from deploy_fetcher.sinks.dashboard.backend import DashboardStore
from deploy_fetcher.sinks.dashboard.config import ControlConfig, DashboardConfig
from deploy_fetcher.sinks.dashboard.slot import HttpStateSlot

__all__ = ["ControlConfig", "DashboardConfig", "DashboardSink", "DashboardStore", "HttpStateSlot"]

"""HTTP clients for the dashboard's state and control endpoints, with the sink's URL and TLS settings.

The state slot, the control stream and the component reports talk to the same dashboard as the
``deployment-dashboard`` sink, so they take its ``url``, ``tls_verify`` and ``ca_bundle``; each gets
its own keep-alive client, because their timeouts differ (a stream read waits for the next ping).
"""

from __future__ import annotations

from typing import Final

import httpx

from deploy_fetcher._version import __version__
from deploy_fetcher.config import SinkConfig, settings_of
from deploy_fetcher.netlimits import tls_verify
from deploy_fetcher.sinks.dashboard.config import ControlConfig, DashboardConfig

__all__ = ["USER_AGENT", "control_settings", "dashboard_client", "dashboard_settings"]

USER_AGENT: Final = f"deploy-fetcher/{__version__}"


def dashboard_settings(config: SinkConfig) -> DashboardConfig:
    """The sink's configuration as the dashboard sink's model (a wiring bug raises TypeError)."""
    return settings_of(config, DashboardConfig)


def control_settings(config: SinkConfig) -> ControlConfig | None:
    """The sink's enabled ``control`` section, or None."""
    settings = dashboard_settings(config)
    return settings.control if settings.control_enabled else None


def dashboard_client(
    config: DashboardConfig, *, timeout: httpx.Timeout, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """A client for ``config.url`` with the sink's TLS settings; it never follows redirects.

    ``transport`` is for tests (an ``httpx.MockTransport``).
    """
    return httpx.Client(
        base_url=config.url,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        verify=tls_verify(config.tls_verify, config.ca_bundle),
        follow_redirects=False,
        transport=transport,
    )

"""The Deployment Dashboard sink: ``POST {url}/api/deployments`` with ``X-Api-Key`` (seed 001)."""

from deploy_fetcher.sinks.dashboard.adapter import DashboardSink
from deploy_fetcher.sinks.dashboard.config import DashboardConfig

__all__ = ["DashboardConfig", "DashboardSink"]

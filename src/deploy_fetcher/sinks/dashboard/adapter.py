"""Delivering events to the Deployment Dashboard and checking its URL and key."""

from __future__ import annotations

from typing import ClassVar

from deploy_fetcher.config import SinkConfig
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks._base import CheckResult, Delivery, Retry, Sink, SinkContext
from deploy_fetcher.sinks._config import expect_config
from deploy_fetcher.sinks._document import dumps
from deploy_fetcher.sinks._http import SinkHttpClient, display_url
from deploy_fetcher.sinks.dashboard import mapping
from deploy_fetcher.sinks.dashboard.config import DashboardConfig

__all__ = ["DashboardSink"]

INGEST_PATH = "/api/deployments"
#: An authenticated read the dashboard offers: the fetcher's own state slot, which creates nothing.
CHECK_PATH = "/api/fetcher/state/" + mapping.PRODUCT


class DashboardSink(Sink):
    """``POST {url}/api/deployments``; 201 is delivered, 422 carries the problem+json errors."""

    name: ClassVar[str] = "deployment-dashboard"
    config_model: ClassVar[type[SinkConfig]] = DashboardConfig

    def __init__(self, config: SinkConfig, context: SinkContext) -> None:
        super().__init__(config, context)
        self.settings = expect_config(config, DashboardConfig)
        self.http = SinkHttpClient(self.settings, context)

    def send(self, event: DeployEvent) -> Delivery:
        """Post one event; the dashboard appends a row per POST, so the worker must not double-send."""
        payload = mapping.body(event, run_number_type=self.settings.run_number_type)
        return self.http.send(
            "POST",
            self.settings.url + INGEST_PATH,
            headers=mapping.headers(event, self.settings.api_key.get_secret_value()),
            content=dumps(payload),
        )

    def check(self) -> CheckResult:
        """Read the fetcher's state slot: 200 or 404 proves URL and key, 401/403 a bad key."""
        url = display_url(self.settings.url)
        answer = self.http.get(
            self.settings.url + CHECK_PATH,
            headers={"X-Api-Key": self.settings.api_key.get_secret_value()},
        )
        if isinstance(answer, Retry):
            return CheckResult(
                ok=False, message=f"cannot reach the dashboard at {url}: {answer.reason}"
            )
        code = answer.status_code
        if code in {401, 403}:
            return CheckResult(
                ok=False, message=f"the dashboard at {url} rejected the API key (HTTP {code})"
            )
        if code in {200, 404}:
            return CheckResult(ok=True, message=f"the dashboard at {url} accepted the API key")
        return CheckResult(
            ok=False,
            message=f"unexpected answer from the dashboard at {url}: HTTP {code}",
        )

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.http.close()

"""Delivering deployment events to CTO.ai."""

from __future__ import annotations

from typing import Any, ClassVar

from deploy_fetcher.config import SinkConfig, settings_of
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks._base import CheckResult, Delivery, Sink, SinkContext
from deploy_fetcher.sinks._document import dumps
from deploy_fetcher.sinks.ctoai import mapping
from deploy_fetcher.sinks.ctoai.config import CtoAiConfig
from deploy_fetcher.sinks.http import SinkHttpClient, display_url

__all__ = ["CtoAiSink"]


class CtoAiSink(Sink):
    """``POST {url}/`` with ``Authorization: Bearer``."""

    name: ClassVar[str] = "ctoai"
    config_model: ClassVar[type[SinkConfig]] = CtoAiConfig
    concurrent: ClassVar[bool] = True  # one stateless request per event: lanes share the sink

    def __init__(self, config: SinkConfig, context: SinkContext) -> None:
        super().__init__(config, context)
        self.settings = settings_of(config, CtoAiConfig)
        self.http = SinkHttpClient(self.settings, context)

    def wire(self, event: DeployEvent) -> dict[str, Any]:
        """The CTO.ai event, with its stage and status names."""
        return mapping.body(
            event,
            team_id=self.settings.team_id,
            image=self.settings.image,
            overrides=self.settings.status_map,
        )

    def send(self, event: DeployEvent) -> Delivery:
        """Post one deployment event."""
        return self.http.send(
            "POST",
            self.settings.url + "/",
            headers=mapping.headers(event, self.settings.api_key.get_secret_value()),
            content=dumps(self.wire(event)),
        )

    def check(self) -> CheckResult:
        """The events API has no read-only call for a token: only reachability is checked."""
        return self.http.probe(
            self.settings.url + "/", what=f"CTO.ai at {display_url(self.settings.url)}"
        )

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.http.close()

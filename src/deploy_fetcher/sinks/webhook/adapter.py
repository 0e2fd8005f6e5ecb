"""Delivering the canonical event to any webhook receiver."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from deploy_fetcher.config import SinkConfig, settings_of
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks._base import CheckResult, Delivery, Sink, SinkContext
from deploy_fetcher.sinks._document import dumps
from deploy_fetcher.sinks.http import SinkHttpClient, display_url
from deploy_fetcher.sinks.webhook import mapping
from deploy_fetcher.sinks.webhook.config import WebhookConfig
from deploy_fetcher.sinks.webhook.signature import SIGNATURE_HEADER, sign

__all__ = ["WebhookSink"]


class WebhookSink(Sink):
    """``POST`` the event as JSON; signed when a ``secret`` is configured.

    ``clock`` gives the signature's timestamp (seconds since the epoch); tests replace it.
    """

    name: ClassVar[str] = "webhook"
    config_model: ClassVar[type[SinkConfig]] = WebhookConfig
    concurrent: ClassVar[bool] = True  # one stateless request per event: lanes share the sink

    def __init__(self, config: SinkConfig, context: SinkContext) -> None:
        super().__init__(config, context)
        self.settings = settings_of(config, WebhookConfig)
        self.http = SinkHttpClient(self.settings, context)
        self.clock: Callable[[], float] = time.time
        self._static = {k: v.get_secret_value() for k, v in self.settings.headers.items()}

    def wire(self, event: DeployEvent) -> dict[str, Any]:
        """The posted document (the configured ``fields``)."""
        return mapping.body(event, self.settings.fields)

    def send(self, event: DeployEvent) -> Delivery:
        """Post one event; the signature covers exactly the bytes sent."""
        content = dumps(self.wire(event))
        headers = mapping.headers(event, self._static)
        if self.settings.secret is not None:
            secret = self.settings.secret.get_secret_value().encode()
            headers[SIGNATURE_HEADER] = sign(secret, content, int(self.clock()))
        return self.http.send(
            "POST", self.settings.url.get_secret_value(), headers=headers, content=content
        )

    def check(self) -> CheckResult:
        """A receiver's credential cannot be tested without posting: only reachability is checked."""
        url = self.settings.url.get_secret_value()
        return self.http.probe(url, what=f"the webhook at {display_url(url, with_path=False)}")

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.http.close()

"""Delivering deploy records to Cloudlink."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Final

import structlog

from deploy_fetcher.config import SinkConfig, settings_of
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks._base import CheckResult, Delivery, Sink, SinkContext
from deploy_fetcher.sinks._document import dumps
from deploy_fetcher.sinks.cloudlink import mapping
from deploy_fetcher.sinks.cloudlink.config import CloudlinkConfig
from deploy_fetcher.sinks.http import SinkHttpClient, display_url

__all__ = ["CloudlinkSink"]

_log = structlog.get_logger(__name__)
#: Said when no ``rename.services`` translates the CI's service names into Cost Explorer's.
NOT_RENAMED: Final = (
    "no rename.services: Cloudlink receives the CI's service names, but it matches a deploy to "
    'costs by Cost Explorer service name ("Amazon EC2", "Amazon ECS")'
)


class CloudlinkSink(Sink):
    """``POST {url}/deploys`` with ``Authorization: Bearer``."""

    name: ClassVar[str] = "cloudlink"
    config_model: ClassVar[type[SinkConfig]] = CloudlinkConfig
    concurrent: ClassVar[bool] = True  # one stateless request per event: lanes share the sink

    def __init__(self, config: SinkConfig, context: SinkContext) -> None:
        super().__init__(config, context)
        self.settings = settings_of(config, CloudlinkConfig)
        self.http = SinkHttpClient(self.settings, context)
        self.renames_services = bool(self.settings.rename.get("services"))
        if not self.renames_services:
            _log.warning(
                "cloudlink.services_not_renamed", sink=self.settings.name, detail=NOT_RENAMED
            )

    def wire(self, event: DeployEvent) -> dict[str, Any]:
        """The deploy record, with Cloudlink's status names."""
        return mapping.body(event, self.settings.status_map)

    def send(self, event: DeployEvent) -> Delivery:
        """Post one deploy record."""
        return self.http.send(
            "POST",
            self.settings.url + "/deploys",
            headers={
                "Authorization": f"Bearer {self.settings.api_key.get_secret_value()}",
                "Content-Type": "application/json",
            },
            content=dumps(self.wire(event)),
        )

    def check(self) -> CheckResult:
        """Cloudlink offers no read-only call for a key: only reachability is checked.

        A missing service rename is said here too: it is the mistake that makes every deploy useless
        to Cloudlink while every request succeeds.
        """
        result = self.http.probe(
            self.settings.url, what=f"Cloudlink at {display_url(self.settings.url)}"
        )
        if self.renames_services:
            return result
        return replace(result, message=f"{result.message}; {NOT_RENAMED}")

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.http.close()

"""The ``cloudlink`` sink's keys."""

from __future__ import annotations

from pydantic import SecretStr

from deploy_fetcher.config import Filter
from deploy_fetcher.model import Status
from deploy_fetcher.sinks._http import HttpSinkConfig, HttpUrl

__all__ = ["CloudlinkConfig"]


class CloudlinkConfig(HttpSinkConfig):
    """Cloudlink's API URL and key (``api_key_file`` works as well).

    Cloudlink compares costs after a deploy, so by default only successful deployments are sent; an
    ``include`` of your own replaces that default. Its ``service`` must be a Cost Explorer service name
    (``Amazon EC2``): map yours with ``rename: {services: {"checkout-*": "Amazon ECS"}}``.
    """

    #: Your Cloudlink API URL (``https://cloudlink-agents-production.up.railway.app``).
    url: HttpUrl
    api_key: SecretStr
    include: Filter | None = Filter(statuses=[Status.SUCCESS])
    #: How a status is written into ``metadata.status`` (identity for the ones not listed).
    status_map: dict[Status, str] = {}

"""The ``cloudlink`` sink's keys."""

from __future__ import annotations

from typing import Final

from pydantic import SecretStr

from deploy_fetcher.config import Filter
from deploy_fetcher.model import Status
from deploy_fetcher.sinks.http import HttpSinkConfig, HttpUrl

__all__ = ["PRODUCTION_ENVIRONMENTS", "CloudlinkConfig"]

#: The environment names taken for production by default: ``prod`` and ``production`` in lower,
#: capitalised and upper case, alone or followed by ``-``, ``_`` or ``/`` and more (``prod-eu``,
#: ``production/us-east``). Filters are case-sensitive globs, hence the spellings.
PRODUCTION_ENVIRONMENTS: Final = (
    "[Pp]rod",
    "[Pp]rod[-_/]*",
    "[Pp]roduction",
    "[Pp]roduction[-_/]*",
    "PROD",
    "PROD[-_/]*",
    "PRODUCTION",
    "PRODUCTION[-_/]*",
)


class CloudlinkConfig(HttpSinkConfig):
    """Cloudlink's API URL and key (``api_key_file`` works as well).

    Cloudlink compares a deploy's costs with the baseline before it, so by default only successful
    production deployments are sent; an ``include`` of your own replaces that default. Its
    ``service`` must be a Cost Explorer service name (``Amazon EC2``): map yours with
    ``rename: {services: {"checkout-*": "Amazon ECS"}}`` (the sink warns when there is none).
    """

    #: Your Cloudlink API URL (``https://cloudlink-agents-production.up.railway.app``).
    url: HttpUrl
    api_key: SecretStr
    include: Filter | None = Filter(
        statuses=[Status.SUCCESS], environments=list(PRODUCTION_ENVIRONMENTS)
    )
    #: How a status is written into ``metadata.status`` (identity for the ones not listed).
    status_map: dict[Status, str] = {}

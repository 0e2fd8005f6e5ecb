"""The ``ctoai`` sink's keys."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from deploy_fetcher.model import Status
from deploy_fetcher.sinks.http import HttpSinkConfig, HttpUrl

__all__ = ["CtoAiAction", "CtoAiConfig"]

#: CTO.ai's deployment lifecycle states.
CtoAiAction = Literal["started", "progressing", "blocked", "success", "failure"]


class CtoAiConfig(HttpSinkConfig):
    """The events API, the team, and how statuses become CTO.ai's ``event_action``."""

    url: HttpUrl = "https://events.cto.ai"
    #: The events API token (``api_key_file`` works as well).
    api_key: SecretStr
    #: The team's UUID (``ops team:info``).
    team_id: str = Field(min_length=1)
    #: The container image sent when an event's metadata has no ``image``.
    image: str | None = None
    #: Overrides of the default status → event_action table (see docs/sinks.md).
    status_map: dict[Status, CtoAiAction] = {}

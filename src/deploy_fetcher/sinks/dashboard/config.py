"""The ``deployment-dashboard`` sink's keys."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from deploy_fetcher.config import Duration, Section
from deploy_fetcher.sinks.http import HttpSinkConfig, HttpUrl

__all__ = ["ControlConfig", "DashboardConfig"]

#: What a component id may look like: it travels in a header and names the fetcher in the dashboard.
_COMPONENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class ControlConfig(Section):
    """Taking part in the dashboard's control channel (reset choreography, component events).

    ``api_key_file`` works as well.
    """

    #: Hold the control stream open; ``false`` keeps the section without using it.
    enabled: bool = True
    #: The dashboard's ``CONTROL_API_KEY`` (sent as ``X-Control-API-Key``).
    api_key: SecretStr
    #: How this fetcher names itself to the dashboard (``X-Component-Id``).
    component_id: str = "deploy-fetcher"
    #: Post a ``status`` event after poll cycles, and ``rate-limit`` events where a CI API reports quota.
    report_status: bool = False
    #: Least time between two status reports; the cycles in between are summed up in the next one.
    report_interval: Duration = timedelta(seconds=10)
    #: Silence on the stream (no event, no ``: ping``) after which it is given up and reopened; a bit
    #: more than the dashboard's ping interval (15 s).
    idle_timeout: Duration = timedelta(seconds=45)
    #: First wait before reopening a failed stream; doubles per failure (with jitter) up to ``reconnect_max``.
    reconnect_initial: Duration = timedelta(seconds=1)
    #: Longest wait between two attempts to open the stream.
    reconnect_max: Duration = timedelta(minutes=1)
    #: How long polling and delivery stay paused after ``reset-initiated`` without ``reset-completed``
    #: before they resume on their own (cursors kept).
    reset_timeout: Duration = timedelta(minutes=10)

    @field_validator("component_id")
    @classmethod
    def _component_id(cls, value: str) -> str:
        if not _COMPONENT_ID.match(value):
            msg = "must be 1-128 characters of letters, digits, '_', '.', ':', '-'"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _bounds(self) -> ControlConfig:
        if self.idle_timeout.total_seconds() < 1:
            msg = "idle_timeout must be at least 1s"
            raise ValueError(msg)
        if self.reconnect_initial > self.reconnect_max:
            msg = "reconnect_initial must not be longer than reconnect_max"
            raise ValueError(msg)
        return self


class DashboardConfig(HttpSinkConfig):
    """Where the dashboard is and how to authenticate; ``api_key_file`` works as well."""

    #: Base URL of the dashboard (``https://deploys.example.com``); API paths are appended.
    url: HttpUrl
    api_key: SecretStr
    #: Seed 001's dashboard takes an integer ``run_number``; newer revisions take a string (≤ 128).
    run_number_type: Literal["integer", "string"] = "integer"
    #: Which statuses the dashboard takes: ``eight`` (newer revisions), ``three`` (seed 001's
    #: in-progress, success, failure; the others are folded into them), or ``auto``: eight until the
    #: dashboard refuses a status with a 422 naming ``status``, then three, remembered in the state store.
    status_set: Literal["auto", "eight", "three"] = "auto"
    #: The control channel: pause and re-backfill when the dashboard is reset, report status.
    control: ControlConfig | None = Field(default=None)

    @property
    def control_enabled(self) -> bool:
        """Whether this sink takes part in the dashboard's control channel."""
        return self.control is not None and self.control.enabled

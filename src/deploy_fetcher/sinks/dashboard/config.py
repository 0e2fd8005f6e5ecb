"""The ``deployment-dashboard`` sink's keys."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from deploy_fetcher.sinks._http import HttpSinkConfig, HttpUrl

__all__ = ["DashboardConfig"]


class DashboardConfig(HttpSinkConfig):
    """Where the dashboard is and how to authenticate; ``api_key_file`` works as well."""

    #: Base URL of the dashboard (``https://deploys.example.com``); API paths are appended.
    url: HttpUrl
    api_key: SecretStr
    #: Seed 001's dashboard takes an integer ``run_number``; newer revisions take a string (≤ 128).
    run_number_type: Literal["integer", "string"] = "integer"

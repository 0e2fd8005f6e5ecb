"""Configuration: one YAML file, ``${VAR}`` interpolation, ``*_file`` secrets, ``FETCHER_…`` overrides.

:func:`load_config` is the way in; it returns a validated :class:`FetcherConfig` or raises one
:class:`~deploy_fetcher.errors.ConfigError` naming the YAML path of every problem. Plugins build
their entry models on :class:`SourceConfig` / :class:`SinkConfig` with the value types
:data:`Duration`, :data:`Url` and ``SecretStr``.
"""

from pydantic import SecretStr

from deploy_fetcher.config._digest import config_digest
from deploy_fetcher.config._loader import CONFIG_ENV, load_config, parse_config
from deploy_fetcher.config._models import (
    DefaultsConfig,
    FetcherConfig,
    Filter,
    HttpSourceConfig,
    LogConfig,
    NameRule,
    NudgesConfig,
    RulesConfig,
    Section,
    ServerConfig,
    SinkConfig,
    SourceConfig,
    StateConfig,
)
from deploy_fetcher.config._narrow import settings_of
from deploy_fetcher.config._schema import json_schema
from deploy_fetcher.config._schema import render as render_schema
from deploy_fetcher.config._types import (
    Duration,
    Url,
    format_duration,
    parse_duration,
    postgres_hosts,
)

__all__ = [
    "CONFIG_ENV",
    "DefaultsConfig",
    "Duration",
    "FetcherConfig",
    "Filter",
    "HttpSourceConfig",
    "LogConfig",
    "NameRule",
    "NudgesConfig",
    "RulesConfig",
    "SecretStr",
    "Section",
    "ServerConfig",
    "SinkConfig",
    "SourceConfig",
    "StateConfig",
    "Url",
    "config_digest",
    "format_duration",
    "json_schema",
    "load_config",
    "parse_config",
    "parse_duration",
    "postgres_hosts",
    "render_schema",
    "settings_of",
]

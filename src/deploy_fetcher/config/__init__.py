"""Configuration: one YAML file, ``${VAR}`` interpolation, ``*_file`` secrets, ``FETCHER_…`` overrides."""

from deploy_fetcher.config._models import (
    Defaults,
    FetcherConfig,
    Filter,
    LogConfig,
    NameRule,
    RulesConfig,
    Section,
    ServerConfig,
    SinkConfig,
    SourceConfig,
    StateConfig,
)
from deploy_fetcher.config._types import Duration, parse_duration

__all__ = [
    "Defaults",
    "Duration",
    "FetcherConfig",
    "Filter",
    "LogConfig",
    "NameRule",
    "RulesConfig",
    "Section",
    "ServerConfig",
    "SinkConfig",
    "SourceConfig",
    "StateConfig",
    "parse_duration",
]

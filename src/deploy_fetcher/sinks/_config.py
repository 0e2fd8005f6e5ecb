"""Small helpers the sinks' configuration models share."""

from __future__ import annotations

from typing import TypeVar

from deploy_fetcher.config import SinkConfig

__all__ = ["expect_config"]

C = TypeVar("C", bound=SinkConfig)


def expect_config(config: SinkConfig, model: type[C]) -> C:
    """Narrow the config a sink was built with to its own model (the engine validates it with it).

    A mismatch is a wiring bug (a config validated with another sink's model), so it fails loudly.
    """
    if not isinstance(config, model):
        msg = f"expected a {model.__name__}, got a {type(config).__name__}"
        raise TypeError(msg)
    return config

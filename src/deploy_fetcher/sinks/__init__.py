"""Sinks: one package per destination, each registered as a ``deploy_fetcher.sinks`` entry point."""

from deploy_fetcher.sinks._base import (
    CheckResult,
    Delivered,
    Delivery,
    Rejected,
    Retry,
    Sink,
    SinkContext,
    Unauthorized,
    ValueStore,
)

__all__ = [
    "CheckResult",
    "Delivered",
    "Delivery",
    "Rejected",
    "Retry",
    "Sink",
    "SinkContext",
    "Unauthorized",
    "ValueStore",
]

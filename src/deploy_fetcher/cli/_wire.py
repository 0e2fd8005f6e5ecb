"""What each sink puts on the wire, for commands that show it without sending (explain, dry runs).

A sink's wire form can differ from the canonical event: its own field names, its status spelling,
or a status set it learned from the destination and keeps in the state store (the dashboard's
``status_set: auto``). The sinks are built as the engine builds them, reading what they learned
from ``values``; none of them makes a request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from deploy_fetcher.config import FetcherConfig
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.plugins import load_sink
from deploy_fetcher.sinks import Sink, SinkContext, ValueStore

__all__ = ["differences", "open_sinks"]


@contextmanager
def open_sinks(config: FetcherConfig, values: ValueStore | None) -> Iterator[dict[str, Sink]]:
    """The enabled sinks by name, closed on exit."""
    from deploy_fetcher.engine.runtime import USER_AGENT

    context = SinkContext(metrics=Metrics(), user_agent=USER_AGENT, values=values)
    sinks: dict[str, Sink] = {}
    try:
        for sink in config.sinks:
            if sink.enabled:
                sinks[sink.name] = load_sink(sink.type)(sink, context)
        yield sinks
    finally:
        for each in sinks.values():
            each.close()


def differences(event: DeployEvent, wire: Mapping[str, Any]) -> list[str]:
    """The fields the wire form spells otherwise than the event (``status: 'waiting' → …``)."""
    canonical = event.contract_payload()
    return [
        f"{name}: {canonical[name]!r} → {value!r}"
        for name, value in wire.items()
        if name in canonical and canonical[name] != value and not isinstance(value, dict | list)
    ]

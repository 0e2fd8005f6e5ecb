"""Delivery lanes: a sink's outbox split into lines that are each kept in order and sent in parallel.

Every outbox row carries a *lane key*, a stable hash of its event's service (as the sink receives
it, after the sink's renames). A sink with ``lanes: N`` has N delivery lines; a row belongs to line
``lane_key % N``. Every event of one service is therefore in one line, in ``happened_at`` order:
each deployment's statuses, and the promotion chain from one environment to the next (a
deployment's parents are the same service's). Events of different services may overtake each other.

The key does not depend on N, so changing a sink's number of lanes never moves one service's rows
into two lines: they all move together.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Final

from deploy_fetcher.model import DeployEvent

__all__ = ["LANE_KEY_BITS", "lane_key", "lane_key_of_json"]

#: Lane keys are non-negative 31-bit integers (they fit an SQL ``integer`` everywhere).
LANE_KEY_BITS: Final = 31


def lane_key(event: DeployEvent) -> int:
    """The lane key of an event: CRC-32 of its service (stable across processes and versions)."""
    return _key(event.service)


def lane_key_of_json(text: str) -> int:
    """The lane key of an event as stored (its JSON); 0 when it cannot be read."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return 0
    service = data.get("service") if isinstance(data, dict) else None
    return _key(service) if isinstance(service, str) else 0


def _key(service: str) -> int:
    return zlib.crc32(service.encode("utf-8")) & ((1 << LANE_KEY_BITS) - 1)

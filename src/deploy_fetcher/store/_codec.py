"""How values are written into and read back from the state file's columns.

Pure functions, apart from SQLite, so the store's SQL stays readable and the formats are tested alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["dump_cursor", "from_db", "load_cursor", "to_db"]

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: Characters in a time as :func:`to_db` writes it.
_WIDTH = len("2024-05-01T12:00:00.000000Z")


def to_db(value: datetime) -> str:
    """Format an aware datetime as fixed-width UTC text, so text order is time order.

    A naive datetime is refused: storing local time as if it were UTC would shift every lease and
    retry by the machine's offset.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"the state store only takes timezone-aware datetimes, got {value!r}"
        raise ValueError(msg)
    value = value.astimezone(UTC)
    # Written field by field (strftime writes the year unpadded on glibc, and is slower): the width
    # never changes, and with it neither text order nor from_db.
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


def from_db(text: str) -> datetime:
    """Inverse of :func:`to_db`: an aware UTC datetime (every claimed row has two to read back)."""
    if len(text) != _WIDTH or not text.endswith("Z"):
        return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)  # raises the usual ValueError
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def dump_cursor(key: str, cursor: dict[str, Any]) -> str:
    """Serialise a cursor as compact JSON, refusing what JSON cannot carry back unchanged.

    ``ensure_ascii`` keeps lone surrogates (which some APIs emit) storable as SQLite text; NaN and
    infinities are refused because they are not JSON and another reader would choke on them.
    """
    try:
        return json.dumps(cursor, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        msg = f"cursor for {key!r} is not JSON-serialisable: {exc}"
        raise ValueError(msg) from exc


def load_cursor(text: str) -> dict[str, Any]:
    """Inverse of :func:`dump_cursor`."""
    value = json.loads(text)
    if not isinstance(value, dict):
        msg = f"stored cursor is not a JSON object: {text[:80]!r}"
        raise ValueError(msg)  # noqa: TRY004 - corrupt data, not a wrong argument type
    return value

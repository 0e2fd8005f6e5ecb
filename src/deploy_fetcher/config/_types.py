"""Value types shared by every configuration model: durations, secrets, patterns."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, PlainSerializer

__all__ = ["Duration", "parse_duration"]

_UNITS: Final = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> timedelta:
    """Parse ``30s``, ``5m``, ``1h30m``, ``7d`` (or a number of seconds) into a timedelta.

    Anything else is refused loudly: a typo must never fall back to a default.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        msg = f"not a duration: {value!r}"
        raise ValueError(msg)  # noqa: TRY004 - pydantic wants ValueError to report it
    if isinstance(value, int | float):
        if value < 0:
            msg = f"a duration cannot be negative: {value!r}"
            raise ValueError(msg)
        return timedelta(seconds=value)
    if not isinstance(value, str):
        msg = f"not a duration: {value!r}"
        raise ValueError(msg)  # noqa: TRY004
    text = value.strip().lower().replace(" ", "")
    if not text:
        msg = "empty duration"
        raise ValueError(msg)
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        msg = f"not a duration: {value!r} (use e.g. 30s, 5m, 2h, 7d)"
        raise ValueError(msg)
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Format a timedelta back into the shortest config syntax (``90s`` → ``1m30s``)."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    if total < 1:
        return f"{round(total * 1000)}ms"
    out = ""
    rest = int(total)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]

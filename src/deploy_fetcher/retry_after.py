"""The one reading of ``Retry-After``, shared by the providers' request policy and the sinks.

A server may say how long to wait in two ways (RFC 9110 §10.2.3): a number of seconds, or an
HTTP-date. Both come out as seconds from ``now``; a date in the past means "now" (0), and anything
beyond :data:`MAX_RETRY_AFTER` is capped, because a misconfigured proxy must not park a sink or a
source for a week. Garbage (negative numbers, words, an unreadable date) is ignored rather than
guessed at: the caller's own back-off applies instead.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["MAX_RETRY_AFTER", "parse_retry_after"]

#: The longest wait a server can ask for; beyond this the caller's own back-off takes over.
MAX_RETRY_AFTER: Final = 3600.0

_SECONDS: Final = re.compile(r"\d+(\.\d+)?")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None.

    ``now`` is the local clock to measure an HTTP-date against (the current time when None).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)

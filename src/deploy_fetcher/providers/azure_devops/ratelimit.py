"""Azure DevOps throttling, read from response headers.

Azure DevOps meters use in TSTUs (a budget of 200 per user per sliding five minutes) and only sends the
``X-RateLimit-*`` headers once a user gets close to it: a response without them means "no limit known",
never "nothing left". When the headers say the budget is nearly spent the poller pauses between
requests; ``X-RateLimit-Delay`` reports that the service already slowed a request down; a 429 carries
``Retry-After``. This module turns headers into numbers and decisions and does no waiting itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["RateLimitInfo", "pause_before_next", "retry_after_seconds"]


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class RateLimitInfo:
    """The throttling headers of one response (each None when absent or unreadable)."""

    resource: str | None = None
    delay: float | None = None
    limit: float | None = None
    remaining: float | None = None
    reset: datetime | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo:
        """Parse the ``X-RateLimit-*`` headers (case-insensitive mapping)."""
        reset_epoch = _float(headers.get("x-ratelimit-reset"))
        reset = None
        if reset_epoch is not None and reset_epoch > 0:
            try:
                reset = datetime.fromtimestamp(reset_epoch, UTC)
            except (OverflowError, OSError, ValueError):
                reset = None
        return cls(
            resource=headers.get("x-ratelimit-resource"),
            delay=_float(headers.get("x-ratelimit-delay")),
            limit=_float(headers.get("x-ratelimit-limit")),
            remaining=_float(headers.get("x-ratelimit-remaining")),
            reset=reset,
        )

    @property
    def known(self) -> bool:
        """Whether the response said anything about the budget."""
        return self.limit is not None and self.remaining is not None


def pause_before_next(
    info: RateLimitInfo, *, now: datetime, low_water: float, max_wait: float
) -> float:
    """Seconds to wait before the next request so the remaining budget lasts until it resets.

    Below ``low_water`` × limit the remaining budget is spread evenly over the time left until
    ``X-RateLimit-Reset``; at least one second, at most ``max_wait``. Zero when no limit is known.
    """
    if not info.known or info.limit is None or info.remaining is None or info.limit <= 0:
        return 0.0
    if info.remaining > info.limit * low_water:
        return 0.0
    until_reset = (info.reset - now).total_seconds() if info.reset is not None else max_wait
    spread = max(until_reset, 0.0) / max(info.remaining, 1.0)
    return float(min(max_wait, max(1.0, spread)))


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    number = _float(value)
    if number is not None:
        return max(number, 0.0)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now) / timedelta(seconds=1), 0.0)

"""Request pacing for one GitLab instance: our own budget and what the server says about its limit.

Two independent brakes, both consulted before every request:

* :class:`RequestBudget`: at most ``limit`` requests in any rolling minute, shared by every source
  that reads the same instance (an admin's "do not take more than this" figure);
* :class:`QuotaState`: the server's own view, from ``RateLimit-Remaining`` / ``RateLimit-Reset`` on
  every response and ``Retry-After`` on a 429.

Times are measured on a monotonic clock. A server's ``RateLimit-Reset`` is an epoch; it is turned into
"seconds from now" using the same response's ``Date`` header, so a skewed local clock cannot make the
adapter wait for hours or not at all.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

__all__ = ["QuotaState", "RequestBudget"]

Clock = Callable[[], float]


class RequestBudget:
    """At most ``limit`` requests in any ``window`` seconds (thread-safe)."""

    def __init__(self, limit: int, window: float = 60.0, now: Clock = time.monotonic) -> None:
        if limit < 1:
            msg = "a request budget needs at least one request"
            raise ValueError(msg)
        self.limit = limit
        self.window = window
        self._now = now
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a slot: 0.0 when one was free, else the seconds until one frees (nothing taken)."""
        with self._lock:
            now = self._now()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                self._sent.append(now)
                return 0.0
            return max(self._sent[0] + self.window - now, 0.001)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _as_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None


class QuotaState:
    """The last rate-limit figures an instance sent for one credential (thread-safe).

    Missing headers mean "no limit known" (many self-managed instances send none): nothing waits.
    """

    def __init__(self, now: Clock = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self.limit: int | None = None
        self.remaining: int | None = None
        self._reset_at: float | None = None
        self._blocked_until: float | None = None

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Record what one response said."""
        now = self._now()
        remaining = _as_int(_header(headers, "RateLimit-Remaining"))
        limit = _as_int(_header(headers, "RateLimit-Limit"))
        reset_in = self._reset_in(headers)
        retry_after = _as_int(_header(headers, "Retry-After"))
        with self._lock:
            if limit is not None:
                self.limit = limit
            if remaining is not None:
                self.remaining = remaining
                self._reset_at = now + reset_in if reset_in is not None else None
            if status == 429:  # noqa: PLR2004 - Too Many Requests
                wait = retry_after if retry_after is not None else reset_in
                self._blocked_until = now + (wait if wait is not None else 60)
            elif status < 400:  # noqa: PLR2004
                self._blocked_until = None

    @staticmethod
    def _reset_in(headers: Mapping[str, str]) -> float | None:
        reset = _as_int(_header(headers, "RateLimit-Reset"))
        if reset is None:
            return None
        date = _header(headers, "Date")
        try:
            server_now = parsedate_to_datetime(date).timestamp() if date else time.time()
        except (TypeError, ValueError):
            server_now = time.time()
        return max(reset - server_now, 0.0)

    def wait_needed(self, min_remaining: int) -> float:
        """Seconds to wait before the next request may go (0.0: go now)."""
        now = self._now()
        with self._lock:
            if self._blocked_until is not None and self._blocked_until > now:
                return self._blocked_until - now
            if (
                self.remaining is not None
                and self.remaining <= min_remaining
                and self._reset_at is not None
                and self._reset_at > now
            ):
                return self._reset_at - now
        return 0.0

    def waited(self) -> None:
        """The wait the server asked for is over: lift the block, forget the spent figure."""
        with self._lock:
            self._blocked_until = None
            if self._reset_at is not None:
                self.remaining = None
                self._reset_at = None

"""The limits one request lives under: a whole-request deadline, a byte cap, a redirect rule.

HTTP clients only know per-operation timeouts: a server that sends one byte a second never trips a
30 s read timeout and holds the request forever. So every request runs inside a :class:`Deadline`:
the transports attach the sockets they use to the current deadline (a context variable), and one
watchdog thread shuts those sockets down when it passes. The blocked read then fails at once, and
the transport turns that failure into :class:`~deploy_fetcher.providers.kit.DeadlineExceeded`.

The redirect rule is :func:`check_redirect`: a redirect may change the path, and may upgrade
``http`` to ``https`` on the same host; anything else (another host, another port, ``https`` →
``http``) is refused before the client follows it, so no credential ever reaches another host.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

from deploy_fetcher.providers.kit._errors import RedirectRefused

__all__ = ["Limits", "check_redirect", "display_url"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Limits:
    """How long one request may take (seconds, start to last byte) and how much it may read."""

    timeout: float
    max_bytes: int


class Deadline:
    """The end of one request's time, and the sockets to cut when it passes (thread-safe)."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.at = clock() + seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}
        self.expired = False
        self.finished = False

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(self.at - self._clock(), 0.0)

    def attach(self, sock: socket.socket | None) -> None:
        """Cut ``sock`` too when the deadline passes (at once if it already has)."""
        if sock is None:
            return
        with self._lock:
            if not self.expired:
                self._sockets[id(sock)] = sock
                return
        _shut(sock)

    def expire(self) -> None:
        """The deadline passed: shut every attached socket down (a blocked read fails at once)."""
        with self._lock:
            if self.finished:
                return
            self.expired = True
            sockets, self._sockets = list(self._sockets.values()), {}
        for sock in sockets:
            _shut(sock)

    def finish(self) -> None:
        """The request is over: never cut its (pooled, reusable) sockets."""
        with self._lock:
            self.finished = True
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket: its own would drop the TLS object under a
    # read that is still running in another thread.
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that expires deadlines in time order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, item: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (item.at, next(self._seq), item))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="request-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                at, _, item = self._heap[0]
                delay = at - time.monotonic()
                if item.finished:
                    heapq.heappop(self._heap)
                    continue
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            item.expire()


_WATCHDOG: Final = _Watchdog()
_current: ContextVar[Deadline | None] = ContextVar("deploy_fetcher_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Run a request under a deadline of ``seconds``; sockets attached meanwhile are watched."""
    item = Deadline(seconds)
    token = _current.set(item)
    _WATCHDOG.watch(item)
    try:
        yield item
    finally:
        item.finish()
        _current.reset(token)


def attach_socket(sock: socket.socket | None) -> None:
    """Attach a socket to the deadline of the request running in this context (if any)."""
    current = _current.get()
    if current is not None:
        current.attach(sock)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def display_url(url: str) -> str:
    """A URL fit for messages and logs: no user info, no query (it may carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _host(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def check_redirect(url: str, status: int, location: str | None) -> None:
    """Refuse a redirect that leaves the origin of ``url`` (see the module docstring).

    Raises :class:`RedirectRefused` naming both hosts; returns for anything else (a redirect to the
    same origin, an https upgrade on the same host, or not a redirect at all).
    """
    if not (300 <= status < 400) or not location:  # noqa: PLR2004 - the 3xx range
        return
    target = urljoin(url, location.strip())
    here, there = _origin(url), _origin(target)
    if here == there:
        return
    upgrade = here[0] == "http" and there[0] == "https" and here[1] == there[1]
    if upgrade and here[2] == _DEFAULT_PORTS["http"] and there[2] == _DEFAULT_PORTS["https"]:
        return
    raise RedirectRefused(display_url(url), display_url(target), _host(url), _host(target))

"""Limits on one HTTP exchange with a server we do not control: a whole-request deadline, a redirect rule.

Shared by every part that talks to the outside (the provider kit, the sinks), so a limit means the
same thing and reads the same way everywhere.

**Deadline.** HTTP clients only know per-operation timeouts: a server that sends one byte a second
never trips a 30 s read timeout and holds the request forever. So a request runs inside
:func:`deadline`: the transports attach the sockets they use to the current deadline (a context
variable), and one watchdog thread shuts those sockets down when it passes. The blocked read then
fails at once, and the caller, seeing :attr:`Deadline.expired`, reports the deadline rather than a
broken connection. :func:`watched_transport` is an ``httpx`` transport whose sockets are attached.

**Redirects.** :func:`redirect_refusal` is the one rule: a redirect may change the path, and may
upgrade ``http`` to ``https`` on the same host; anything else (another host, another port,
``https`` → ``http``) is refused before anything is sent there, so no credential ever reaches
another host. The refusal names both hosts.

**TLS.** :func:`tls_verify` turns the ``tls_verify`` and ``ca_bundle`` keys that every HTTP source
and sink takes into httpx's ``verify``, one way for all of them; :func:`requests_verify` into the
``verify`` of ``requests`` (PyGithub, python-gitlab), which takes the bundle as a path.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import socket
import ssl
import threading
import time
import typing
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

__all__ = [
    "Deadline",
    "attach_socket",
    "deadline",
    "display_url",
    "redirect_refusal",
    "requests_verify",
    "tls_verify",
    "watched_transport",
]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


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


#: The smallest heap of deadlines worth sweeping for finished ones.
_SWEEP_MIN: Final = 64


class _Watchdog:
    """One daemon thread that expires deadlines in time order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        #: When the thread wakes up by itself next (infinity: only when notified).
        self._wakes_at = math.inf
        #: Heap size at which finished deadlines are swept out of it (see :meth:`watch`).
        self._sweep_at = _SWEEP_MIN

    def watch(self, item: Deadline) -> None:
        """Expire ``item`` when its time comes (unless it finished first).

        The thread is woken only when ``item`` is due before the thread would wake up anyway:
        requests with one timeout come in deadline order, so a busy sink's stream of requests
        does not cost a thread switch each. Finished deadlines at the head are dropped here, and
        when the heap has doubled since the last sweep (a long request in flight at its head keeps
        the finished ones behind it) every finished one is: the heap holds about the requests in
        flight, not every request of the last timeout.
        """
        with self._cond:
            heap = self._heap
            while heap and heap[0][2].finished:
                heapq.heappop(heap)
            if len(heap) >= self._sweep_at:
                heap[:] = [entry for entry in heap if not entry[2].finished]
                heapq.heapify(heap)
                self._sweep_at = max(_SWEEP_MIN, 2 * len(heap))
            heapq.heappush(heap, (item.at, next(self._seq), item))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="request-deadlines", daemon=True
                )
                self._thread.start()
            if item.at < self._wakes_at:
                self._wakes_at = item.at  # until the thread says when it wakes up next
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._wakes_at = math.inf
                    self._cond.wait()
                at, _, item = self._heap[0]
                delay = at - time.monotonic()
                if item.finished:
                    heapq.heappop(self._heap)
                    continue
                if delay > 0:
                    self._wakes_at = at
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


def redirect_refusal(url: str, status: int, location: str | None, *, fix: str) -> str | None:
    """Why a redirect from ``url`` must not be followed, or None when it may be.

    None for anything but a 3xx with a ``Location``, for a redirect within the origin, and for an
    upgrade from ``http`` to ``https`` on the same host (default ports). Otherwise the message names
    both hosts and ends with ``fix`` (what the operator should change).
    """
    if not (300 <= status < 400) or not location:  # noqa: PLR2004 - the 3xx range
        return None
    target = urljoin(url, location.strip())
    here, there = _origin(url), _origin(target)
    if here == there:
        return None
    upgrade = here[0] == "http" and there[0] == "https" and here[1] == there[1]
    if upgrade and here[2] == _DEFAULT_PORTS["http"] and there[2] == _DEFAULT_PORTS["https"]:
        return None
    return (
        f"{_host(url)} redirected {display_url(url)} to {display_url(target)}, another host or "
        f"scheme: not followed, and the credential was not sent there; {fix}"
    )


class _WatchedStream(httpcore.NetworkStream):
    """A network stream whose socket is cut when the current request's deadline passes."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def _attach(self) -> None:
        attach_socket(self._inner.get_extra_info("socket"))

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._attach()
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._attach()
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._attach()
        return _WatchedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _WatchedBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _WatchedStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _WatchedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def tls_verify(tls_verify: bool, ca_bundle: Path | None) -> bool | ssl.SSLContext:
    """Httpx's ``verify`` for the ``tls_verify`` and ``ca_bundle`` keys: the bundle only when verifying."""
    if tls_verify and ca_bundle is not None:
        return ssl.create_default_context(cafile=str(ca_bundle))
    return tls_verify


def requests_verify(tls_verify: bool, ca_bundle: Path | None) -> bool | str:
    """The ``verify`` of ``requests`` for the same keys: the bundle's path only when verifying."""
    if tls_verify and ca_bundle is not None:
        return str(ca_bundle)
    return tls_verify


def watched_transport(
    verify: bool | ssl.SSLContext, *, limits: httpx.Limits | None = None
) -> httpx.HTTPTransport:
    """An ``httpx`` transport whose every socket is attached to the current :func:`deadline`.

    ``limits`` sizes its connection pool (httpx's defaults when None).
    """
    transport = (
        httpx.HTTPTransport(verify=verify)
        if limits is None
        else httpx.HTTPTransport(verify=verify, limits=limits)
    )
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None:  # pragma: no cover - a newer httpx moved it: fail loudly, not unbounded
        msg = "this httpx version hides its network backend; the request deadline cannot be set"
        raise RuntimeError(msg)
    pool._network_backend = _WatchedBackend(backend)  # type: ignore[union-attr]  # noqa: SLF001
    return transport

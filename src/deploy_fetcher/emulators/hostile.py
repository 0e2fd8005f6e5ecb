"""A hostile upstream: a reverse proxy in front of an emulator that misbehaves on demand.

Every other emulator answers as the real service does. This one is for the other side of the
question: what a compromised or misconfigured CI server, a corporate proxy or a dashboard can do to
the fetcher. In front of a real emulator (``upstream``), it forwards requests unchanged in mode
``normal`` and, in any other mode, answers instead:

===============  ===================================================================================
mode             answer
===============  ===================================================================================
``normal``       the upstream's answer, unchanged (the server "fixed")
``redirect``     ``302`` to the same path on *another host* (:attr:`HostileServer.foreign`, which
                 records every request it gets, so a test sees any credential that reached it)
``echo``         ``500`` (or :attr:`echo_status`) whose body quotes every request header received,
                 as proxies' error pages do
``slow``         the status line and headers, then the body one byte every :attr:`trickle` seconds,
                 for ever (slow-loris: every read completes, no read timeout ever fires)
``endless``      ``200`` with a chunked JSON array that never ends, as fast as the socket takes it
``nested``       ``200`` with JSON nested :attr:`depth` levels deep (``[[[[…]]]]``)
``markup``       ``422`` whose body is terminal and rich markup (``[/x]``, ``[bold]``, ANSI escapes)
``future``       the upstream's answer with every timestamp in its JSON moved to the year 2096 (the
                 ``Date`` header left alone): each item is dated 70 years ahead of the server's clock
===============  ===================================================================================

The ``future`` mode dates every item of an answer; the providers' emulators' scenarios date single
items among current ones. The server runs in threads on 127.0.0.1; the foreign host is 127.0.0.2
(the whole of 127.0.0.0/8 is loopback), a different host name to every client.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Self
from urllib.parse import urlsplit

__all__ = ["FUTURE_YEAR", "MODES", "ForeignHost", "HostileServer", "Seen"]

MODES: Final = (
    "normal",
    "redirect",
    "echo",
    "slow",
    "endless",
    "nested",
    "markup",
    "future",
)
#: The start of a JSON string holding an RFC 3339 timestamp: its year is what ``future`` moves.
_TIMESTAMP: Final = re.compile(rb'"\d{4}(-\d\d-\d\dT\d\d:\d\d)')
#: A leap year, so that a 29 February stays a date.
FUTURE_YEAR: Final = 2096
#: Hop-by-hop headers a proxy never forwards.
_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)
MARKUP_BODY: Final = (
    "[/x] [bold red]alert[/bold red] \x1b[2J\x1b[31mred\x1b[0m [link=http://x]y[/link]"
)


@dataclass(frozen=True)
class Seen:
    """A request one of the servers received: method, path and headers (names lower-case)."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _Log:
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: list[Seen] = field(default_factory=list)

    def add(self, handler: BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.seen.append(Seen(handler.command, handler.path, headers))

    def copy(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _start(server: _Server, name: str) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return thread


class ForeignHost:
    """Another host (127.0.0.2) that records every request and answers ``200 []``."""

    def __init__(self) -> None:
        self.log = _Log()
        log = self.log

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

            def _answer(self) -> None:
                log.add(self)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = do_PATCH = do_DELETE = _answer  # noqa: N815

        self._server = _Server(("127.0.0.2", 0), _Handler)
        self.port = self._server.server_address[1]
        self._thread = _start(self._server, "foreign-host")

    @property
    def seen(self) -> list[Seen]:
        """Every request received so far."""
        return self.log.copy()

    def url(self, path: str = "") -> str:
        """The foreign host's address."""
        return f"http://127.0.0.2:{self.port}{path}"

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


class HostileServer:
    """A reverse proxy to ``upstream`` (an emulator's base URL) that turns hostile by :attr:`mode`.

    Use as a context manager, or :meth:`start` / :meth:`stop`. ``url`` replaces the upstream's URL
    in the fetcher's configuration (the path prefix, if any, is kept).
    """

    def __init__(
        self,
        upstream: str,
        *,
        mode: str = "normal",
        trickle: float = 1.0,
        depth: int = 100_000,
        echo_status: int = 500,
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream_host = parts.hostname or "127.0.0.1"
        self._upstream_port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self.mode = mode
        self.trickle = trickle
        self.depth = depth
        self.echo_status = echo_status
        self.log = _Log()
        self.foreign = ForeignHost()
        #: Bytes sent by the ``endless`` and ``slow`` modes (how much the client was offered).
        self.bytes_offered = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Self:
        """Start serving on 127.0.0.1 (a free port)."""
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = self._server.server_address[1]
        _start(self._server, "hostile-server")
        return self

    def stop(self) -> None:
        """Stop serving; endless answers in flight end within a trickle."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.foreign.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The address to configure instead of the upstream's."""
        return f"http://127.0.0.1:{self.port}{self._prefix}"

    @property
    def seen(self) -> list[Seen]:
        """Every request this server received."""
        return self.log.copy()

    def _offered(self, count: int) -> None:
        with self._lock:
            self.bytes_offered += count

    # -- the answers -------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

            def _any(self) -> None:
                owner.log.add(self)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    owner.answer(self, body)
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_HEAD = do_PATCH = do_DELETE = _any  # noqa: N815

        return _Handler

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        """Answer one request according to the current mode."""
        mode = self.mode
        if mode in {"normal", "future"}:
            self._forward(handler, body)
        elif mode == "redirect":
            location = self.foreign.url(handler.path)
            self._reply(handler, 302, b"", {"Location": location})
        elif mode == "echo":
            received = "\n".join(f"{k}: {v}" for k, v in handler.headers.items())
            text = f"upstream proxy error; the request was:\n{handler.command} {handler.path}\n"
            self._reply(handler, self.echo_status, (text + received).encode(), {})
        elif mode == "slow":
            self._slow(handler)
        elif mode == "endless":
            self._endless(handler)
        elif mode == "nested":
            nested = b"[" * self.depth + b"]" * self.depth
            self._reply(handler, 200, nested, {"Content-Type": "application/json"})
        elif mode == "markup":
            body_text = json.dumps({"message": MARKUP_BODY, "errors": [MARKUP_BODY]})
            self._reply(handler, 422, body_text.encode(), {"Content-Type": "application/json"})
        else:  # pragma: no cover - a typo in a test
            msg = f"unknown mode {mode!r}; one of {MODES}"
            raise ValueError(msg)

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        connection = http.client.HTTPConnection(
            self._upstream_host, self._upstream_port, timeout=30
        )
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
            headers["Host"] = f"{self._upstream_host}:{self._upstream_port}"
            connection.request(handler.command, handler.path, body=body or None, headers=headers)
            response = connection.getresponse()
            content = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP}
            # The upstream's absolute links (Link headers, next-page URLs) name the upstream:
            # rewrite them to this server, so paging stays behind the proxy.
            upstream = f"{self._upstream_host}:{self._upstream_port}"
            mine = f"127.0.0.1:{self.port}"
            kept = {k: v.replace(upstream, mine) for k, v in kept.items()}
            content = content.replace(upstream.encode(), mine.encode())
            if self.mode == "future":
                content = _TIMESTAMP.sub(rb'"%d\1' % FUTURE_YEAR, content)
            self._reply(handler, response.status, content, kept)
        finally:
            connection.close()

    def _headers_then(self, handler: BaseHTTPRequestHandler, content_type: str) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.flush()

    def _chunks(self, piece: bytes) -> Iterator[bytes]:
        while not self._stopping.is_set():
            yield b"%x\r\n%s\r\n" % (len(piece), piece)

    def _slow(self, handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        self._headers_then(handler, "application/json")
        for chunk in self._chunks(b" "):
            handler.wfile.write(chunk)
            handler.wfile.flush()
            self._offered(1)
            if self._stopping.wait(self.trickle):
                return

    def _endless(self, handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        self._headers_then(handler, "application/json")
        handler.wfile.write(b"1\r\n[\r\n")
        item = json.dumps({"id": 1, "name": "x" * 200}).encode() + b","
        piece = item * 300  # ~64 KiB per chunk
        for chunk in self._chunks(piece):
            handler.wfile.write(chunk)
            self._offered(len(piece))
        with suppress(OSError):
            handler.wfile.flush()

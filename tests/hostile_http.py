"""A hostile HTTP server on 127.0.0.1: what a compromised CI server or proxy can do to a client.

Written on raw sockets, so it can misbehave below what an HTTP library lets a handler do. Modes:

* ``json``: a well-behaved answer (``body``, ``status``, ``headers``), for the other side of a test;
* ``slow``: the answer trickled one byte every ``interval`` seconds — each read of a client returns
  in time, the whole answer takes ``len(body) × interval``;
* ``endless``: a chunked 200 whose body never ends (it stops after ``limit`` bytes, so a test
  without the byte cap still ends);
* ``redirect``: a 302 to ``location``.

Every request is recorded with its headers (``requests``), so a test can tell which credential
reached which host.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any, Self

__all__ = ["HostileServer", "Seen"]


@dataclass(frozen=True)
class Seen:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class HostileServer:
    """Serve one misbehaviour (see the module docstring) until stopped."""

    mode: str = "json"
    body: bytes = b"[]"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    interval: float = 0.2
    limit: int = 64 * 1024 * 1024
    location: str = ""
    #: Paths answered with a 302 to another location, whatever the mode.
    redirects: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: socketserver.ThreadingTCPServer | None = None
        self._stopping = threading.Event()
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str = "", *, host: str | None = None) -> str:
        """This server's URL, optionally under another name for the same address (``localhost``)."""
        return f"http://{host or self.host}:{self.port}{path}"

    def start(self) -> Self:
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    while not server._stopping.is_set():
                        if not server._serve(self.rfile, self.connection):
                            return

        tcp = socketserver.ThreadingTCPServer((self.host, 0), Handler)
        tcp.daemon_threads = True
        self._server = tcp
        self._port = int(tcp.server_address[1])
        threading.Thread(
            target=tcp.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one exchange ------------------------------------------------------------------------
    def _serve(self, rfile: Any, conn: socket.socket) -> bool:
        line = rfile.readline(65536)
        if not line:
            return False
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = rfile.readline(65536)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if length:
            rfile.read(length)
        self.requests.append(Seen(method, path, headers))
        if path in self.redirects:
            conn.sendall(self._head(302, {"Location": self.redirects[path], "Content-Length": "0"}))
            return True
        if self.mode == "slow":
            self._trickle(conn)
            return False
        if self.mode == "endless":
            self._endless(conn)
            return False
        if self.mode == "redirect":
            conn.sendall(self._head(302, {"Location": self.location, "Content-Length": "0"}))
            return True
        body = self.body
        head = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        conn.sendall(self._head(self.status, {**head, **self.headers}) + body)
        return True

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _trickle(self, conn: socket.socket) -> None:
        head = {"Content-Type": "application/json", "Content-Length": str(len(self.body))}
        for byte in self._head(200, head) + self.body:
            if self._stopping.wait(self.interval):
                return
            conn.sendall(bytes([byte]))

    def _endless(self, conn: socket.socket) -> None:
        conn.sendall(
            self._head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        )
        chunk = b"[" + b" " * 65535
        sent = 0
        while sent < self.limit and not self._stopping.is_set():
            conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        conn.sendall(b"0\r\n\r\n")

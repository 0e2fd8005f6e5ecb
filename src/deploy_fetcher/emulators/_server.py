"""A small threaded HTTP server that every bundled emulator is built on.

Real HTTP on 127.0.0.1 (so PyGithub's and python-gitlab's ``requests`` sessions, httpx and the daemon
talk to it exactly as they would to the real service), with:

* routing on ``{name}`` path patterns;
* fault injection: queued faults that match a path regex and fire a number of times — a status with
  headers (503 + Retry-After, 429 …), a delay, a malformed or truncated body, a dropped connection;
* a request log, so tests and benchmarks count what a client really sent;
* a control API under ``/_emulator/`` for processes that cannot reach the object (the demo, the daemon
  under test): ``GET requests``, ``POST faults``, ``POST advance``, ``POST reset-log``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["EmulatorServer", "Fault", "Request", "Response", "json_response"]


@dataclass
class Request:
    """An incoming request, parsed."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not)."""
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        """A header, case-insensitively."""
        return self.headers.get(name.lower())


@dataclass
class Response:
    """What a route returns."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    out = {"Content-Type": "application/json; charset=utf-8"}
    out.update(headers or {})
    return Response(status=status, body=json.dumps(data).encode(), headers=out)


@dataclass
class Fault:
    """An injected failure: fires on the next ``count`` requests whose path matches ``match``.

    ``kind``: ``status`` (answer ``status`` with ``headers`` and ``body``), ``delay`` (sleep ``delay``
    seconds, then answer normally), ``malformed`` (200 with a body that is not JSON), ``truncated``
    (the real body cut in half), ``drop`` (close the connection without an answer).
    """

    kind: str = "status"
    match: str = ".*"
    count: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        if self.method and self.method.upper() != method:
            return False
        return re.search(self.match, path) is not None


Handler = Callable[[Request, dict[str, str]], Response]


@dataclass
class _Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the emulator saw it."""

    method: str
    path: str
    query: str
    status: int
    headers: dict[str, str]
    #: ``time.monotonic()`` when the answer was sent (tests check Retry-After was honoured).
    at: float = 0.0
    #: ``time.monotonic()`` when the request arrived (benchmarks count requests in flight).
    started: float = 0.0


class EmulatorServer:
    """Base of every emulator: subclasses register routes in ``__init__`` via :meth:`route`."""

    #: Prefix of the control API; never charged, never logged.
    CONTROL = "/_emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._routes: list[_Route] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self.log: list[LoggedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.route("GET", self.CONTROL + "/requests", self._ctl_requests)
        self.route("POST", self.CONTROL + "/faults", self._ctl_faults)
        self.route("POST", self.CONTROL + "/advance", self._ctl_advance)
        self.route("POST", self.CONTROL + "/reset-log", self._ctl_reset_log)

    # -- routing -------------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` on a path pattern with ``{name}`` placeholders.

        ``{name}`` matches one path segment; ``{name:path}`` matches the rest of the path.
        """

        def _sub(match: re.Match[str]) -> str:
            name, _, kind = match.group(1).partition(":")
            return f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)"

        regex = re.compile("^" + re.sub(r"\{([^}]+)\}", _sub, pattern) + "/?$")
        self._routes.append(_Route(method.upper(), regex, handler))

    # -- faults and time ----------------------------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        """Queue faults; each fires on its next ``count`` matching requests."""
        with self._lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward; subclasses make things happen in that time."""

    def server_time(self) -> datetime | None:
        """The emulator's own clock, sent as every answer's ``Date`` (None: the real clock).

        A real server's ``Date`` agrees with the timestamps it serves; clients read it (the mark of a
        cursor never passes it), so an emulator whose clock was moved sends its own time.
        """
        return None

    def requests_to(self, pattern: str = ".*", method: str | None = None) -> list[LoggedRequest]:
        """Logged requests whose path matches ``pattern``."""
        with self._lock:
            return [
                r
                for r in self.log
                if re.search(pattern, r.path) and (method is None or r.method == method)
            ]

    def reset_log(self) -> None:
        """Forget the request log."""
        with self._lock:
            self.log.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- control API ---------------------------------------------------------------------------------
    def _ctl_requests(self, request: Request, _: dict[str, str]) -> Response:
        pattern = request.arg("match", ".*") or ".*"
        rows = [
            {"method": r.method, "path": r.path, "query": r.query, "status": r.status}
            for r in self.requests_to(pattern)
        ]
        return json_response({"count": len(rows), "requests": rows})

    def _ctl_faults(self, request: Request, _: dict[str, str]) -> Response:
        data = request.json()
        items = data if isinstance(data, list) else [data]
        self.inject(*(Fault(**item) for item in items))
        return json_response({"queued": len(items)})

    def _ctl_advance(self, request: Request, _: dict[str, str]) -> Response:
        data = request.json() or {}
        self.advance(float(data.get("seconds", 0)))
        return json_response({"ok": True})

    def _ctl_reset_log(self, _request: Request, _params: dict[str, str]) -> Response:
        self.reset_log()
        return json_response({"ok": True})

    # -- dispatch ------------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        """Find the route for a request and run it (404 / 405 otherwise)."""
        allowed = False
        for route in self._routes:
            match = route.regex.match(request.path)
            if not match:
                continue
            allowed = True
            if route.method == request.method:
                return route.handler(request, match.groupdict())
        if allowed:
            return json_response({"message": "Method Not Allowed"}, 405)
        return self.not_found(request)

    def not_found(self, _request: Request) -> Response:
        """The 404 body; emulators override it with their service's shape."""
        return json_response({"message": "Not Found"}, 404)

    def url(self, path: str = "") -> str:
        """Absolute URL of a path on this server."""
        return f"http://{self.host}:{self.port}{path}"

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> str:  # noqa: C901 - the request handler is one closure on purpose
        """Start serving in a background thread; returns the base URL."""
        emulator = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Without TCP_NODELAY every keep-alive request waits ~40 ms on Nagle + delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Silence the default stderr access log."""

            def date_time_string(self, timestamp: float | None = None) -> str:
                """The ``Date`` header: the emulator's clock when it has one."""
                when = emulator.server_time()
                if when is None:
                    return super().date_time_string(timestamp)
                return format_datetime(when.astimezone(UTC), usegmt=True)

            def _handle(self) -> None:
                started = time.monotonic()
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                control = parts.path.startswith(EmulatorServer.CONTROL)
                fault = None if control else emulator._take_fault(self.command, parts.path)
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.delay)
                if fault is not None and fault.kind == "status":
                    response = Response(
                        status=fault.status,
                        body=fault.body.encode(),
                        headers={"Content-Type": "application/json", **fault.headers},
                    )
                else:
                    try:
                        response = emulator.dispatch(request)
                    except Exception as exc:  # an emulator bug must show, not hang the client
                        response = json_response({"message": f"emulator error: {exc!r}"}, 500)
                    if fault is not None and fault.kind == "malformed":
                        response = Response(
                            200, b"<html>not json", {"Content-Type": "application/json"}
                        )
                    elif fault is not None and fault.kind == "truncated":
                        response = Response(
                            response.status,
                            response.body[: len(response.body) // 2],
                            response.headers,
                        )
                if not control:
                    with emulator._lock:
                        emulator.log.append(
                            LoggedRequest(
                                self.command,
                                parts.path,
                                parts.query,
                                response.status,
                                request.headers,
                                time.monotonic(),
                                started,
                            )
                        )
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle  # noqa: N815

        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self.url()

    def stop(self) -> None:
        """Stop serving (the port is freed: clients get connection refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(server: EmulatorServer, *, banner: str) -> None:
    """Run an emulator in the foreground until Ctrl-C (the ``python -m`` entry of each emulator)."""
    url = server.start()
    print(f"{banner} listening on {url}", flush=True)  # noqa: T201
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()

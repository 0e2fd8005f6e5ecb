"""The health and metrics HTTP server: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` is liveness: 200 while the scheduler's heartbeat is fresh, 503 when it stopped
dispatching jobs (restart me). ``/readyz`` says whether the fetcher is doing its job (a credential
rejected, the store unwritable, no source polled successfully yet → 503 with the reasons as JSON);
a restart would not fix those, so nothing restarts on them.

``/metrics`` is prometheus_client's own WSGI exposition: the text format or OpenMetrics as the
scraper's ``Accept`` asks, gzip when it accepts it, ``?name[]=`` to select series.

Other applications can be mounted under a path prefix (the webhook nudges under ``/hooks/``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

__all__ = ["HealthServer"]

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class _QuietHandler(WSGIRequestHandler):
    #: Seconds one read or write on a connection may block: a client that stops sending its
    #: request (headers or body) frees its thread instead of holding it for ever.
    timeout = 10.0

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Probes every few seconds would flood the log; stay quiet."""


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [data]


class HealthServer:
    """Serves the three endpoints in a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry,
        problems: Callable[[], list[str]],
        liveness: Callable[[], str | None] = lambda: None,
        details: Callable[[], dict[str, Any]] | None = None,
        mounts: dict[str, Callable[[Environ, StartResponse], Iterable[bytes]]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._metrics_app = make_wsgi_app(registry)
        self._problems = problems
        self._liveness = liveness
        #: More for ``/readyz`` to show (a replica's membership and what it holds).
        self._details = details
        #: Applications answering every path under their prefix, whatever the method.
        self._mounts = dict(mounts or {})
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def wsgi(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """What the server runs: a mounted application for a path under its prefix, else :meth:`app`."""
        path = environ.get("PATH_INFO", "")
        for prefix, mounted in self._mounts.items():
            if path.startswith(prefix):
                return mounted(environ, start_response)
        return self.app(environ, start_response)

    def app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application of the three endpoints (usable on its own in tests)."""
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD", "GET") not in {"GET", "HEAD"}:
            return _json(start_response, "405 Method Not Allowed", {"error": "GET only"})
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            problem = self._liveness()
            if problem:
                return _json(
                    start_response,
                    "503 Service Unavailable",
                    {"status": "wedged", "problems": [problem]},
                )
            return _json(start_response, "200 OK", {"status": "alive"})
        if path == "/readyz":
            problems = self._problems()
            body: dict[str, Any] = {
                "status": "not ready" if problems else "ready",
                "problems": problems,
            }
            if self._details is not None:
                body.update(self._details())
            status = "503 Service Unavailable" if problems else "200 OK"
            return _json(start_response, status, body)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    def start(self) -> int:
        """Start serving; returns the bound port (useful with port 0)."""
        server = make_server(
            self.host, self.port, self.wsgi, ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, name="health-server", daemon=True
        )
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

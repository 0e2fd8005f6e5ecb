"""The health and metrics HTTP server: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` answers as long as the process can serve HTTP (liveness: restart me if this fails);
``/readyz`` says whether the fetcher is doing its job (a credential rejected, the store unwritable, no
source polled successfully yet → 503 with the reasons as JSON).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["HealthServer"]


class HealthServer:
    """Serves the three endpoints in a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry,
        problems: Callable[[], list[str]],
        details: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._registry = registry
        self._problems = problems
        #: More for ``/readyz`` to show (a replica's membership and what it holds).
        self._details = details
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Start serving; returns the bound port (useful with port 0)."""
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Probes every few seconds would flood the log; stay quiet."""

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._reply(200, b'{"status":"alive"}', "application/json")
                elif path == "/readyz":
                    problems = owner._problems()
                    body = {"status": "not ready" if problems else "ready", "problems": problems}
                    if owner._details is not None:
                        body.update(owner._details())
                    self._reply(
                        503 if problems else 200, json.dumps(body).encode(), "application/json"
                    )
                elif path == "/metrics":
                    self._reply(200, generate_latest(owner._registry), CONTENT_TYPE_LATEST)
                else:
                    self._reply(404, b'{"error":"not found"}', "application/json")

        self._server = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
        )
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

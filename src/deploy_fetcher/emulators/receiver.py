"""A catch-all HTTP receiver standing in for Cloudlink, CTO.ai or any webhook endpoint.

It records every request with its exact body and headers (what a sink's test asserts on), answers a
configurable status, and optionally demands ``Authorization: Bearer <token>`` like Cloudlink and
CTO.ai do. Faults (503 + Retry-After, drops, delays) come from
:class:`~deploy_fetcher.emulators._server.EmulatorServer`.

Run it alone with ``python -m deploy_fetcher.emulators.receiver --port 8001 --bearer KEY``.
"""

from __future__ import annotations

import argparse
import hmac
import json
from dataclasses import dataclass
from typing import Any

from deploy_fetcher.emulators._server import (
    EmulatorServer,
    Request,
    Response,
    json_response,
    serve_forever,
)

__all__ = ["Received", "ReceiverEmulator"]


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """A header, case-insensitively."""
        return self.headers.get(name.lower())


class ReceiverEmulator(EmulatorServer):
    """Accepts POST and PUT on any path; HEAD answers 200 (what a sink's ``check()`` probes)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        status: int = 200,
        body: Any = None,
        bearer: str | None = None,
    ) -> None:
        super().__init__(host, port)
        self.status = status
        self.body = {"message": "event written"} if body is None else body
        self.bearer = bearer
        self._received: list[Received] = []
        for method in ("POST", "PUT"):
            self.route(method, "/", self._receive)
            self.route(method, "/{rest:path}", self._receive)
        self.route("HEAD", "/", self._head)
        self.route("HEAD", "/{rest:path}", self._head)
        self.route("GET", self.CONTROL + "/received", self._ctl_received)

    def received(self, path: str | None = None) -> list[Received]:
        """Requests that reached a route (refused ones included), optionally for one path."""
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def _authorized(self, request: Request) -> bool:
        if self.bearer is None:
            return True
        given = request.header("Authorization") or ""
        return hmac.compare_digest(given.encode(), f"Bearer {self.bearer}".encode())

    def _receive(self, request: Request, _params: dict[str, str]) -> Response:
        with self._lock:
            self._received.append(
                Received(request.method, request.path, dict(request.headers), request.body)
            )
        if not self._authorized(request):
            return json_response({"error": "invalid or missing API key"}, 401)
        return json_response(self.body, self.status)

    def _head(self, _request: Request, _params: dict[str, str]) -> Response:
        return Response(status=200)

    def _ctl_received(self, _request: Request, _params: dict[str, str]) -> Response:
        rows = [
            {"method": r.method, "path": r.path, "body": r.body.decode("utf-8", "replace")}
            for r in self.received()
        ]
        return json_response({"count": len(rows), "received": rows})


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy_fetcher.emulators.receiver",
        description="A catch-all HTTP receiver (Cloudlink, CTO.ai, webhooks) that records requests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--status", type=int, default=200, help="the status every POST gets")
    parser.add_argument("--bearer", help="demand Authorization: Bearer <this>")
    args = parser.parse_args(argv)
    receiver = ReceiverEmulator(args.host, args.port, status=args.status, bearer=args.bearer)
    serve_forever(receiver, banner="Receiver emulator")


if __name__ == "__main__":
    main()

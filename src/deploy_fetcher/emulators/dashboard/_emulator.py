"""A local Deployment Dashboard: the ingest contract of seed 001 and the rest the fetcher talks to.

* ``POST /api/deployments`` — ``X-Api-Key``; 401, 422 (problem+json with ``errors[]``) or 201 with
  ``Location`` and the stored row. Append-only, like the real one: a retried POST is another row,
  which is how tests count duplicates.
* ``GET /api/deployments`` (``?service=&environment=&deployment_id=``), ``GET /api/deployments/{id}``,
  ``GET /api/matrix`` (the latest row by ``happened_at`` per service and environment). Reads are
  public, as on the dashboard (seed 001 checks ``/api/matrix`` with a bare curl).
* ``GET/PUT /api/fetcher/state/{adapter}`` — ``X-Api-Key``; an opaque string of at most 8 KiB.
* ``GET /api/control/stream`` — Server-Sent Events, ``X-Control-API-Key``, honours
  ``Last-Event-ID``, ``: ping`` comments; ``POST /api/control/events`` records components' reports.

Fault injection (503 + Retry-After, 429, delays, dropped connections) comes from
:class:`~deploy_fetcher.emulators._server.EmulatorServer`; ``stop()`` and ``start()`` on the same port
give refused connections. ``stop()`` also ends every open stream.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import socket
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any, Final, cast
from urllib.parse import urlsplit

from deploy_fetcher.emulators._server import (
    EmulatorServer,
    LoggedRequest,
    Request,
    Response,
    json_response,
)
from deploy_fetcher.emulators.dashboard._contract import (
    FieldError,
    RunNumberType,
    StatusSet,
    problem,
    validate,
)
from deploy_fetcher.emulators.dashboard._control import (
    ControlEvent,
    ControlHub,
    ControlReport,
    now_text,
    sse_comment,
    sse_event,
)
from deploy_fetcher.model import parse_timestamp

__all__ = ["DashboardEmulator"]

STREAM_PATH: Final = "/api/control/stream"
STATE_MAX_BYTES: Final = 8192
_ADAPTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PROBLEM: Final = {"Content-Type": "application/problem+json"}
#: How long a blocked write to a stream client may take before the stream is given up.
_WRITE_TIMEOUT: Final = 5.0


def _problem(
    status: int, title: str, detail: str, errors: list[FieldError] | None = None
) -> Response:
    return json_response(problem(status, title, detail, errors), status, _PROBLEM)


def _streaming_handler(
    base: type[BaseHTTPRequestHandler], emulator: DashboardEmulator
) -> type[BaseHTTPRequestHandler]:
    """The server's handler class, with the control stream served by writing as events come."""

    class Handler(base):  # type: ignore[misc,valid-type]
        # Headers and body leave in two writes; with Nagle on, the body waits for the client's
        # delayed ACK (about 40 ms a request) and throughput measurements measure that instead.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            emulator.track(self.connection)

        def finish(self) -> None:
            emulator.untrack(self.connection)
            super().finish()

        def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
            if urlsplit(self.path).path.rstrip("/") == STREAM_PATH:
                emulator.serve_stream(self)
            else:
                super().do_GET()

    return Handler


class DashboardEmulator(EmulatorServer):
    """The Deployment Dashboard on 127.0.0.1, thread-safe, for tests, benchmarks and the demo.

    ``run_number_type="string"`` behaves like newer dashboards (a string of at most 128 characters is
    accepted besides an integer). ``status_set="three"`` is seed 001's dashboard: ``status`` is one of
    in-progress, success, failure, and any other is refused with 422 naming ``status``. ``control_api_key`` defaults to ``api_key``. ``ping_interval`` and
    ``stream_max_seconds`` bound every control stream.
    """

    def __init__(
        self,
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        control_api_key: str | None = None,
        run_number_type: RunNumberType = "integer",
        status_set: StatusSet = "eight",
        ping_interval: float = 15.0,
        stream_max_seconds: float = 300.0,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.control_api_key = control_api_key or api_key
        self.run_number_type: RunNumberType = run_number_type
        self.status_set: StatusSet = status_set
        self.ping_interval = ping_interval
        self.stream_max_seconds = stream_max_seconds
        self.hub = ControlHub()
        self._rows: list[dict[str, Any]] = []
        self._states: dict[str, dict[str, str]] = {}
        self._next_id = 1
        self._generation = 0
        self._connections: set[socket.socket] = set()
        #: TCP connections accepted so far (tests check that clients keep theirs alive).
        self.connections_opened = 0
        self.route("POST", "/api/deployments", self._post_deployment)
        self.route("GET", "/api/deployments", self._list_deployments)
        self.route("GET", "/api/deployments/{id}", self._get_deployment)
        self.route("GET", "/api/matrix", self._get_matrix)
        self.route("GET", "/api/fetcher/state/{adapter}", self._get_state)
        self.route("PUT", "/api/fetcher/state/{adapter}", self._put_state)
        self.route("GET", STREAM_PATH, self._stream_not_ready)
        self.route("POST", "/api/control/events", self._post_control_event)
        self.route("POST", self.CONTROL + "/control/reset", self._ctl_reset)
        self.route("GET", self.CONTROL + "/control/reports", self._ctl_reports)

    # -- what tests read -----------------------------------------------------------------------------
    def rows(
        self, *, service: str | None = None, environment: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored rows in arrival order, optionally for one service and/or environment."""
        with self._lock:
            return [
                dict(row)
                for row in self._rows
                if (service is None or row["service"] == service)
                and (environment is None or row["environment"] == environment)
            ]

    def matrix(self) -> list[dict[str, Any]]:
        """The latest row by ``happened_at`` per (service, environment), as the dashboard shows it."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in self.rows():
            key = (row["service"], row["environment"])
            current = latest.get(key)
            if current is None or parse_timestamp(row["happened_at"]) >= parse_timestamp(
                current["happened_at"]
            ):
                latest[key] = row
        return [
            {"service": service, "environment": environment, "deployment": row}
            for (service, environment), row in sorted(latest.items())
        ]

    def state(self, adapter: str) -> str | None:
        """The opaque state stored for an adapter, or None."""
        with self._lock:
            entry = self._states.get(adapter)
            return entry["state"] if entry else None

    def reports(self) -> list[ControlReport]:
        """What components posted to ``/api/control/events``."""
        return self.hub.reports()

    def control_events(self) -> list[ControlEvent]:
        """Every event sent on the control stream."""
        return self.hub.events()

    # -- resets --------------------------------------------------------------------------------------
    def start_reset(self) -> str:
        """Announce a reset (``reset-initiated``); returns its correlation id."""
        correlation_id = uuid.uuid4().hex
        self.hub.publish("reset-initiated", correlation_id=correlation_id, initiated_at=now_text())
        return correlation_id

    def complete_reset(self, correlation_id: str) -> None:
        """Wipe every row and fetcher state, then announce ``reset-completed``."""
        with self._lock:
            self._rows.clear()
            self._states.clear()
        self.hub.publish("reset-completed", correlation_id=correlation_id, completed_at=now_text())

    def trigger_reset(self) -> str:
        """A whole reset, as an operator's button press: initiated, wiped, completed."""
        correlation_id = self.start_reset()
        self.complete_reset(correlation_id)
        return correlation_id

    # -- auth ----------------------------------------------------------------------------------------
    @staticmethod
    def _key_ok(given: str | None, expected: str) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), expected.encode())

    def _unauthorized(self, header: str) -> Response:
        return _problem(401, "Unauthorized", f"{header} missing or invalid")

    # -- ingest --------------------------------------------------------------------------------------
    def _post_deployment(self, request: Request, _: dict[str, str]) -> Response:
        if not self._key_ok(request.header("X-Api-Key"), self.api_key):
            return self._unauthorized("X-Api-Key")
        try:
            payload = json.loads(request.body)
        except ValueError:
            errors = [FieldError("", "the body is not valid JSON")]
        else:
            errors = validate(
                payload, run_number_type=self.run_number_type, status_set=self.status_set
            )
        if errors:
            return _problem(422, "Unprocessable Entity", "Validation failed", errors)
        with self._lock:
            row = {"id": self._next_id, **payload, "received_at": now_text()}
            self._next_id += 1
            self._rows.append(row)
        return json_response(row, 201, {"Location": f"/api/deployments/{row['id']}"})

    def _list_deployments(self, request: Request, _: dict[str, str]) -> Response:
        rows = self.rows(service=request.arg("service"), environment=request.arg("environment"))
        deployment_id = request.arg("deployment_id")
        if deployment_id is not None:
            rows = [row for row in rows if row["deployment_id"] == deployment_id]
        return json_response({"count": len(rows), "items": rows})

    def _get_deployment(self, _request: Request, params: dict[str, str]) -> Response:
        with self._lock:
            row = next((r for r in self._rows if str(r["id"]) == params["id"]), None)
        if row is None:
            return _problem(404, "Not Found", f"no deployment row {params['id']}")
        return json_response(row)

    def _get_matrix(self, _request: Request, _params: dict[str, str]) -> Response:
        return json_response({"cells": self.matrix()})

    # -- fetcher state -------------------------------------------------------------------------------
    def _get_state(self, request: Request, params: dict[str, str]) -> Response:
        if not self._key_ok(request.header("X-Api-Key"), self.api_key):
            return self._unauthorized("X-Api-Key")
        adapter = params["adapter"]
        with self._lock:
            entry = self._states.get(adapter)
        if entry is None:
            return _problem(404, "Not Found", f"no state stored for {adapter}")
        return json_response({"adapter": adapter, **entry})

    def _put_state(self, request: Request, params: dict[str, str]) -> Response:
        if not self._key_ok(request.header("X-Api-Key"), self.api_key):
            return self._unauthorized("X-Api-Key")
        adapter = params["adapter"]
        errors: list[FieldError] = []
        if not _ADAPTER.match(adapter):
            errors.append(FieldError("adapter", "must be 1-64 letters, digits, '_', '.', '-'"))
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        state = body.get("state") if isinstance(body, dict) else None
        if not isinstance(state, str):
            errors.append(FieldError("state", 'the body must be {"state": "<string>"}'))
        elif len(state.encode()) > STATE_MAX_BYTES:
            errors.append(FieldError("state", f"must be at most {STATE_MAX_BYTES} bytes"))
        if errors or not isinstance(state, str):
            return _problem(422, "Unprocessable Entity", "Validation failed", errors)
        entry = {"state": state, "updated_at": now_text()}
        with self._lock:
            self._states[adapter] = entry
        return json_response({"adapter": adapter, **entry})

    # -- control channel -----------------------------------------------------------------------------
    def _post_control_event(self, request: Request, _: dict[str, str]) -> Response:
        if not self._key_ok(request.header("X-Control-API-Key"), self.control_api_key):
            return self._unauthorized("X-Control-API-Key")
        errors: list[FieldError] = []
        component = request.header("X-Component-Id")
        if not component:
            errors.append(FieldError("X-Component-Id", "header is required"))
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not (isinstance(body, dict) and isinstance(body.get("type"), str) and body["type"]):
            errors.append(FieldError("type", 'the body must be a JSON object with a "type"'))
        if errors or not component or not isinstance(body, dict):
            return _problem(422, "Unprocessable Entity", "Validation failed", errors)
        report = ControlReport(
            component_id=component,
            correlation_id=request.header("X-Correlation-Id"),
            type=body["type"],
            body=body,
        )
        self.hub.record(report)
        return json_response({"accepted": True}, 202)

    def _stream_not_ready(self, _request: Request, _params: dict[str, str]) -> Response:
        # Only reachable in the instant between the listening socket opening and the streaming
        # handler being installed (see start()): the client retries like after any 503.
        response = _problem(503, "Service Unavailable", "the control stream is starting")
        response.headers["Retry-After"] = "1"
        return response

    def _ctl_reset(self, _request: Request, _params: dict[str, str]) -> Response:
        return json_response({"correlation_id": self.trigger_reset()})

    def _ctl_reports(self, _request: Request, _params: dict[str, str]) -> Response:
        rows = [
            {
                "component_id": r.component_id,
                "correlation_id": r.correlation_id,
                "type": r.type,
                "body": r.body,
            }
            for r in self.reports()
        ]
        return json_response({"count": len(rows), "reports": rows})

    # -- the SSE stream ------------------------------------------------------------------------------
    def _log_stream(self, handler: BaseHTTPRequestHandler, status: int) -> None:
        parts = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.log.append(LoggedRequest("GET", parts.path, parts.query, status, headers))

    def _write_plain(self, handler: BaseHTTPRequestHandler, response: Response) -> None:
        self._log_stream(handler, response.status)
        handler.send_response(response.status)
        for key, value in response.headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(response.body)))
        handler.end_headers()
        handler.wfile.write(response.body)

    def serve_stream(self, handler: BaseHTTPRequestHandler) -> None:
        """Serve ``GET /api/control/stream`` until the client leaves, the emulator stops or time's up."""
        fault = self._take_fault("GET", STREAM_PATH)
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "status":
            body = fault.body.encode()
            self._write_plain(
                handler,
                Response(fault.status, body, {"Content-Type": "application/json", **fault.headers}),
            )
            return
        if not self._key_ok(handler.headers.get("X-Control-API-Key"), self.control_api_key):
            self._write_plain(handler, self._unauthorized("X-Control-API-Key"))
            return
        last = handler.headers.get("Last-Event-ID")
        last_id = int(last) if last is not None and last.strip().isdigit() else self.hub.last_id
        self._log_stream(handler, 200)
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.connection.settimeout(_WRITE_TIMEOUT)
        try:
            self._pump(handler, last_id)
        except OSError:  # the client went away (broken pipe, reset, blocked write timed out)
            return

    def _pump(self, handler: BaseHTTPRequestHandler, last_id: int) -> None:
        generation = self._generation
        deadline = time.monotonic() + self.stream_max_seconds
        next_ping = time.monotonic() + self.ping_interval

        def write(data: bytes) -> None:
            handler.wfile.write(data)
            handler.wfile.flush()

        write(b"retry: 1000\n\n")
        while self._generation == generation and time.monotonic() < deadline:
            for event in self.hub.after(last_id):
                write(sse_event(event))
                last_id = event.id
            if time.monotonic() >= next_ping:
                write(sse_comment("ping"))
                next_ping = time.monotonic() + self.ping_interval
            with self.hub.condition:
                if self.hub.last_id == last_id and self._generation == generation:
                    wait = min(next_ping, deadline) - time.monotonic()
                    self.hub.condition.wait(timeout=max(wait, 0.0))

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> str:
        """Start serving; the control stream gets a handler that writes as events come."""
        url = super().start()
        server = self._server
        if server is not None:
            base = cast("type[BaseHTTPRequestHandler]", server.RequestHandlerClass)
            server.RequestHandlerClass = _streaming_handler(base, self)
        return url

    def track(self, connection: socket.socket) -> None:
        """Remember an open client connection (see :meth:`stop`)."""
        with self._lock:
            self._connections.add(connection)
            self.connections_opened += 1

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed client connection."""
        with self._lock:
            self._connections.discard(connection)

    def stop(self) -> None:
        """Stop serving: end every control stream and cut keep-alive connections.

        Closing only the listening socket would leave pooled connections answering, and a client
        with a warm pool would never see the outage a test stops the emulator for.
        """
        with self.hub.condition:
            self._generation += 1
            self.hub.condition.notify_all()
        super().stop()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

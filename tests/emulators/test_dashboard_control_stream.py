"""The dashboard's control channel: SSE with Last-Event-ID and pings, and components' reports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.support import DASHBOARD_CONTROL_KEY

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.dashboard import DashboardEmulator

STREAM = "/api/control/stream"


def _frames(lines: Iterator[str], limit: int = 200) -> Iterator[dict[str, str]]:
    """SSE frames (field -> value; comments under ":"), from at most ``limit`` lines."""
    frame: dict[str, str] = {}
    for count, line in enumerate(lines):
        if count >= limit:
            return
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            frame[":"] = line[1:].strip()
        else:
            field, _, value = line.partition(":")
            frame[field] = value.removeprefix(" ")
    if frame:
        yield frame


def _until(frames: Iterator[dict[str, str]], event_type: str) -> list[dict[str, str]]:
    """Frames up to and including the first of ``event_type``."""
    seen = []
    for frame in frames:
        seen.append(frame)
        if frame.get("event") == event_type:
            return seen
    return seen


def _headers(**extra: str) -> dict[str, str]:
    return {"X-Control-API-Key": DASHBOARD_CONTROL_KEY, **extra}


def test_reset_reaches_a_connected_client(
    client: httpx.Client, dashboard: DashboardEmulator
) -> None:
    """A client on the stream sees reset-initiated then reset-completed with one correlation id."""
    with client.stream("GET", STREAM, headers=_headers()) as response:
        assert 200 == response.status_code
        assert response.headers["Content-Type"].startswith("text/event-stream")
        frames = _frames(response.iter_lines())
        assert {"retry": "1000"} == next(frames)
        correlation_id = dashboard.trigger_reset()
        events = [f for f in _until(frames, "reset-completed") if "event" in f]
    assert [("1", "reset-initiated"), ("2", "reset-completed")] == [
        (e["id"], e["event"]) for e in events
    ]
    data = [json.loads(e["data"]) for e in events]
    assert [correlation_id, correlation_id] == [d["correlation_id"] for d in data]
    assert ["reset-initiated", "reset-completed"] == [d["type"] for d in data]


def test_last_event_id_replays_what_was_missed(
    client: httpx.Client, dashboard: DashboardEmulator
) -> None:
    """A client reconnecting with Last-Event-ID gets every later event, and only those."""
    first = dashboard.trigger_reset()
    second = dashboard.trigger_reset()
    with client.stream("GET", STREAM, headers=_headers(**{"Last-Event-ID": "2"})) as response:
        events = [
            f for f in _until(_frames(response.iter_lines()), "reset-completed") if "event" in f
        ]
    assert [("3", "reset-initiated"), ("4", "reset-completed")] == [
        (e["id"], e["event"]) for e in events
    ]
    assert {second} == {json.loads(e["data"])["correlation_id"] for e in events}
    assert first != second


def test_new_client_without_last_event_id_gets_only_new_events(
    client: httpx.Client, dashboard: DashboardEmulator
) -> None:
    """History is not replayed to a client that did not ask for it."""
    dashboard.trigger_reset()
    with client.stream("GET", STREAM, headers=_headers()) as response:
        frames = _frames(response.iter_lines())
        next(frames)
        dashboard.start_reset()
        event = next(f for f in frames if "event" in f)
    assert ("3", "reset-initiated") == (event["id"], event["event"])


def test_pings_keep_the_stream_alive(client: httpx.Client) -> None:
    """An idle stream sends ": ping" comments at the configured interval."""
    with client.stream("GET", STREAM, headers=_headers()) as response:
        comments = [f[":"] for f in _frames(response.iter_lines(), limit=8) if ":" in f]
    assert ["ping", "ping", "ping"] == comments[:3]


@pytest.mark.parametrize("key", [None, "wrong"])
def test_stream_needs_the_control_key(client: httpx.Client, key: str | None) -> None:
    """No or a wrong X-Control-API-Key: 401, no stream."""
    headers = {} if key is None else {"X-Control-API-Key": key}
    response = client.get(STREAM, headers=headers)
    assert 401 == response.status_code
    assert "X-Control-API-Key missing or invalid" == response.json()["detail"]


def test_stop_ends_open_streams(client: httpx.Client, dashboard: DashboardEmulator) -> None:
    """Stopping the emulator closes every stream, so clients see the outage and reconnect."""
    with client.stream("GET", STREAM, headers=_headers()) as response:
        lines = response.iter_lines()
        assert "retry: 1000" == next(lines)
        dashboard.stop()
        rest = list(_frames(lines, limit=50))
    assert [] == rest


def test_stream_faults_are_injectable(client: httpx.Client, dashboard: DashboardEmulator) -> None:
    """A 503 injected on the stream path is what the client gets instead of the stream."""
    dashboard.inject(Fault(status=503, headers={"Retry-After": "1"}, match=STREAM))
    response = client.get(STREAM, headers=_headers())
    assert (503, "1") == (response.status_code, response.headers["Retry-After"])
    assert [503] == [r.status for r in dashboard.requests_to(STREAM)]


def test_component_reports_are_recorded(client: httpx.Client, dashboard: DashboardEmulator) -> None:
    """POST /api/control/events keeps component, correlation id and body for tests to read."""
    correlation_id = dashboard.start_reset()
    body: dict[str, Any] = {"type": "reset-ack", "status": "ok"}
    response = client.post(
        "/api/control/events",
        json=body,
        headers=_headers(
            **{"X-Component-Id": "deploy-fetcher", "X-Correlation-Id": correlation_id}
        ),
    )
    assert 202 == response.status_code
    [report] = dashboard.reports()
    assert ("deploy-fetcher", correlation_id, "reset-ack", body) == (
        report.component_id,
        report.correlation_id,
        report.type,
        report.body,
    )


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"X-Component-Id": "fetcher"}, {"type": "ack"}, 401),
        (_headers(), {"type": "ack"}, 422),
        (_headers(**{"X-Component-Id": "fetcher"}), {"status": "ok"}, 422),
        (_headers(**{"X-Component-Id": "fetcher"}), [1], 422),
    ],
)
def test_bad_reports_are_refused(
    client: httpx.Client,
    dashboard: DashboardEmulator,
    headers: dict[str, str],
    body: Any,
    status: int,
) -> None:
    """Reports need the control key, an X-Component-Id and a typed JSON body."""
    assert status == client.post("/api/control/events", json=body, headers=headers).status_code
    assert [] == dashboard.reports()


def test_reset_wipes_rows_and_state(client: httpx.Client, dashboard: DashboardEmulator) -> None:
    """A completed reset leaves an empty dashboard, as an operator's reset does."""
    key = {"X-Api-Key": dashboard.api_key}
    row = {
        "deployment_id": "gh-1",
        "service": "api",
        "environment": "prod",
        "status": "success",
        "happened_at": "2026-01-31T12:00:00Z",
    }
    assert 201 == client.post("/api/deployments", json=row, headers=key).status_code
    client.put("/api/fetcher/state/github", json={"state": "s"}, headers=key)
    reset = client.post("/_emulator/control/reset").json()
    assert ([], None) == (dashboard.rows(), dashboard.state("github"))
    assert [reset["correlation_id"]] * 2 == [
        e.data["correlation_id"] for e in dashboard.control_events()
    ]

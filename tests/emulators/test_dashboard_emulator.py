"""The dashboard emulator enforces seed 001's ingest contract and serves reads and fetcher state."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.support import DASHBOARD_KEY

from deploy_fetcher.emulators.dashboard import DashboardEmulator

VALID: dict[str, Any] = {
    "deployment_id": "gh-1",
    "service": "checkout",
    "environment": "prod",
    "status": "in-progress",
    "happened_at": "2026-01-31T12:00:00Z",
}


def _post(client: httpx.Client, body: Any, key: str | None = DASHBOARD_KEY) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Api-Key"] = key
    if isinstance(body, bytes):
        return client.post("/api/deployments", content=body, headers=headers)
    return client.post("/api/deployments", json=body, headers=headers)


def test_valid_event_is_stored_with_location(
    client: httpx.Client, dashboard: DashboardEmulator
) -> None:
    """201 with Location /api/deployments/{id} and the stored row as the body."""
    response = _post(client, VALID)
    assert 201 == response.status_code
    row = response.json()
    assert f"/api/deployments/{row['id']}" == response.headers["Location"]
    assert VALID == {k: v for k, v in row.items() if k not in {"id", "received_at"}}
    assert row == client.get(response.headers["Location"]).json()
    assert [row] == dashboard.rows()


def test_full_event_with_every_optional_field(client: httpx.Client) -> None:
    """All twelve contract fields at their limits are accepted."""
    body = VALID | {
        "deployment_id": "d" * 200,
        "version": "v" * 50,
        "run_url": "https://ci.example.test/" + "r" * 2000,
        "run_number": 7,
        "actor": "a" * 128,
        "ref": "f" * 256,
        "sha": "s" * 128,
        "parent_deployments": [f"p-{i}" for i in range(32)],
        "happened_at": "2026-01-31T12:00:00.123456789+00:00",
    }
    assert 201 == _post(client, body).status_code


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_bad_key_is_401(
    client: httpx.Client, dashboard: DashboardEmulator, key: str | None
) -> None:
    """X-Api-Key missing or invalid: 401 problem+json and nothing stored."""
    response = _post(client, VALID, key=key)
    assert 401 == response.status_code
    assert "application/problem+json" == response.headers["Content-Type"]
    assert [] == dashboard.rows()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"service": None}, "service", "is required"),
        ({"colour": "blue"}, "colour", "unknown field"),
        (
            {"status": "done"},
            "status",
            "must be one of pending, queued, waiting, in-progress, success, failure, cancelled, rejected",
        ),
        ({"status": "Success"}, "status", None),
        ({"run_number": "42"}, "run_number", "must be an integer"),
        ({"run_number": 4.5}, "run_number", "must be an integer"),
        ({"run_number": True}, "run_number", "must be an integer"),
        ({"happened_at": "yesterday"}, "happened_at", None),
        ({"happened_at": "2026-01-31 12:00:00Z"}, "happened_at", None),
        ({"happened_at": "2026-01-31T12:00:00"}, "happened_at", None),
        ({"happened_at": "2026-02-30T12:00:00Z"}, "happened_at", "is not a valid date and time"),
        ({"happened_at": "2026-01-31T14:00:00+02:00"}, "happened_at", "must be in UTC (Z)"),
        ({"happened_at": 1767225600}, "happened_at", None),
        ({"deployment_id": ""}, "deployment_id", "must be at least 1 character(s)"),
        ({"deployment_id": "d" * 201}, "deployment_id", "must be at most 200 characters"),
        ({"service": "s" * 129}, "service", "must be at most 128 characters"),
        ({"environment": "e" * 65}, "environment", "must be at most 64 characters"),
        ({"version": "v" * 51}, "version", "must be at most 50 characters"),
        ({"actor": "a" * 129}, "actor", "must be at most 128 characters"),
        ({"ref": "r" * 257}, "ref", "must be at most 256 characters"),
        ({"sha": "s" * 129}, "sha", "must be at most 128 characters"),
        ({"run_url": "https://x.test/" + "u" * 2048}, "run_url", "must be at most 2048 characters"),
        ({"run_url": "/relative"}, "run_url", "must be an absolute URI"),
        ({"version": 3}, "version", "must be a string"),
        (
            {"parent_deployments": "gh-0"},
            "parent_deployments",
            "must be an array of deployment_id strings",
        ),
        ({"parent_deployments": ["a", "a"]}, "parent_deployments", "items must be unique"),
        ({"parent_deployments": ["ok", 5]}, "parent_deployments[1]", None),
        (
            {"parent_deployments": [f"p{i}" for i in range(33)]},
            "parent_deployments",
            "must hold at most 32 items",
        ),
    ],
)
def test_contract_violations_are_422_with_errors(
    client: httpx.Client,
    dashboard: DashboardEmulator,
    change: dict[str, Any],
    field: str,
    message: str | None,
) -> None:
    """Each broken rule of seed 001 is a 422 problem+json naming the field in errors[]."""
    body = {k: v for k, v in (VALID | change).items() if v is not None}
    response = _post(client, body)
    assert 422 == response.status_code
    assert "application/problem+json" == response.headers["Content-Type"]
    problem = response.json()
    assert 422 == problem["status"]
    fields = {error["field"]: error["message"] for error in problem["errors"]}
    assert field in fields
    if message is not None:
        assert message == fields[field]
    assert [] == dashboard.rows()


def test_every_error_is_listed_at_once(client: httpx.Client) -> None:
    """A payload with several faults gets all of them in errors[], not just the first."""
    response = _post(client, {"service": "", "status": "nope", "extra": 1})
    fields = sorted(error["field"] for error in response.json()["errors"])
    assert ["deployment_id", "environment", "extra", "happened_at", "service", "status"] == fields


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b""])
def test_non_object_bodies_are_422(client: httpx.Client, body: bytes) -> None:
    """A body that is not a JSON object is a validation failure too."""
    response = _post(client, body)
    assert 422 == response.status_code
    assert "" == response.json()["errors"][0]["field"]


def test_string_run_numbers_when_configured() -> None:
    """A newer dashboard takes run_number strings up to 128 characters (and still integers)."""
    with (
        DashboardEmulator(api_key=DASHBOARD_KEY, run_number_type="string") as emulator,
        httpx.Client(base_url=emulator.url(), timeout=5.0) as client,
    ):
        assert 201 == _post(client, VALID | {"run_number": "2026.01.31-7"}).status_code
        assert 201 == _post(client, VALID | {"run_number": 7}).status_code
        too_long = _post(client, VALID | {"run_number": "9" * 129})
        assert 422 == too_long.status_code
        assert [
            {"field": "run_number", "message": "must be 1 to 128 characters"}
        ] == too_long.json()["errors"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("in-progress", 201),
        ("success", 201),
        ("failure", 201),
        ("pending", 422),
        ("queued", 422),
        ("waiting", 422),
        ("cancelled", 422),
        ("rejected", 422),
    ],
)
def test_seed_001_mode_takes_three_statuses(status: str, code: int) -> None:
    """status_set="three" is seed 001's dashboard: any status but its three is a 422 naming status."""
    with (
        DashboardEmulator(api_key=DASHBOARD_KEY, status_set="three") as emulator,
        httpx.Client(base_url=emulator.url(), timeout=5.0) as client,
    ):
        response = _post(client, VALID | {"status": status})
    assert code == response.status_code
    if code == 422:
        assert [
            {"field": "status", "message": "must be one of in-progress, success, failure"}
        ] == response.json()["errors"]


def test_eight_statuses_by_default(client: httpx.Client) -> None:
    """Without a mode the emulator is a newer dashboard that takes every canonical status."""
    for status in ("pending", "queued", "waiting", "cancelled", "rejected"):
        assert 201 == _post(client, VALID | {"status": status}).status_code


def test_append_only_a_retried_post_is_another_row(
    client: httpx.Client, dashboard: DashboardEmulator
) -> None:
    """No dedup: posting the same event twice stores two rows with distinct ids."""
    first = _post(client, VALID).json()
    second = _post(client, VALID).json()
    assert first["id"] != second["id"]
    assert 2 == len(dashboard.rows())


def test_list_filters_by_service_and_environment(client: httpx.Client) -> None:
    """GET /api/deployments filters on service, environment and deployment_id."""
    _post(client, VALID)
    _post(client, VALID | {"environment": "dev"})
    _post(client, VALID | {"service": "billing", "deployment_id": "gh-2"})
    listed = client.get("/api/deployments", params={"service": "checkout"}).json()
    assert 2 == listed["count"]
    prod = client.get(
        "/api/deployments", params={"service": "checkout", "environment": "prod"}
    ).json()
    assert [("checkout", "prod")] == [(r["service"], r["environment"]) for r in prod["items"]]
    by_id = client.get("/api/deployments", params={"deployment_id": "gh-2"}).json()
    assert ["billing"] == [r["service"] for r in by_id["items"]]


def test_matrix_shows_latest_by_happened_at(client: httpx.Client) -> None:
    """The matrix keeps, per service and environment, the row with the latest happened_at."""
    _post(client, VALID | {"status": "success", "happened_at": "2026-01-31T12:05:00Z"})
    _post(client, VALID | {"status": "in-progress", "happened_at": "2026-01-31T12:00:00Z"})
    _post(client, VALID | {"environment": "dev", "status": "failure"})
    cells = client.get("/api/matrix").json()["cells"]
    assert [("checkout", "dev", "failure"), ("checkout", "prod", "success")] == [
        (c["service"], c["environment"], c["deployment"]["status"]) for c in cells
    ]


def test_unknown_row_is_404(client: httpx.Client) -> None:
    """A Location that was never handed out is 404."""
    assert 404 == client.get("/api/deployments/999").status_code


def test_fetcher_state_round_trip(client: httpx.Client, dashboard: DashboardEmulator) -> None:
    """PUT stores an opaque string per adapter; GET returns it; 404 before the first PUT."""
    headers = {"X-Api-Key": DASHBOARD_KEY}
    assert 404 == client.get("/api/fetcher/state/github", headers=headers).status_code
    state = '{"cursor": "2026-01-31T12:00:00Z"}'
    put = client.put("/api/fetcher/state/github", json={"state": state}, headers=headers)
    assert 200 == put.status_code
    got = client.get("/api/fetcher/state/github", headers=headers).json()
    assert ("github", state) == (got["adapter"], got["state"])
    assert state == dashboard.state("github")


def test_fetcher_state_needs_the_key(client: httpx.Client) -> None:
    """State reads and writes without X-Api-Key are 401."""
    assert 401 == client.get("/api/fetcher/state/github").status_code
    assert 401 == client.put("/api/fetcher/state/github", json={"state": "x"}).status_code


@pytest.mark.parametrize(
    "body", [{"state": "x" * 8193}, {"state": 5}, {"cursor": "x"}, "just a string"]
)
def test_fetcher_state_limits(client: httpx.Client, body: Any) -> None:
    """A state over 8 KiB, or not a string under "state", is 422."""
    response = client.put(
        "/api/fetcher/state/github", json=body, headers={"X-Api-Key": DASHBOARD_KEY}
    )
    assert 422 == response.status_code
    assert "state" == response.json()["errors"][0]["field"]


def test_fetcher_state_of_exactly_8_kib_is_kept(client: httpx.Client) -> None:
    """The limit is inclusive: 8192 bytes fit."""
    body = {"state": "é" * 4096}
    assert (
        200
        == client.put(
            "/api/fetcher/state/x", json=body, headers={"X-Api-Key": DASHBOARD_KEY}
        ).status_code
    )


def test_injected_503_carries_retry_after(
    client: httpx.Client, dashboard: DashboardEmulator
) -> None:
    """Fault injection from the base server applies to ingest."""
    from deploy_fetcher.emulators._server import Fault

    dashboard.inject(Fault(status=503, headers={"Retry-After": "3"}, match="/api/deployments"))
    response = _post(client, VALID)
    assert (503, "3") == (response.status_code, response.headers["Retry-After"])
    assert 201 == _post(client, VALID).status_code

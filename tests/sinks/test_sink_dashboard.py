"""The Deployment Dashboard sink against the dashboard emulator: wire format, outcomes, check()."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks import Delivered, Rejected, Retry, SinkContext, Unauthorized
from deploy_fetcher.sinks.dashboard import DashboardConfig, DashboardSink, mapping

Make = Callable[..., DeployEvent]


def _config(emulator: DashboardEmulator, **keys: Any) -> DashboardConfig:
    values: dict[str, Any] = {
        "name": "dash",
        "type": "deployment-dashboard",
        "url": emulator.url(),
        "api_key": emulator.api_key,
    }
    values.update(keys)
    return DashboardConfig(**values)


@pytest.fixture
def sink(dashboard: DashboardEmulator, context: SinkContext) -> Iterator[DashboardSink]:
    sink = DashboardSink(_config(dashboard), context)
    yield sink
    sink.close()


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in {"id", "received_at"}}


def test_event_is_posted_with_contract_fields_only(
    dashboard: DashboardEmulator, sink: DashboardSink, make_event: Make
) -> None:
    """A full event arrives as exactly the twelve contract fields, internal ones left out."""
    event = make_event(parent_deployments=["gh-900"])
    assert Delivered(status_code=201) == sink.send(event)
    expected = {
        "deployment_id": "gh-1001",
        "service": "checkout",
        "environment": "prod",
        "status": "success",
        "happened_at": "2026-01-31T12:00:00Z",
        "version": "v1.2.3",
        "run_url": "https://github.com/octo/checkout/actions/runs/1001",
        "run_number": 42,
        "actor": "octocat",
        "ref": "refs/heads/main",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "parent_deployments": ["gh-900"],
    }
    assert [expected] == [_stored(row) for row in dashboard.rows()]


def test_headers_carry_key_type_reporter_and_user_agent(
    dashboard: DashboardEmulator, sink: DashboardSink, make_event: Make
) -> None:
    """X-Api-Key, JSON content type, X-Progress-Reporter per provider and the User-Agent are sent."""
    sink.send(make_event(provider="gitlab"))
    headers = dashboard.requests_to("/api/deployments$", "POST")[-1].headers
    assert dashboard.api_key == headers["x-api-key"]
    assert "application/json" == headers["content-type"]
    assert "deploy-fetcher/gitlab" == headers["x-progress-reporter"]
    assert "deploy-fetcher/test" == headers["user-agent"]


def test_minimal_event_sends_only_required_fields(
    dashboard: DashboardEmulator, sink: DashboardSink
) -> None:
    """Absent optional fields are left out rather than sent as null."""
    event = DeployEvent(
        deployment_id="ado-7",
        service="api",
        environment="dev",
        status="in-progress",
        happened_at="2026-02-01T08:00:00.250Z",
    )
    assert Delivered(201) == sink.send(event)
    assert [
        {
            "deployment_id": "ado-7",
            "service": "api",
            "environment": "dev",
            "status": "in-progress",
            "happened_at": "2026-02-01T08:00:00.250Z",
        }
    ] == [_stored(row) for row in dashboard.rows()]


def test_events_share_one_keep_alive_connection(
    dashboard: DashboardEmulator, sink: DashboardSink, make_event: Make
) -> None:
    """A sink reuses its connection instead of opening one per event."""
    for number in range(5):
        assert Delivered(201) == sink.send(make_event(deployment_id=f"gh-{number}"))
    assert 1 == dashboard.connections_opened


def test_reporter_without_provider_is_the_product_name(make_event: Make) -> None:
    """An event of unknown origin is still attributed to the fetcher."""
    assert "deploy-fetcher" == mapping.headers(make_event(provider=""), "k")["X-Progress-Reporter"]


def test_run_number_as_string_for_newer_dashboards(context: SinkContext, make_event: Make) -> None:
    """run_number_type: string sends "42", which a newer dashboard stores as given."""
    emulator = DashboardEmulator(api_key="newer-dashboard-key", run_number_type="string")
    emulator.start()
    sink = DashboardSink(_config(emulator, run_number_type="string"), context)
    outcome = sink.send(make_event())
    sink.close()
    emulator.stop()
    assert Delivered(201) == outcome
    assert "42" == emulator.rows()[0]["run_number"]


def test_422_is_rejected_with_the_problem_body(
    dashboard: DashboardEmulator, context: SinkContext, make_event: Make
) -> None:
    """A string run_number sent to a seed-001 dashboard is dead-lettered with its errors[]."""
    sink = DashboardSink(_config(dashboard, run_number_type="string"), context)
    outcome = sink.send(make_event())
    sink.close()
    assert isinstance(outcome, Rejected)
    assert 422 == outcome.status_code
    problem = json.loads(outcome.reason.split(": ", 1)[1])
    assert [{"field": "run_number", "message": "must be an integer"}] == problem["errors"]
    assert [] == dashboard.rows()


def test_bad_key_is_unauthorized_and_the_key_stays_secret(
    dashboard: DashboardEmulator, context: SinkContext, make_event: Make
) -> None:
    """401 pauses the sink; neither key appears in the reason."""
    sink = DashboardSink(_config(dashboard, api_key="wrong-key-value"), context)
    outcome = sink.send(make_event())
    sink.close()
    assert isinstance(outcome, Unauthorized)
    assert 401 == outcome.status_code
    assert "wrong-key-value" not in outcome.reason
    assert dashboard.api_key not in outcome.reason
    assert [] == dashboard.rows()


def test_503_with_retry_after_is_retried_after_that_delay(
    dashboard: DashboardEmulator, sink: DashboardSink, make_event: Make
) -> None:
    """An overloaded dashboard's Retry-After reaches the delivery worker; the next try lands."""
    dashboard.inject(Fault(status=503, headers={"Retry-After": "5"}, match="/api/deployments"))
    outcome = sink.send(make_event())
    assert Retry(reason="HTTP 503 Service Unavailable", after=5.0, status_code=503) == outcome
    assert Delivered(201) == sink.send(make_event())
    assert 1 == len(dashboard.rows())


def test_429_is_retried(
    dashboard: DashboardEmulator, sink: DashboardSink, make_event: Make
) -> None:
    """Throttling is a retry, not a rejection."""
    dashboard.inject(Fault(status=429, headers={"Retry-After": "2"}))
    outcome = sink.send(make_event())
    assert isinstance(outcome, Retry)
    assert 2.0 == outcome.after


def test_dropped_connection_is_retried(
    dashboard: DashboardEmulator, sink: DashboardSink, make_event: Make
) -> None:
    """A connection closed without an answer is a retry (the POST may or may not have landed)."""
    dashboard.inject(Fault(kind="drop", match="/api/deployments"))
    assert isinstance(sink.send(make_event()), Retry)


def test_refused_connection_is_retried_then_delivered_after_restart(
    dashboard: DashboardEmulator, sink: DashboardSink, make_event: Make
) -> None:
    """A stopped dashboard refuses connections (even pooled ones); back on its port, it accepts."""
    assert Delivered(201) == sink.send(make_event())
    dashboard.stop()
    outcome = sink.send(make_event())
    assert isinstance(outcome, Retry)
    assert outcome.reason.startswith(("connection failed", "malformed answer"))
    dashboard.start()
    assert Delivered(201) == sink.send(make_event())
    assert 2 == len(dashboard.rows())


def test_check_accepts_a_good_key(sink: DashboardSink, dashboard: DashboardEmulator) -> None:
    """check() proves URL and key with an authenticated read and writes nothing."""
    result = sink.check()
    assert (True, True) == (result.ok, result.verified)
    assert [] == dashboard.rows()
    assert [] == dashboard.requests_to("/api/deployments", "POST")


def test_check_names_a_bad_key(dashboard: DashboardEmulator, context: SinkContext) -> None:
    """A rejected key is a clear failure that does not print the key."""
    sink = DashboardSink(_config(dashboard, api_key="wrong-key-value"), context)
    result = sink.check()
    sink.close()
    assert not result.ok
    assert "rejected the API key (HTTP 401)" in result.message
    assert "wrong-key-value" not in result.message


def test_check_names_an_unreachable_dashboard(
    dashboard: DashboardEmulator, sink: DashboardSink
) -> None:
    """A dashboard that is down fails the check with the reason."""
    dashboard.stop()
    result = sink.check()
    assert not result.ok
    assert "cannot reach the dashboard at http://127.0.0.1:" in result.message


def test_api_key_file_is_read(
    tmp_path: Path, dashboard: DashboardEmulator, context: SinkContext, make_event: Make
) -> None:
    """api_key_file (a Docker/Kubernetes secret) works like api_key."""
    secret = tmp_path / "key"
    secret.write_text(dashboard.api_key + "\n")
    config = DashboardConfig(
        name="dash", type="deployment-dashboard", url=dashboard.url(), api_key_file=str(secret)
    )
    sink = DashboardSink(config, context)
    assert Delivered(201) == sink.send(make_event())
    sink.close()


def test_config_repr_hides_the_key(dashboard: DashboardEmulator) -> None:
    """The key never shows in a repr or a dump of the configuration."""
    config = _config(dashboard)
    assert dashboard.api_key not in repr(config)
    assert dashboard.api_key not in config.model_dump_json()

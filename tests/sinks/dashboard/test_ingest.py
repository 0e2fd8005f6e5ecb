"""The Deployment Dashboard sink against the dashboard emulator: wire format, outcomes, check()."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.emulators.receiver import ReceiverEmulator
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks import Delivered, Rejected, Retry, SinkContext, Unauthorized
from deploy_fetcher.sinks.dashboard import DashboardConfig, DashboardSink, mapping
from deploy_fetcher.sinks.dashboard.statuses import status_set_key
from deploy_fetcher.sinks.http import display_url
from deploy_fetcher.store.sqlite import SqliteStore

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


def _config_at(url: str, **keys: Any) -> DashboardConfig:
    return DashboardConfig(
        name="dash", type="deployment-dashboard", url=url, api_key="key-0123456789", **keys
    )


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
    """check() proves the key on the ingest endpoint with an empty event, which stores nothing."""
    result = sink.check()
    assert (True, True) == (result.ok, result.verified)
    assert [] == dashboard.rows()
    posts = dashboard.requests_to("/api/deployments", "POST")
    assert [(422, True), (401, False)] == [(r.status, "x-api-key" in r.headers) for r in posts]


def test_check_names_a_bad_key(dashboard: DashboardEmulator, context: SinkContext) -> None:
    """A rejected key is a clear failure that does not print the key."""
    sink = DashboardSink(_config(dashboard, api_key="wrong-key-value"), context)
    result = sink.check()
    sink.close()
    assert not result.ok
    assert "rejected the API key (HTTP 401)" in result.message
    assert "wrong-key-value" not in result.message


def test_check_fails_where_no_dashboard_answers(
    dashboard: DashboardEmulator, context: SinkContext
) -> None:
    """A wrong URL (404 for the ingest path and the state slot alike) fails the check."""
    sink = DashboardSink(_config(dashboard, url=dashboard.url() + "/not-the-dashboard"), context)
    result = sink.check()
    sink.close()
    assert not result.ok
    assert "no Deployment Dashboard ingest endpoint at http://127.0.0.1:" in result.message
    assert "(HTTP 404)" in result.message


def test_check_fails_on_a_server_that_stores_anything(context: SinkContext) -> None:
    """A server answering 2xx to an empty event is not the dashboard's contract."""
    with ReceiverEmulator(status=201) as other:
        sink = DashboardSink(_config_at(other.url()), context)
        result = sink.check()
        sink.close()
    assert not result.ok
    assert "stored an empty event (HTTP 201)" in result.message


def test_check_cannot_verify_a_key_the_server_never_checks(context: SinkContext) -> None:
    """A server that refuses an empty event with 422 whatever the key leaves the key unverified."""
    with ReceiverEmulator(status=422, body={"errors": []}) as other:
        sink = DashboardSink(_config_at(other.url()), context)
        result = sink.check()
        sink.close()
    assert (True, False) == (result.ok, result.verified)
    assert "cannot be verified" in result.message


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


# -- which statuses the dashboard takes ------------------------------------------------------------
@pytest.fixture
def seed_001() -> Iterator[DashboardEmulator]:
    emulator = DashboardEmulator(api_key="seed-001-key-0123", status_set="three")
    emulator.start()
    yield emulator
    emulator.stop()


def _answers(emulator: DashboardEmulator) -> list[int]:
    return [r.status for r in emulator.requests_to("/api/deployments$", "POST")]


def _stored_statuses(emulator: DashboardEmulator) -> list[str]:
    return [row["status"] for row in emulator.rows()]


def _with_values(store: SqliteStore) -> SinkContext:
    return SinkContext(metrics=Metrics(), user_agent="test", values=store)


def test_auto_folds_statuses_after_a_422_naming_status(
    seed_001: DashboardEmulator, store: SqliteStore, make_event: Make
) -> None:
    """A seed-001 dashboard refusing "pending" switches the sink to three statuses, kept in the store."""
    sink = DashboardSink(_config(seed_001), _with_values(store))
    assert ("eight", None) == (sink.status_set, store.get_value(status_set_key("dash")))
    with capture_logs() as logs:
        first = sink.send(make_event(status="pending"))
        later = [sink.send(make_event(status=s)) for s in ("waiting", "cancelled", "rejected")]
    sink.close()
    assert [Delivered(201)] * 4 == [first, *later]
    assert [422, 201, 201, 201, 201] == _answers(seed_001)
    assert ["in-progress", "in-progress", "failure", "failure"] == _stored_statuses(seed_001)
    switched = [e for e in logs if e["event"] == "dashboard.status_set_switched"]
    assert [("pending", "three")] == [(e["refused"], e["status_set"]) for e in switched]
    learned = json.loads(store.get_value(status_set_key("dash")) or "null")
    assert ("three", display_url(seed_001.url())) == (learned.pop("status_set"), learned.pop("url"))
    assert ["learned_at"] == list(learned)
    assert "three" == sink.status_set


def test_the_learned_status_set_survives_a_restart(
    seed_001: DashboardEmulator, store: SqliteStore, make_event: Make
) -> None:
    """A new sink on the same store sends three statuses at once: no 422 after a restart."""
    first = DashboardSink(_config(seed_001), _with_values(store))
    first.send(make_event(status="queued"))
    first.close()
    again = DashboardSink(_config(seed_001), _with_values(store))
    assert "three" == again.status_set
    assert Delivered(201) == again.send(make_event(status="pending"))
    again.close()
    assert [422, 201, 201] == _answers(seed_001)
    assert ["in-progress", "in-progress"] == _stored_statuses(seed_001)


def test_another_dashboard_url_is_learned_anew(
    seed_001: DashboardEmulator, store: SqliteStore, make_event: Make
) -> None:
    """What one dashboard refused is not assumed of another URL given to the same sink name."""
    first = DashboardSink(_config(seed_001), _with_values(store))
    first.send(make_event(status="queued"))
    first.close()
    newer = DashboardEmulator(api_key=seed_001.api_key)
    newer.start()
    sink = DashboardSink(_config(newer), _with_values(store))
    outcome = sink.send(make_event(status="queued"))
    sink.close()
    newer.stop()
    assert ("eight", Delivered(201)) == (sink.status_set, outcome)
    assert ([201], ["queued"]) == (_answers(newer), _stored_statuses(newer))


def test_auto_sends_eight_statuses_to_a_newer_dashboard(
    dashboard: DashboardEmulator, store: SqliteStore, make_event: Make
) -> None:
    """A dashboard that takes the eight statuses gets them as they are."""
    sink = DashboardSink(_config(dashboard), _with_values(store))
    for status in ("pending", "queued", "waiting", "cancelled", "rejected"):
        assert Delivered(201) == sink.send(make_event(status=status))
    sink.close()
    assert ["pending", "queued", "waiting", "cancelled", "rejected"] == [
        row["status"] for row in dashboard.rows()
    ]
    assert "eight" == sink.status_set


def test_a_422_naming_another_field_is_not_a_status_refusal(
    store: SqliteStore, make_event: Make
) -> None:
    """A pending event refused for its run_number alone is rejected once; nothing is learned."""
    refusal = {"errors": [{"pointer": "#/run_number", "detail": "must be an integer"}]}
    with ReceiverEmulator(status=422, body=refusal) as other:
        sink = DashboardSink(_config_at(other.url()), _with_values(store))
        with capture_logs() as logs:
            outcome = sink.send(make_event(status="pending"))
        sink.close()
        posts = other.received("/api/deployments")
    assert isinstance(outcome, Rejected)
    assert 422 == outcome.status_code
    assert ["pending"] == [r.json()["status"] for r in posts]
    assert ("eight", None) == (sink.status_set, store.get_value(status_set_key("dash")))
    assert [] == [e for e in logs if e["event"] == "dashboard.status_set_switched"]


def test_a_422_naming_status_for_a_status_of_the_three_is_not_a_switch(
    store: SqliteStore, make_event: Make
) -> None:
    """in-progress refused for its status is the dashboard's problem, not an eight-status refusal."""
    refusal = {"errors": [{"pointer": "#/status", "detail": "bad"}]}
    with ReceiverEmulator(status=422, body=refusal) as other:
        sink = DashboardSink(_config_at(other.url()), _with_values(store))
        outcome = sink.send(make_event(status="in-progress"))
        sink.close()
        posts = other.received("/api/deployments")
    assert (Rejected, 422) == (type(outcome), outcome.status_code)
    assert ["in-progress"] == [r.json()["status"] for r in posts]
    assert ("eight", None) == (sink.status_set, store.get_value(status_set_key("dash")))


def test_explicit_eight_dead_letters_a_refused_status(
    seed_001: DashboardEmulator, store: SqliteStore, make_event: Make
) -> None:
    """status_set: eight is the operator's word: a refused status is a rejection, not a switch."""
    sink = DashboardSink(_config(seed_001, status_set="eight"), _with_values(store))
    outcome = sink.send(make_event(status="pending"))
    sink.close()
    assert isinstance(outcome, Rejected)
    assert ([422], []) == (_answers(seed_001), _stored_statuses(seed_001))


def test_explicit_three_folds_without_asking(
    seed_001: DashboardEmulator, context: SinkContext, make_event: Make
) -> None:
    """status_set: three sends the original contract's statuses from the first POST."""
    sink = DashboardSink(_config(seed_001, status_set="three"), context)
    assert Delivered(201) == sink.send(make_event(status="rejected"))
    sink.close()
    assert ([201], ["failure"]) == (_answers(seed_001), _stored_statuses(seed_001))


@pytest.mark.parametrize(
    "errors",
    [
        [{"field": "status", "message": "bad"}],
        [{"pointer": "#/status", "detail": "bad"}],
        [{"loc": ["body", "status"], "msg": "bad"}],
        [{"path": "$.status"}],
        [{"name": "run_number"}, {"property": "status"}],
    ],
)
def test_problem_errors_name_status_in_any_usual_spelling(errors: list[dict[str, Any]]) -> None:
    """An errors[] entry may name its field in the ways problem documents commonly do."""
    assert mapping.names_field(json.dumps({"errors": errors}).encode(), "status")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"errors": "status"}', b'{"errors": [{"field": "run_number"}]}'],
)
def test_problem_without_a_status_entry_names_nothing(body: bytes) -> None:
    """A body that is not a problem document, or names other fields, is no status refusal."""
    assert not mapping.names_field(body, "status")


@pytest.mark.parametrize(
    "body",
    [
        b'{"errors": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"{" + b'"a":{' * 50_000 + b"}" * 50_001,
        b'{"errors": ' + b"[" * 4096,
    ],
    ids=["nested-lists", "nested-objects", "nested-and-cut"],
)
def test_a_hostile_problem_document_names_nothing(body: bytes) -> None:
    """Deeply nested 422 bodies (whole, or cut at the bytes read) name nothing, without an error."""
    assert not mapping.names_field(body, "status")


def test_a_deeply_nested_422_is_rejected_not_raised(store: SqliteStore, make_event: Make) -> None:
    """A dashboard answering 422 with JSON nested 100 000 deep dead-letters the event; no switch."""
    nested = '{"errors": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with ReceiverEmulator(status=201) as other:
        other.inject(Fault(status=422, body=nested, match="/api/deployments"))
        sink = DashboardSink(_config_at(other.url()), _with_values(store))
        outcome = sink.send(make_event(status="pending"))
        sink.close()
    assert (Rejected, 422, "eight") == (type(outcome), outcome.status_code, sink.status_set)

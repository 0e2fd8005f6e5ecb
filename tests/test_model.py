"""The canonical event mirrors the Deployment Dashboard's ingest contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

import deploy_fetcher
from deploy_fetcher.model import DeployEvent, Status, format_rfc3339, parse_timestamp


def _event(**overrides):
    fields = {
        "deployment_id": "gh-1",
        "service": "checkout",
        "environment": "prod",
        "status": "success",
        "happened_at": "2026-03-01T10:00:00Z",
    }
    fields.update(overrides)
    return DeployEvent(**fields)


def test_eight_statuses_match_the_dashboard_enum():
    """The Status enum holds exactly the dashboard's eight values."""
    expected = {
        "pending",
        "queued",
        "waiting",
        "in-progress",
        "success",
        "failure",
        "cancelled",
        "rejected",
    }
    assert expected == {s.value for s in Status}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z"),
        ("2026-03-01T12:00:00+02:00", "2026-03-01T10:00:00Z"),
        ("2026-03-01T10:00:00.1234567Z", "2026-03-01T10:00:00.123Z"),
        ("2026-03-01T05:00:00.5-05:00", "2026-03-01T10:00:00.500Z"),
    ],
)
def test_happened_at_is_normalised_to_rfc3339_utc_with_z(raw, expected):
    """Any offset or precision the CI APIs send becomes RFC 3339 UTC with Z, milliseconds at most."""
    assert expected == _event(happened_at=raw).contract_payload()["happened_at"]


def test_naive_timestamps_are_refused():
    """A timestamp without an offset is an error, never silently local time."""
    with pytest.raises(ValidationError, match="time zone"):
        _event(happened_at="2026-03-01T10:00:00")


def test_contract_payload_has_only_contract_fields():
    """Internal fields (provider, source, metadata) never reach the dashboard's wire."""
    event = _event(provider="github", source="gh", metadata={"repo": "o/r"}, run_number=7)
    payload = event.contract_payload()
    assert {
        "deployment_id",
        "service",
        "environment",
        "status",
        "happened_at",
        "run_number",
    } == set(payload)
    assert payload["run_number"] == 7
    assert event.contract_payload(run_number_as_string=True)["run_number"] == "7"


def test_over_long_optional_values_are_truncated_and_logged():
    """A 60-character version is cut to the contract's 50 with a log line, not rejected."""
    with capture_logs() as logs:
        event = _event(version="v" * 60)
    assert event.version == "v" * 50
    assert [(log["event"], log["field"]) for log in logs] == [("event.field_truncated", "version")]


def test_required_fields_are_validated_strictly():
    """An empty service or an unknown status is a mapping bug: refused."""
    with pytest.raises(ValidationError):
        _event(service="")
    with pytest.raises(ValidationError):
        _event(status="done")


def test_parents_are_deduplicated_capped_and_never_self():
    """parent_deployments keeps order, drops duplicates, keeps at most 32, and refuses itself."""
    event = _event(parent_deployments=["a", "b", "a"])
    assert event.parent_deployments == ("a", "b")
    many = _event(parent_deployments=[f"p{i}" for i in range(40)])
    assert len(many.parent_deployments) == 32
    with pytest.raises(ValidationError, match="own parent"):
        _event(parent_deployments=["gh-1"])


def test_json_round_trip_keeps_the_dedup_key():
    """An event read back from the outbox equals the one stored, so its dedup key is stable."""
    event = _event(happened_at="2026-03-01T10:00:00.123456Z", metadata={"repo": "o/r"})
    assert event == DeployEvent.from_json(event.to_json())
    assert event.dedup_key == ("gh-1", "success", "2026-03-01T10:00:00.123Z")


def test_parse_and_format_timestamps():
    """Helpers give aware UTC datetimes and Z-suffixed strings."""
    parsed = parse_timestamp("2026-01-02T03:04:05+01:00")
    assert datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC) == parsed
    assert format_rfc3339(parsed) == "2026-01-02T02:04:05Z"


def test_public_surface_is_complete():
    """Everything in __all__ exists, and the plugin interfaces are part of it."""
    for name in deploy_fetcher.__all__:
        assert hasattr(deploy_fetcher, name), name
    assert {"DeployEvent", "Provider", "Sink", "Page", "Status"} <= set(deploy_fetcher.__all__)

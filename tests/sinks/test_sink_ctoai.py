"""The CTO.ai sink: the events API's deployment shape and the status translation table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from deploy_fetcher.emulators.receiver import ReceiverEmulator
from deploy_fetcher.model import DeployEvent, Status
from deploy_fetcher.sinks import Delivered, SinkContext
from deploy_fetcher.sinks.ctoai import CtoAiConfig, CtoAiSink, mapping

Make = Callable[..., DeployEvent]
TOKEN = "ctoai-token-0987654321"
TEAM = "02f71e12-fa48-45aa-a1f2-956b425e5bee"


def _config(**keys: Any) -> CtoAiConfig:
    return CtoAiConfig(name="insights", type="ctoai", api_key=TOKEN, team_id=TEAM, **keys)


def test_default_url_is_the_events_api() -> None:
    """Without a url the sink posts to CTO.ai's Workflow Events API."""
    assert "https://events.cto.ai" == _config().url


def test_deployment_event_on_the_wire(
    receiver: ReceiverEmulator, context: SinkContext, make_event: Make
) -> None:
    """POST {url}/ with a bearer token and the fields of CTO.ai's own CI templates."""
    sink = CtoAiSink(_config(url=receiver.url(), image="ghcr.io/octo/checkout:v1.2.3"), context)
    assert Delivered(201) == sink.send(make_event())
    sink.close()
    [request] = receiver.received()
    assert ("POST", "/") == (request.method, request.path)
    assert f"Bearer {TOKEN}" == request.header("Authorization")
    assert "application/json" == request.header("Content-Type")
    assert "deploy-fetcher-github" == request.header("x-ops-mechanism")
    assert {
        "event_name": "deployment",
        "event_action": "success",
        "team_id": TEAM,
        "repo": "octo/checkout",
        "branch": "main",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "environment": "prod",
        "image": "ghcr.io/octo/checkout:v1.2.3",
        "meta": {
            "user": "octocat",
            "origin": "deploy-fetcher",
            "deployment_id": "gh-1001",
            "service": "checkout",
            "status": "success",
            "run_url": "https://github.com/octo/checkout/actions/runs/1001",
        },
    } == request.json()


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("pending", "started"),
        ("queued", "started"),
        ("waiting", "blocked"),
        ("in-progress", "progressing"),
        ("success", "success"),
        ("failure", "failure"),
        ("cancelled", "failure"),
        ("rejected", "failure"),
    ],
)
def test_status_translation_table(make_event: Make, status: str, action: str) -> None:
    """Each of the eight statuses becomes one of CTO.ai's five deployment states."""
    assert action == mapping.body(make_event(status=status), team_id=TEAM)["event_action"]


def test_status_map_overrides_the_table(make_event: Make) -> None:
    """status_map replaces single entries; the rest of the table stays."""
    overrides = _config(status_map={"cancelled": "blocked"}).status_map
    assert "blocked" == mapping.action(Status.CANCELLED, overrides)
    assert "failure" == mapping.action(Status.REJECTED, overrides)


def test_status_map_refuses_unknown_actions() -> None:
    """A typo in status_map fails when the configuration loads."""
    with pytest.raises(ValidationError, match=r"status_map\.cancelled"):
        _config(status_map={"cancelled": "canceled"})


@pytest.mark.parametrize(
    ("ref", "metadata", "expected"),
    [
        ("refs/heads/release/1.2", {}, "release/1.2"),
        ("main", {}, "main"),
        ("refs/tags/v1.2.3", {}, None),
        ("refs/pull/7/merge", {}, None),
        (None, {}, None),
        ("refs/tags/v1.2.3", {"branch": "main"}, "main"),
        ("v1.2.3", {"tag": "v1.2.3"}, None),
        ("refs/tags/v1.2.3", {"branch": "v1.2.3"}, None),
    ],
)
def test_branch_from_metadata_or_ref(
    make_event: Make, ref: str | None, metadata: dict[str, str], expected: str | None
) -> None:
    """The branch comes from the adapter's metadata, else a branch ref; tags name no branch."""
    assert expected == mapping.branch(make_event(ref=ref, metadata=metadata))


@pytest.mark.parametrize(
    ("provider", "mechanism"),
    [
        ("gitlab", "deploy-fetcher-gitlab"),
        ("azure-devops", "deploy-fetcher-azure-devops"),
        ("", "deploy-fetcher"),
    ],
)
def test_mechanism_names_the_fetcher_and_the_ci(
    make_event: Make, provider: str, mechanism: str
) -> None:
    """x-ops-mechanism says which integration sent the event, as CTO.ai's own integrations do."""
    assert mechanism == mapping.headers(make_event(provider=provider), TOKEN)["x-ops-mechanism"]


def test_absent_values_are_null_and_repo_falls_back_to_service(make_event: Make) -> None:
    """Unknown commit, image and user are null, as CTO.ai's GitHub Action sends them."""
    event = make_event(sha=None, actor=None, ref=None, run_url=None, metadata={})
    body = mapping.body(event, team_id=TEAM)
    assert ("checkout", None, None, None, None) == (
        body["repo"],
        body["branch"],
        body["commit"],
        body["image"],
        body["meta"]["user"],
    )


def test_image_from_metadata_wins_over_config(make_event: Make) -> None:
    """An adapter that knows the image beats the configured default."""
    event = make_event(metadata={"image": "ghcr.io/octo/checkout@sha256:abc"})
    assert (
        "ghcr.io/octo/checkout@sha256:abc" == mapping.body(event, team_id=TEAM, image="x")["image"]
    )

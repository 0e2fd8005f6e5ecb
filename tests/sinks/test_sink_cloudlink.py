"""The Cloudlink sink: seed 000's wire format, successful deploys by default, service mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deploy_fetcher.emulators.receiver import ReceiverEmulator
from deploy_fetcher.engine.select import select
from deploy_fetcher.model import DeployEvent, Status
from deploy_fetcher.sinks import Delivered, SinkContext, Unauthorized
from deploy_fetcher.sinks.cloudlink import CloudlinkConfig, CloudlinkSink, mapping

Make = Callable[..., DeployEvent]
KEY = "cl-key-abcdef123456"


def _config(url: str, **keys: Any) -> CloudlinkConfig:
    return CloudlinkConfig(name="cost", type="cloudlink", url=url, api_key=KEY, **keys)


def test_deploy_record_on_the_wire(
    receiver: ReceiverEmulator, context: SinkContext, make_event: Make
) -> None:
    """POST {url}/deploys with a bearer key and seed 000's fields, metadata linking the run."""
    sink = CloudlinkSink(_config(receiver.url()), context)
    assert Delivered(201) == sink.send(make_event())
    sink.close()
    [request] = receiver.received()
    assert ("POST", "/deploys") == (request.method, request.path)
    assert f"Bearer {KEY}" == request.header("Authorization")
    assert "application/json" == request.header("Content-Type")
    assert {
        "service": "checkout",
        "version": "v1.2.3",
        "environment": "prod",
        "source": "github-actions",
        "metadata": {
            "deployment_id": "gh-1001",
            "run_url": "https://github.com/octo/checkout/actions/runs/1001",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "actor": "octocat",
            "ref": "refs/heads/main",
            "repo": "octo/checkout",
            "status": "success",
        },
    } == request.json()


@pytest.mark.parametrize(
    ("provider", "source"),
    [
        ("github", "github-actions"),
        ("gitlab", "gitlab-ci"),
        ("azure-devops", "azure-pipelines"),
        ("scripted", "scripted"),
    ],
)
def test_source_names_the_ci_system(make_event: Make, provider: str, source: str) -> None:
    """Cloudlink's source is its own CI identifier, or the provider name for others."""
    assert source == mapping.body(make_event(provider=provider))["source"]


def test_version_falls_back_to_the_commit(make_event: Make) -> None:
    """Without a version the sha is sent, as seed 000's GitHub example does."""
    body = mapping.body(make_event(version=None))
    assert "0123456789abcdef0123456789abcdef01234567" == body["version"]


def test_absent_values_are_left_out(make_event: Make) -> None:
    """A bare event sends no empty strings or nulls."""
    event = make_event(
        version=None, sha=None, run_url=None, actor=None, ref=None, metadata={}, provider=""
    )
    assert {
        "service": "checkout",
        "environment": "prod",
        "metadata": {"deployment_id": "gh-1001", "status": "success"},
    } == mapping.body(event)


def test_status_map_rewrites_metadata_status(make_event: Make) -> None:
    """status_map translates the status Cloudlink records in metadata."""
    body = mapping.body(make_event(), {Status.SUCCESS: "deployed"})
    assert "deployed" == body["metadata"]["status"]


@pytest.mark.parametrize(
    ("status", "kept"),
    [("success", True), ("failure", False), ("in-progress", False), ("cancelled", False)],
)
def test_only_successful_deploys_by_default(make_event: Make, status: str, kept: bool) -> None:
    """Cloudlink compares costs after a deploy, so only successes enter its outbox by default."""
    assert kept == (select(_config("https://cl.test"), make_event(status=status)) is not None)


def test_include_of_your_own_replaces_the_default(make_event: Make) -> None:
    """An explicit include decides alone (here: failures are sent too)."""
    config = _config("https://cl.test", include={"statuses": ["success", "failure"]})
    assert select(config, make_event(status="failure")) is not None


def test_service_map_via_rename_globs(make_event: Make) -> None:
    """Services are mapped to Cost Explorer names by the sink's rename table."""
    config = _config("https://cl.test", rename={"services": {"check*": "Amazon ECS"}})
    selected = select(config, make_event())
    assert selected is not None
    assert "Amazon ECS" == mapping.body(selected)["service"]


def test_bad_key_is_unauthorized(context: SinkContext, make_event: Make) -> None:
    """Cloudlink's 401 pauses the sink and the key stays out of the reason."""
    with ReceiverEmulator(bearer="the-right-key") as receiver:
        sink = CloudlinkSink(_config(receiver.url()), context)
        outcome = sink.send(make_event())
        sink.close()
    assert isinstance(outcome, Unauthorized)
    assert KEY not in outcome.reason


def test_check_is_reachability_only(receiver: ReceiverEmulator, context: SinkContext) -> None:
    """Cloudlink has no read-only call for a key: the check says it could not verify it."""
    sink = CloudlinkSink(_config(receiver.url()), context)
    result = sink.check()
    sink.close()
    assert (True, False) == (result.ok, result.verified)
    assert [] == receiver.received()

"""Each sink against a receiver written from its destination's document: what arrives, field by field.

The receivers (``seed_receivers.py``) know nothing of the sinks or the emulators; they implement the
Deployment Dashboard's page (seed 001), Cloudlink's (seed 000), CTO.ai's GitLab template (seed 002)
and the webhook receiver's side of docs/sinks.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs
from tests.sinks.seed_receivers import (
    CloudlinkSeed000,
    CtoAiSeed002,
    DashboardSeed001,
    SignedWebhook,
)

from deploy_fetcher.engine import DeliveryPolicy, DeliveryWorker, Health
from deploy_fetcher.engine.select import select
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks import Delivered, SinkContext
from deploy_fetcher.sinks.cloudlink import CloudlinkConfig, CloudlinkSink
from deploy_fetcher.sinks.ctoai import CtoAiConfig, CtoAiSink
from deploy_fetcher.sinks.dashboard import DashboardConfig, DashboardSink
from deploy_fetcher.sinks.webhook import WebhookConfig, WebhookSink
from deploy_fetcher.store.sqlite import SqliteStore

Make = Callable[..., DeployEvent]
KEY = "seed-key-0123456789"
TEAM = "02f71e12-fa48-45aa-a1f2-956b425e5bee"
SECRET = "whsec-4f1c9a0b7d2e"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def seed_001() -> Iterator[DashboardSeed001]:
    with DashboardSeed001(KEY) as receiver:
        yield receiver


def _dashboard(receiver: DashboardSeed001, context: SinkContext, **keys: Any) -> DashboardSink:
    config = DashboardConfig(
        name="dash", type="deployment-dashboard", url=receiver.url(), api_key=KEY, **keys
    )
    return DashboardSink(config, context)


# -- the Deployment Dashboard, seed 001 ---------------------------------------------------------------
def test_dashboard_full_event_arrives_field_by_field(
    seed_001: DashboardSeed001, context: SinkContext, make_event: Make
) -> None:
    """A success with every optional field is one POST of the twelve contract fields, stored as sent."""
    sink = _dashboard(seed_001, context)
    assert Delivered(201) == sink.send(make_event(parent_deployments=["gh-900"]))
    sink.close()
    [arrival] = seed_001.posted("/api/deployments")
    assert KEY == arrival.header("X-Api-Key")
    assert "application/json" == arrival.header("Content-Type")
    assert {
        "deployment_id": "gh-1001",  # the run's correlation key
        "service": "checkout",  # the matrix row
        "environment": "prod",  # the matrix column
        "status": "success",  # one of in-progress | success | failure
        "happened_at": "2026-01-31T12:00:00Z",  # RFC 3339 UTC, the CI side's time
        "version": "v1.2.3",
        "run_url": "https://github.com/octo/checkout/actions/runs/1001",
        "run_number": 42,  # an integer, as the table says
        "actor": "octocat",
        "ref": "refs/heads/main",
        "sha": SHA,
        "parent_deployments": ["gh-900"],
    } == arrival.json()
    assert 201 == arrival.status


@pytest.mark.parametrize(
    ("status", "arrives"),
    [
        ("pending", "in-progress"),
        ("queued", "in-progress"),
        ("waiting", "in-progress"),
        ("in-progress", "in-progress"),
        ("success", "success"),
        ("failure", "failure"),
        ("cancelled", "failure"),
        ("rejected", "failure"),
    ],
)
def test_dashboard_every_status_is_stored_as_a_seed_001_status(
    seed_001: DashboardSeed001, context: SinkContext, make_event: Make, status: str, arrives: str
) -> None:
    """Each of the eight statuses ends up stored, as one of the three the original contract knows."""
    sink = _dashboard(seed_001, context)
    outcome = sink.send(make_event(status=status))
    sink.close()
    assert Delivered(201) == outcome
    assert [arrives] == [row["status"] for row in seed_001.rows]


def test_dashboard_learns_the_three_statuses_from_one_refusal(
    seed_001: DashboardSeed001, context: SinkContext, make_event: Make
) -> None:
    """The first refused status costs one 422 (RFC 9457 pointer), the event goes again at once, never again."""
    sink = _dashboard(seed_001, context)
    with capture_logs() as logs:
        first = sink.send(make_event(status="pending"))
        second = sink.send(make_event(status="queued", happened_at="2026-01-31T12:00:01Z"))
    sink.close()
    assert (Delivered(201), Delivered(201)) == (first, second)
    assert [("pending", 422), ("in-progress", 201), ("in-progress", 201)] == [
        (a.json()["status"], a.status) for a in seed_001.posted("/api/deployments")
    ]
    assert ["#/status"] == [
        e["pointer"] for e in seed_001.posted("/api/deployments")[0].answer["errors"]
    ]
    assert 1 == len([e for e in logs if e["event"] == "dashboard.status_set_switched"])


def test_dashboard_normal_run_is_delivered_without_a_dead_letter(
    seed_001: DashboardSeed001, store: SqliteStore, make_event: Make
) -> None:
    """A delivery worker drains a run with all eight statuses into a seed-001 dashboard: none dead."""
    lifecycles = {
        "gh-1": ["pending", "queued", "waiting", "in-progress", "success"],
        "gh-2": ["queued", "in-progress", "cancelled"],
        "gh-3": ["waiting", "rejected"],
        "gh-4": ["in-progress", "failure"],
    }
    events = [
        make_event(
            deployment_id=deployment,
            service=f"svc-{deployment}",
            status=status,
            happened_at=f"2026-01-31T12:00:{second:02d}Z",
        )
        for deployment, statuses in lifecycles.items()
        for second, status in enumerate(statuses)
    ]
    store.commit_page("src/t", None, [("dash", event) for event in events])
    context = SinkContext(metrics=Metrics(), user_agent="test", values=store)
    sink = _dashboard(seed_001, context)
    worker = DeliveryWorker(
        sink=sink,
        store=store,
        metrics=Metrics(),
        health=Health(),
        policy=DeliveryPolicy(batch=50, idle_poll=0.05),
    )
    worker.drain_once()
    sink.close()
    dead = store.list_rows(sink="dash", state="dead")
    assert ([], 0, len(events)) == (dead, worker.dead, worker.delivered)
    assert {
        "svc-gh-1": "success",
        "svc-gh-2": "failure",
        "svc-gh-3": "failure",
        "svc-gh-4": "failure",
    } == {service: row["status"] for (service, _), row in seed_001.matrix().items()}


def test_dashboard_check_proves_the_key_on_the_ingest_endpoint(
    seed_001: DashboardSeed001, context: SinkContext
) -> None:
    """check() passes on a seed-001 dashboard (no state slot there) and stores nothing."""
    sink = _dashboard(seed_001, context)
    result = sink.check()
    sink.close()
    assert (True, True) == (result.ok, result.verified)
    assert [] == seed_001.rows
    assert [422, 401] == [a.status for a in seed_001.posted("/api/deployments")]


def test_dashboard_check_names_a_wrong_key(
    seed_001: DashboardSeed001, context: SinkContext
) -> None:
    """A key the seed-001 dashboard refuses fails the check without printing it."""
    config = DashboardConfig(
        name="dash", type="deployment-dashboard", url=seed_001.url(), api_key="wrong-key-value"
    )
    sink = DashboardSink(config, context)
    result = sink.check()
    sink.close()
    assert not result.ok
    assert "rejected the API key (HTTP 401)" in result.message
    assert "wrong-key-value" not in result.message


# -- Cloudlink, seed 000 ------------------------------------------------------------------------------
@pytest.fixture
def seed_000() -> Iterator[CloudlinkSeed000]:
    with CloudlinkSeed000(KEY) as receiver:
        yield receiver


def _cloudlink(receiver: CloudlinkSeed000, context: SinkContext, **keys: Any) -> CloudlinkSink:
    config = CloudlinkConfig(name="cost", type="cloudlink", url=receiver.url(), api_key=KEY, **keys)
    return CloudlinkSink(config, context)


def _deliver(sink: Any, event: DeployEvent) -> Any:
    """What the engine does: the sink's filters and renames, then the send."""
    selected = select(sink.config, event)
    return None if selected is None else sink.send(selected)


def test_cloudlink_production_success_arrives_field_by_field(
    seed_000: CloudlinkSeed000, context: SinkContext, make_event: Make
) -> None:
    """A successful production deploy is one POST /deploys with seed 000's fields and a Cost Explorer name."""
    sink = _cloudlink(seed_000, context, rename={"services": {"checkout": "Amazon ECS"}})
    assert Delivered(201) == _deliver(sink, make_event(environment="production"))
    sink.close()
    [arrival] = seed_000.posted("/deploys")
    assert f"Bearer {KEY}" == arrival.header("Authorization")
    assert "application/json" == arrival.header("Content-Type")
    assert {
        "service": "Amazon ECS",  # a Cost Explorer service name, from rename.services
        "version": "v1.2.3",  # git SHA, tag or version number
        "environment": "production",
        "source": "github-actions",  # the CI system, as the seed's GitHub example names it
        "metadata": {  # free-form: what links a cost change back to the run
            "deployment_id": "gh-1001",
            "run_url": "https://github.com/octo/checkout/actions/runs/1001",
            "sha": SHA,
            "actor": "octocat",
            "ref": "refs/heads/main",
            "repo": "octo/checkout",
            "status": "success",
        },
    } == arrival.json()
    assert [True] == [record["cost_explorer_name"] for record in seed_000.records()]


@pytest.mark.parametrize(
    ("environment", "status", "sent"),
    [
        ("production", "success", True),
        ("prod", "success", True),
        ("Production", "success", True),
        ("prod-eu", "success", True),
        ("production/us-east", "success", True),
        ("staging", "success", False),
        ("dev", "success", False),
        ("product-demo", "success", False),
        ("production", "failure", False),
        ("production", "in-progress", False),
    ],
)
def test_cloudlink_receives_only_production_successes_by_default(
    seed_000: CloudlinkSeed000,
    context: SinkContext,
    make_event: Make,
    *,
    environment: str,
    status: str,
    sent: bool,
) -> None:
    """Without an include of its own, Cloudlink gets successful deploys to production environments."""
    sink = _cloudlink(seed_000, context, rename={"services": {"*": "Amazon EC2"}})
    _deliver(sink, make_event(environment=environment, status=status))
    sink.close()
    assert ([environment] if sent else []) == [r["environment"] for r in seed_000.records()]


def test_cloudlink_without_service_rename_warns_and_sends_the_ci_name(
    seed_000: CloudlinkSeed000, context: SinkContext, make_event: Make
) -> None:
    """No rename.services: a warning at start, check() says it, and the CI's name is what arrives."""
    with capture_logs() as logs:
        sink = _cloudlink(seed_000, context)
    result = sink.check()
    _deliver(sink, make_event(environment="prod"))
    sink.close()
    assert ["cloudlink.services_not_renamed"] == [e["event"] for e in logs]
    assert "no rename.services" in result.message
    assert [("checkout", False)] == [
        (r["service"], r["cost_explorer_name"]) for r in seed_000.records()
    ]


# -- CTO.ai, seed 002 ---------------------------------------------------------------------------------
@pytest.fixture
def seed_002() -> Iterator[CtoAiSeed002]:
    with CtoAiSeed002(KEY, TEAM) as receiver:
        yield receiver


def _ctoai(receiver: CtoAiSeed002, context: SinkContext) -> CtoAiSink:
    config = CtoAiConfig(
        name="insights", type="ctoai", url=receiver.url(), api_key=KEY, team_id=TEAM
    )
    return CtoAiSink(config, context)


def test_ctoai_gitlab_tag_deployment_arrives_field_by_field(
    seed_002: CtoAiSeed002, context: SinkContext, make_event: Make
) -> None:
    """A GitLab deployment of a tag arrives as the template's body, with no branch and our mechanism."""
    event = make_event(
        deployment_id="gl-77",
        provider="gitlab",
        ref="v1.2.3",
        run_url="https://gitlab.example/group/app/-/pipelines/77",
        metadata={"repo": "group/app", "repo_name": "app", "tag": "v1.2.3"},
    )
    sink = _ctoai(seed_002, context)
    assert Delivered(200) == sink.send(event)
    sink.close()
    [arrival] = seed_002.posted("/")
    assert f"Bearer {KEY}" == arrival.header("Authorization")
    assert "application/json" == arrival.header("Content-Type")
    assert "deploy-fetcher-gitlab" == arrival.header("x-ops-mechanism")
    assert {
        "event_name": "deployment",  # "must always be deployment"
        "event_action": "success",  # a deployment lifecycle state
        "team_id": TEAM,
        "repo": "group/app",  # CI_PROJECT_PATH
        "branch": None,  # a tag pipeline has no CI_COMMIT_BRANCH
        "commit": SHA,  # CI_COMMIT_SHA
        "environment": "prod",  # CI_ENVIRONMENT_NAME
        "image": None,
        "meta": {
            "user": "octocat",  # GITLAB_USER_LOGIN in the template
            "origin": "deploy-fetcher",
            "deployment_id": "gl-77",
            "service": "checkout",
            "status": "success",
            "run_url": "https://gitlab.example/group/app/-/pipelines/77",
        },
    } == arrival.json()


@pytest.mark.parametrize(
    ("provider", "ref", "metadata", "branch"),
    [
        ("gitlab", "main", {"branch": "main"}, "main"),
        ("gitlab", "v1.2.3", {"tag": "v1.2.3"}, None),
        ("azure-devops", "refs/tags/v1.2.3", {"branch": "v1.2.3"}, None),
        ("azure-devops", "refs/heads/release/1.2", {"branch": "release/1.2"}, "release/1.2"),
        ("github", "refs/tags/v1.2.3", {"branch": "v1.2.3"}, None),
        ("github", "refs/tags/v1.2.3", {"branch": "main"}, "main"),
    ],
)
def test_ctoai_branch_names_a_branch_never_a_tag(
    seed_002: CtoAiSeed002,
    context: SinkContext,
    make_event: Make,
    *,
    provider: str,
    ref: str,
    metadata: dict[str, str],
    branch: str | None,
) -> None:
    """The branch a deployment came from is sent; a tag deployment sends none, whatever the CI."""
    sink = _ctoai(seed_002, context)
    sink.send(make_event(provider=provider, ref=ref, metadata=metadata))
    sink.close()
    assert [branch] == [a.json()["branch"] for a in seed_002.posted("/")]


@pytest.mark.parametrize(
    "status",
    ["pending", "queued", "waiting", "in-progress", "success", "failure", "cancelled", "rejected"],
)
def test_ctoai_accepts_every_status(
    seed_002: CtoAiSeed002, context: SinkContext, make_event: Make, status: str
) -> None:
    """Every canonical status arrives as a deployment lifecycle state the events API takes."""
    sink = _ctoai(seed_002, context)
    outcome = sink.send(make_event(status=status))
    sink.close()
    assert Delivered(200) == outcome


# -- the webhook, docs/sinks.md -----------------------------------------------------------------------
def test_webhook_signed_event_arrives_field_by_field(
    context: SinkContext, make_event: Make
) -> None:
    """The documented check accepts the signature; the body is the canonical document; a re-send is dropped."""
    with SignedWebhook(SECRET.encode()) as receiver:
        config = WebhookConfig(
            name="hook", type="webhook", url=receiver.url() + "/hooks", secret=SECRET
        )
        sink = WebhookSink(config, context)
        first = sink.send(make_event())
        again = sink.send(make_event())
        sink.close()
    assert (Delivered(204), Delivered(200)) == (first, again)
    assert [
        {
            "deployment_id": "gh-1001",
            "service": "checkout",
            "environment": "prod",
            "status": "success",  # the eight canonical statuses, unchanged
            "happened_at": "2026-01-31T12:00:00Z",
            "version": "v1.2.3",
            "run_url": "https://github.com/octo/checkout/actions/runs/1001",
            "run_number": 42,
            "actor": "octocat",
            "ref": "refs/heads/main",
            "sha": SHA,
            "provider": "github",
            "source": "octo-github",
            "metadata": {"branch": "main", "repo": "octo/checkout", "repo_name": "checkout"},
        }
    ] == receiver.accepted


def test_webhook_receiver_refuses_another_secret(context: SinkContext, make_event: Make) -> None:
    """The documented check is real: a receiver holding another secret refuses the event."""
    with SignedWebhook(b"another-secret") as receiver:
        config = WebhookConfig(name="hook", type="webhook", url=receiver.url(), secret=SECRET)
        sink = WebhookSink(config, context)
        outcome = sink.send(make_event())
        sink.close()
    assert [] == receiver.accepted
    assert 401 == getattr(outcome, "status_code", None)

"""Pure mapping of recorded GitHub JSON to canonical events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deploy_fetcher.model import Status
from deploy_fetcher.providers.github.config import RepoSettings
from deploy_fetcher.providers.github.mapping import (
    Repo,
    deployment_events,
    run_events,
    run_link,
    snapshot_deployment,
    version_of,
    web_base,
)

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Repo("octo/api", "https://github.com")
DEFAULT = RepoSettings()


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def payloads(outcome) -> list[dict[str, Any]]:
    return [e.contract_payload() for e in outcome.events]


def test_actions_deployment_maps_every_status_except_inactive():
    """A finished Actions deployment gives one event per status, inactive left out, with run details."""
    outcome = deployment_events(
        load("deployment_actions_staging"),
        load("statuses_actions_staging"),
        repo=REPO,
        source="gh",
        settings=DEFAULT,
        run=load("run_success"),
        parents=["gh-deploy-1000005"],
    )
    common = {
        "deployment_id": "gh-deploy-1000009",
        "service": "api",
        "environment": "staging",
        "version": "8c1e4b7",
        "run_url": "https://github.com/octo/api/actions/runs/1000003",
        "run_number": 1,
        "actor": "octocat",
        "ref": "main",
        "sha": "8c1e4b7d2f90a3c5e6b7d8f9a0b1c2d3e4f5a6b7",
        "parent_deployments": ["gh-deploy-1000005"],
    }
    assert [
        {**common, "status": "queued", "happened_at": "2026-03-02T07:02:05Z"},
        {**common, "status": "in-progress", "happened_at": "2026-03-02T07:02:15Z"},
        {**common, "status": "success", "happened_at": "2026-03-02T07:03:15Z"},
    ] == payloads(outcome)
    assert outcome.terminal
    assert {
        "repo": "octo/api",
        "repo_name": "api",
        "owner": "octo",
        "branch": "main",
        "workflow": "Deploy API",
        "workflow_file": "deploy.yml",
        "commit_url": "https://github.com/octo/api/commit/8c1e4b7d2f90a3c5e6b7d8f9a0b1c2d3e4f5a6b7",
        "task": "deploy",
        "github_deployment_id": "1000009",
        "run_id": "1000003",
    } == outcome.events[0].metadata
    assert {("github", "gh")} == {(e.provider, e.source) for e in outcome.events}


def test_failure_of_a_cancelled_run_becomes_cancelled():
    """The final failure status of a deployment whose run was cancelled maps to cancelled."""
    outcome = deployment_events(
        load("deployment_cancelled"),
        load("statuses_cancelled"),
        repo=REPO,
        source="gh",
        settings=DEFAULT,
        run=load("run_cancelled"),
    )
    assert [
        ("queued", "2026-03-02T08:02:05Z"),
        ("in-progress", "2026-03-02T08:02:15Z"),
        ("cancelled", "2026-03-02T08:02:45Z"),
    ] == [(e.status.value, e.contract_payload()["happened_at"]) for e in outcome.events]
    assert outcome.terminal


def test_failure_after_a_rejected_review_becomes_rejected():
    """A failure of a deployment whose environment a reviewer rejected maps to rejected."""
    outcome = deployment_events(
        load("deployment_rejected"),
        load("statuses_rejected"),
        repo=REPO,
        source="gh",
        settings=DEFAULT,
        run=load("run_rejected"),
        rejected=True,
    )
    assert [Status.WAITING, Status.REJECTED] == [e.status for e in outcome.events]
    assert outcome.waited


def test_failure_is_held_back_while_its_run_is_unfinished():
    """A failure whose run still runs is not emitted yet: it may turn out to be a cancellation."""
    run = {**load("run_cancelled"), "status": "in_progress", "conclusion": None}
    outcome = deployment_events(
        load("deployment_cancelled"),
        load("statuses_cancelled"),
        repo=REPO,
        source="gh",
        settings=DEFAULT,
        run=run,
    )
    assert [Status.QUEUED, Status.IN_PROGRESS] == [e.status for e in outcome.events]
    assert (False, True) == (outcome.terminal, outcome.awaiting_run)


def test_waiting_deployment_of_a_cancelled_run_is_closed_at_the_runs_end():
    """A deployment left waiting when its run was cancelled is closed cancelled, never before its wait."""
    statuses = [s for s in load("statuses_rejected") if s["state"] == "waiting"]
    outcome = deployment_events(
        load("deployment_rejected"),
        statuses,
        repo=REPO,
        source="gh",
        settings=DEFAULT,
        run=load("run_cancelled"),
    )
    # These two fixtures disagree on the clock: the run ended before the wait began.
    assert [("waiting", "2026-03-02T09:03:35Z"), ("cancelled", "2026-03-02T09:03:35Z")] == [
        (e.status.value, e.contract_payload()["happened_at"]) for e in outcome.events
    ]
    assert outcome.terminal


def test_deployment_made_by_another_tool_still_produces_events():
    """A deployment without a run maps from its own fields; error maps to failure."""
    settings = RepoSettings(version="payload.version")
    outcome = deployment_events(
        load("deployment_tool"), load("statuses_tool"), repo=REPO, source="gh", settings=settings
    )
    assert [
        {
            "deployment_id": "gh-deploy-1000041",
            "service": "api",
            "environment": "preview",
            "status": status,
            "happened_at": at,
            "version": "2.4.1",
            "run_url": "https://deploy.example.com/api/1000041",
            "actor": "deploy-bot",
            "ref": "feature/login",
            "sha": "0badc0ffee0badc0ffee0badc0ffee0badc0ffee",
        }
        for status, at in (
            ("pending", "2026-03-02T09:30:00Z"),
            ("in-progress", "2026-03-02T09:31:00Z"),
            ("failure", "2026-03-02T09:35:00Z"),
        )
    ] == payloads(outcome)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("pending", [Status.PENDING]),
        ("queued", [Status.QUEUED]),
        ("in_progress", [Status.IN_PROGRESS]),
        ("waiting", [Status.WAITING]),
        ("success", [Status.SUCCESS]),
        ("failure", [Status.FAILURE]),
        ("error", [Status.FAILURE]),
        ("inactive", []),
    ],
)
def test_status_mapping_table(state, expected):
    """Each GitHub deployment state maps to the documented canonical status."""
    status = {**load("statuses_tool")[0], "state": state}
    outcome = deployment_events(
        load("deployment_tool"), [status], repo=REPO, source="gh", settings=DEFAULT
    )
    assert expected == [e.status for e in outcome.events]


def test_deployment_without_statuses_is_pending_since_creation():
    """A deployment nobody reported on yet is pending at its creation time and stays open."""
    outcome = deployment_events(
        load("deployment_tool"), [], repo=REPO, source="gh", settings=DEFAULT
    )
    assert [(Status.PENDING, "2026-03-02T09:30:00Z")] == [
        (e.status, e.contract_payload()["happened_at"]) for e in outcome.events
    ]
    assert not outcome.terminal


def test_statuses_out_of_order_are_sorted_by_time():
    """GitHub does not promise an order: the latest status by time decides the outcome."""
    statuses = list(reversed(load("statuses_cancelled")))
    outcome = deployment_events(
        load("deployment_cancelled"),
        statuses,
        repo=REPO,
        source="gh",
        settings=DEFAULT,
        run=load("run_cancelled"),
    )
    assert Status.CANCELLED == outcome.events[-1].status


def test_malformed_status_is_skipped_with_a_reason():
    """A status with an unknown state is left out and reported; the others still map."""
    statuses = load("statuses_tool")
    statuses[1] = {**statuses[1], "state": "exploded"}
    outcome = deployment_events(
        load("deployment_tool"), statuses, repo=REPO, source="gh", settings=DEFAULT
    )
    assert [Status.PENDING, Status.FAILURE] == [e.status for e in outcome.events]
    assert ["status 1000043: unknown state 'exploded'"] == outcome.problems


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("sha7", "8c1e4b7"),
        ("sha", "8c1e4b7d2f90a3c5e6b7d8f9a0b1c2d3e4f5a6b7"),
        ("ref", "main"),
        ("run_number", "12"),
        ("payload.version", "8c1e4b7"),
        ("payload.missing", None),
    ],
)
def test_version_choices(choice, expected):
    """The version comes from the configured field; a missing one is None, not an error."""
    deployment = load("deployment_actions_staging")
    actual = version_of(
        RepoSettings(version=choice),
        sha=deployment["sha"],
        ref="main",
        run_number=12,
        payload=deployment["payload"],
    )
    assert expected == actual


def test_service_map_and_template():
    """service_map renames a workflow; otherwise the template names the service."""
    mapped = deployment_events(
        load("deployment_actions_staging"),
        load("statuses_actions_staging"),
        repo=REPO,
        source="gh",
        settings=RepoSettings(service_map={"deploy.yml": "api-gateway"}),
        run=load("run_success"),
    )
    templated = deployment_events(
        load("deployment_actions_staging"),
        load("statuses_actions_staging"),
        repo=REPO,
        source="gh",
        settings=RepoSettings(service="{repo_name}-{environment}"),
        run=load("run_success"),
    )
    assert ("api-gateway", "api-staging") == (mapped.events[0].service, templated.events[0].service)


def test_snapshot_keeps_what_later_events_need():
    """The cursor's copy of a deployment keeps its identity, creator and configured payload field."""
    snapshot = snapshot_deployment(load("deployment_tool"), RepoSettings(version="payload.version"))
    assert {
        "id": 1000041,
        "environment": "preview",
        "sha": "0badc0ffee0badc0ffee0badc0ffee0badc0ffee",
        "ref": "feature/login",
        "task": "deploy",
        "created_at": "2026-03-02T09:30:00Z",
        "creator": {"login": "deploy-bot"},
        "payload": {"version": "2.4.1"},
    } == snapshot


def test_run_link_and_web_base():
    """Run ids are read from Actions log URLs; API bases map to their web UI."""
    assert (1000004, None) == (
        run_link("https://github.com/octo/api/actions/runs/1000004/job/1000030"),
        run_link("https://deploy.example.com/api/1"),
    )
    assert ("https://github.com", "https://ghe.example.com") == (
        web_base("https://api.github.com"),
        web_base("https://ghe.example.com/api/v3"),
    )


# -- workflow runs --------------------------------------------------------------------------------
def run_settings(**kw) -> RepoSettings:
    return RepoSettings(mode="workflow_runs", environment="{branch}", **kw)


def test_completed_run_gives_queued_in_progress_and_terminal_events():
    """A finished run is rebuilt from its timestamps: queued, in-progress, then its conclusion."""
    outcome = run_events(load("run_success"), repo=REPO, source="gh", settings=run_settings())
    assert [
        ("gh-run-1000003-1", "queued", "2026-03-02T07:00:00Z"),
        ("gh-run-1000003-1", "in-progress", "2026-03-02T07:00:00Z"),
        ("gh-run-1000003-1", "success", "2026-03-02T07:06:50Z"),
    ] == [
        (e.deployment_id, e.status.value, e.contract_payload()["happened_at"])
        for e in outcome.events
    ]
    assert ("api", "main", "1") == (
        outcome.events[0].service,
        outcome.events[0].environment,
        outcome.events[0].metadata["run_attempt"],
    )


@pytest.mark.parametrize(
    ("status", "conclusion", "expected", "terminal"),
    [
        ("queued", None, ["queued"], False),
        ("requested", None, ["queued"], False),
        ("in_progress", None, ["queued", "in-progress"], False),
        ("waiting", None, ["queued", "waiting"], False),
        ("completed", "action_required", ["queued", "waiting"], False),
        ("completed", "success", ["queued", "in-progress", "success"], True),
        ("completed", "failure", ["queued", "in-progress", "failure"], True),
        ("completed", "timed_out", ["queued", "in-progress", "failure"], True),
        ("completed", "startup_failure", ["queued", "in-progress", "failure"], True),
        ("completed", "cancelled", ["queued", "cancelled"], True),
        ("completed", "skipped", [], True),
        ("completed", "neutral", [], True),
        ("completed", "stale", [], True),
    ],
)
def test_run_status_table(status, conclusion, expected, terminal):
    """Run statuses and conclusions map to the documented canonical states."""
    run = {**load("run_success"), "status": status, "conclusion": conclusion}
    outcome = run_events(run, repo=REPO, source="gh", settings=run_settings())
    assert (expected, terminal) == ([e.status.value for e in outcome.events], outcome.terminal)


def test_rerun_attempt_is_its_own_deployment_from_its_start():
    """Attempt 2 of a run is another logical deployment, queued when the attempt started."""
    run = {
        **load("run_cancelled"),
        "run_attempt": 2,
        "run_started_at": "2026-03-02T08:30:00Z",
        "conclusion": "success",
        "updated_at": "2026-03-02T08:35:00Z",
    }
    outcome = run_events(run, repo=REPO, source="gh", settings=run_settings())
    assert [
        ("gh-run-1000004-2", "queued", "2026-03-02T08:30:00Z"),
        ("gh-run-1000004-2", "in-progress", "2026-03-02T08:30:00Z"),
        ("gh-run-1000004-2", "success", "2026-03-02T08:35:00Z"),
    ] == [
        (e.deployment_id, e.status.value, e.contract_payload()["happened_at"])
        for e in outcome.events
    ]


def test_run_resumed_after_a_wait_is_dated_after_the_wait():
    """A run seen waiting, then running, keeps its waiting time and is in progress after it."""
    run = {
        **load("run_success"),
        "status": "in_progress",
        "conclusion": None,
        "updated_at": "2026-03-02T07:04:00Z",
    }
    outcome = run_events(
        run, repo=REPO, source="gh", settings=run_settings(), waiting_since="2026-03-02T07:01:00Z"
    )
    assert [
        ("queued", "2026-03-02T07:00:00Z"),
        ("waiting", "2026-03-02T07:01:00Z"),
        ("in-progress", "2026-03-02T07:04:00Z"),
    ] == [(e.status.value, e.contract_payload()["happened_at"]) for e in outcome.events]
    assert "2026-03-02T07:04:00Z" == outcome.resumed_at


def test_rejected_run_is_rejected():
    """A run that failed after a rejected review ends as rejected."""
    outcome = run_events(
        load("run_rejected"), repo=REPO, source="gh", settings=run_settings(), rejected=True
    )
    assert Status.REJECTED == outcome.events[-1].status


@pytest.mark.parametrize(
    ("event", "head_branch", "expected"),
    [
        ("pull_request", "feature/login", "refs/heads/feature/login"),
        ("schedule", "main", "refs/heads/main"),
        ("release", "v1.4.0", "refs/tags/v1.4.0"),
        ("push", "main", "main"),
        ("workflow_dispatch", "v1.4.0", "v1.4.0"),
    ],
)
def test_run_ref_is_qualified_when_the_event_says_branch_or_tag(event, head_branch, expected):
    """refs/heads/… or refs/tags/… when the run's event tells; a push may be either: bare."""
    run = {**load("run_success"), "event": event, "head_branch": head_branch}
    settings = RepoSettings(mode="workflow_runs")
    outcome = run_events(run, repo=REPO, source="gh", settings=settings)
    assert {expected} == {e.ref for e in outcome.events}

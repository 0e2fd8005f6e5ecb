"""Every GitHub emulator response the adapter reads conforms to GitHub's published OpenAPI schema.

The schemas are the dereferenced 200-response schemas of the operations the adapter calls, copied
from GitHub's OpenAPI description into ``tests/fixtures/real/github/openapi_operations.json`` (see
the README there). The emulator is driven through every documented deployment state and every run
conclusion, plus the awkward real shapes, and each response is validated as GitHub would send it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.emulators.schemas import get_json, problems
from tests.fixtures.real import load_real

from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.emulators.github.scenario import Pipeline, WorkflowSpec, start_pipeline

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
OPERATIONS = load_real("github", "openapi_operations.json")["operations"]
REPO = "octo/api"
USER_REPO = "mona/tools"
INSTALLATION = 77
INSTALLATION_TOKEN = "ghs_installation-token"
FLOW = WorkflowSpec("Deploy API", "deploy.yml", ("dev", "prod"), frozenset({"prod"}))
PLAIN = WorkflowSpec("Release", "release.yml", ())


def _schema(operation: str) -> Any:
    return OPERATIONS[operation]["schema"]


def _state_enum() -> list[str]:
    items = _schema("GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses")["items"]
    return list(items["properties"]["state"]["enum"])


def _run_values() -> list[str]:
    parameter = OPERATIONS["GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs"]
    return list(parameter["status_parameter"]["enum"])


@pytest.fixture(scope="module")
def world() -> Any:
    """An emulator with pipelines of every outcome, every deployment state, every conclusion."""
    emulator = GitHubEmulator(scenario="empty", start=START)
    emulator.start()
    try:
        for n, outcome in enumerate(("success", "failure", "cancelled", "rejected")):
            at = START + timedelta(minutes=10 * n)
            start_pipeline(emulator, REPO, FLOW, at=at, sha=f"{n:x}" * 40, plan=Pipeline(outcome))
            start_pipeline(emulator, REPO, PLAIN, at=at, sha=f"{n:x}" * 40, plan=Pipeline(outcome))
        emulator.advance(3600)
        tool = emulator.add_deployment(REPO, "preview", sha="e" * 40, ref="main", at=emulator.now())
        for state in [*_state_enum(), "waiting"]:
            emulator.add_status(REPO, tool.id, state, at=emulator.now())
        workflow = next(iter(emulator.repo(REPO).workflows.values()))
        conclusions = (
            "timed_out",
            "startup_failure",
            "neutral",
            "skipped",
            "stale",
            "action_required",
        )
        for conclusion in conclusions:
            run = emulator.add_run(REPO, workflow, at=emulator.now(), sha="f" * 40)
            emulator.set_run(REPO, run.id, status="completed", conclusion=conclusion)
        waiting = emulator.add_run(REPO, workflow, at=emulator.now(), sha="f" * 40)
        emulator.set_run(REPO, waiting.id, status="waiting")
        emulator.add_run(REPO, workflow, at=emulator.now(), sha="f" * 40, status="requested")
        running = emulator.add_run(REPO, workflow, at=emulator.now(), sha="f" * 40)
        emulator.set_run(REPO, running.id, status="in_progress")
        emulator.add_run(REPO, workflow, at=emulator.now(), sha="f" * 40, status="pending")
        jobs = emulator.add_run(REPO, workflow, at=emulator.now(), sha="f" * 40)
        emulator.set_run(REPO, jobs.id, status="in_progress")
        emulator.set_job(REPO, jobs.id, "build", status="completed", conclusion="success")
        emulator.set_job(REPO, jobs.id, "deploy", status="in_progress")
        emulator.set_job(REPO, jobs.id, "smoke", status="queued")
        first = min(emulator.repo(REPO).runs)
        emulator.rerun(REPO, first)
        emulator.touch_run(REPO, first, at=emulator.now() + timedelta(days=400))
        emulator.add_repo(USER_REPO, owner_is_org=False, archived=True)
        emulator.install_app(1, "unused", INSTALLATION, [REPO, USER_REPO])
        emulator.installation_tokens[INSTALLATION_TOKEN] = (INSTALLATION, START + timedelta(days=9))
        yield emulator
    finally:
        emulator.stop()


def _get(emulator: GitHubEmulator, path: str) -> Any:
    return get_json(emulator.url(path), {"Authorization": "token emulator-token"})


def _responses(emulator: GitHubEmulator) -> list[tuple[str, str, Any]]:
    """(operation, path, body) for every endpoint the adapter calls, over every object."""
    out: list[tuple[str, str, Any]] = []
    base = f"/repos/{REPO}"
    deployments = _get(emulator, f"{base}/deployments?per_page=100")
    out.append(("GET /repos/{owner}/{repo}/deployments", f"{base}/deployments", deployments))
    for deployment in deployments:
        path = f"{base}/deployments/{deployment['id']}/statuses?per_page=100"
        op = "GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses"
        out.append((op, path, _get(emulator, path)))
    workflows = _get(emulator, f"{base}/actions/workflows")
    out.append(
        ("GET /repos/{owner}/{repo}/actions/workflows", f"{base}/actions/workflows", workflows)
    )
    for workflow in workflows["workflows"]:
        path = f"{base}/actions/workflows/{workflow['id']}/runs?per_page=100"
        runs = _get(emulator, path)
        out.append(("GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs", path, runs))
        for run in runs["workflow_runs"]:
            run_path = f"{base}/actions/runs/{run['id']}"
            out.append(
                (
                    "GET /repos/{owner}/{repo}/actions/runs/{run_id}",
                    run_path,
                    _get(emulator, run_path),
                )
            )
            for attempt in range(1, run["run_attempt"] + 1):
                path = f"{run_path}/attempts/{attempt}"
                op = "GET /repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}"
                out.append((op, path, _get(emulator, path)))
                out.append((op + "/jobs", path + "/jobs", _get(emulator, path + "/jobs")))
            path = f"{run_path}/approvals"
            op = "GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals"
            out.append((op, path, _get(emulator, path)))
    return out


#: ``waiting`` is a deployment state Actions sets for environments with reviewers; GitHub's REST
#: schema omits it from the enum (GraphQL's DeploymentStatusState lists it). Nothing else is excused.
_EXCUSED = "'waiting' is not one of"


def test_every_response_conforms_to_the_published_schema(world):
    """Deployments, statuses, workflows, runs, attempts, jobs and approvals match GitHub's schema."""
    found: list[str] = []
    responses = _responses(world)
    for operation, path, body in responses:
        found += [f"{path}: {p}" for p in problems(_schema(operation), body) if _EXCUSED not in p]
    assert [] == found
    assert 30 < len(responses)


def test_the_emulator_sends_every_documented_state_and_conclusion(world):
    """Every deployment state and every run status and conclusion GitHub documents comes out."""
    states: set[str] = set()
    values: set[str] = set()
    for operation, _path, body in _responses(world):
        if operation.endswith("/statuses"):
            states |= {s["state"] for s in body}
        if operation.endswith("/runs"):
            values |= {r["status"] for r in body["workflow_runs"]}
            values |= {r["conclusion"] for r in body["workflow_runs"] if r["conclusion"]}
    assert set(_state_enum()) | {"waiting"} == states
    assert set(_run_values()) <= values


def test_the_awkward_real_shapes_come_out(world):
    """run_started_at equals created_at on attempt 1; updated_at moves long after completion."""
    runs = _get(world, f"/repos/{REPO}/actions/runs?per_page=100")["workflow_runs"]
    first = [r for r in runs if r["run_attempt"] == 1 and r["status"] == "completed"]
    assert all(r["run_started_at"] == r["created_at"] for r in first)
    moved = [r for r in runs if r["updated_at"] > (START + timedelta(days=300)).isoformat()]
    assert 1 == len(moved)


def _repo_run_states() -> list[str]:
    parameter = OPERATIONS["GET /repos/{owner}/{repo}/actions/runs"]
    return list(parameter["status_parameter"]["enum"])


def _listings(emulator: GitHubEmulator) -> list[tuple[str, str, Any]]:
    """(operation, path, body) for the repository's runs by status, repository lists, contents."""
    out: list[tuple[str, str, Any]] = []
    op = "GET /repos/{owner}/{repo}/actions/runs"
    for state in _repo_run_states():
        path = f"/repos/{REPO}/actions/runs?status={state}&per_page=100"
        out.append((op, path, _get(emulator, path)))
    for op, path in (
        ("GET /orgs/{org}/repos", "/orgs/octo/repos"),
        ("GET /users/{username}/repos", "/users/mona/repos"),
    ):
        out.append((op, path, _get(emulator, path)))
    path = "/installation/repositories"
    body = get_json(emulator.url(path), {"Authorization": f"token {INSTALLATION_TOKEN}"})
    out.append(("GET /installation/repositories", path, body))
    for workflow in _get(emulator, f"/repos/{REPO}/actions/workflows")["workflows"]:
        path = f"/repos/{REPO}/contents/{workflow['path']}"
        out.append(("GET /repos/{owner}/{repo}/contents/{path}", path, _get(emulator, path)))
    return out


def test_runs_by_status_repository_lists_and_contents_conform(world):
    """The active-run lists, the three repository listings and a workflow file match the schema."""
    found: list[str] = []
    listings = _listings(world)
    for operation, path, body in listings:
        found += [f"{path}: {p}" for p in problems(_schema(operation), body)]
    assert [] == found
    by_path = {path: body for _op, path, body in listings}
    assert {REPO, USER_REPO} == {
        r["full_name"] for r in by_path["/installation/repositories"]["repositories"]
    }
    assert [USER_REPO] == [r["full_name"] for r in by_path["/users/mona/repos"]]
    assert ["file"] * 2 == [
        body["type"] for op, _p, body in listings if op.endswith("/contents/{path}")
    ]


def test_each_active_run_list_holds_exactly_the_runs_in_that_status(world):
    """actions/runs?status= filters as GitHub does: by status, or by conclusion for the others."""
    every = _get(world, f"/repos/{REPO}/actions/runs?per_page=100")["workflow_runs"]
    for state in ("queued", "in_progress", "waiting", "requested", "pending", "completed"):
        listed = _get(world, f"/repos/{REPO}/actions/runs?status={state}&per_page=100")
        expected = sorted(r["id"] for r in every if r["status"] == state)
        assert (state, expected) == (state, sorted(r["id"] for r in listed["workflow_runs"]))
        assert expected, f"the world has no {state} run"
    for conclusion in ("success", "failure", "cancelled", "timed_out", "skipped"):
        listed = _get(world, f"/repos/{REPO}/actions/runs?status={conclusion}&per_page=100")
        expected = sorted(r["id"] for r in every if r["conclusion"] == conclusion)
        assert (conclusion, expected) == (
            conclusion,
            sorted(r["id"] for r in listed["workflow_runs"]),
        )

"""What the dashboard shows for the real services' own responses (tests/fixtures/real).

Each published example or SDK recording goes through its provider's mapper, the engine's lifecycle
rule, and the dashboard's reduction (its latest row per deployment); the tests assert the state
and the time a person would see. Then every documented value of each status field is put into the
same real object, so each value's dashboard state is shown on a real shape.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.dashboard_view import latest_by_deployment
from tests.fixtures.real import load_real
from tests.providers.azure_devops.support import NAMING

from deploy_fetcher.lifecycle import enforce_lifecycle
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers.azure_devops.mapping import Skip, release_events
from deploy_fetcher.providers.github.config import RepoSettings
from deploy_fetcher.providers.github.mapping import (
    Repo,
    deployment_events,
    job_times,
    run_events,
)
from deploy_fetcher.providers.gitlab.mapping import (
    ProjectInfo,
    Rendering,
    parse_deployment,
)
from deploy_fetcher.providers.gitlab.mapping import (
    deployment_events as gitlab_deployment_events,
)

REPO = Repo("PyGithub/PyGithub", "https://github.com")
RUNS = RepoSettings(mode="workflow_runs")
GITLAB = Rendering(
    source="gl",
    project=ProjectInfo("root/project", "http://gitlab.dev/root/project"),
    service="{project}",
)


def shown(events: list[DeployEvent]) -> dict[str, tuple[str, str]]:
    """Each deployment's (status, happened_at) on the dashboard after the engine's lifecycle rule."""
    view = latest_by_deployment(enforce_lifecycle(events))
    return {key: (s.status, s.happened_at) for key, s in view.items()}


# -- GitHub -------------------------------------------------------------------------------------
def _github_run(name: str, jobs: str | None = None) -> list[DeployEvent]:
    run = load_real("github", name)
    times = job_times(load_real("github", jobs)["jobs"]) if jobs else None
    return run_events(run, repo=REPO, source="gh", settings=RUNS, jobs=times).events


def test_github_recorded_run_with_its_jobs_shows_success_when_the_last_job_completed():
    """Run 3881497935: success at the last job's completed_at (08:28:18), not updated_at (08:28:20)."""
    events = _github_run("run_3881497935.json", "run_3881497935_jobs.json")
    assert {"gh-run-3881497935-1": ("success", "2023-01-10T08:28:18Z")} == shown(events)
    assert [
        ("queued", "2023-01-10T08:24:19Z"),
        ("in-progress", "2023-01-10T08:24:28Z"),
        ("success", "2023-01-10T08:28:18Z"),
    ] == [(e.status.value, e.contract_payload()["happened_at"]) for e in events]
    assert {"refs/heads/feat/workflow-run"} == {e.ref for e in events}


def test_github_recorded_run_without_its_jobs_falls_back_to_an_updated_at_401_days_late():
    """Run 3770390952's jobs unread: its end is updated_at, 401 days late (the documented limit)."""
    events = _github_run("run_updated_13_months_later.json")
    assert {"gh-run-3770390952-1": ("success", "2024-01-29T23:29:45Z")} == shown(events)


def test_github_recorded_rerun_started_before_it_was_created_is_still_in_order():
    """Attempt 2 of run 26365060973 has run_started_at 2 s before created_at: queued, then success."""
    events = _github_run("run_26365060973_attempt_2.json")
    assert {"gh-run-26365060973-2": ("success", "2026-05-29T15:43:47Z")} == shown(events)
    assert ["queued", "in-progress", "success"] == [e.status.value for e in events]


def test_github_recorded_deployment_with_three_queued_statuses_shows_the_latest():
    """Deployment 263877258 (made through the API, statuses unordered): queued at 14:32:51."""
    outcome = deployment_events(
        load_real("github", "deployment_263877258.json"),
        load_real("github", "deployment_263877258_statuses.json"),
        repo=REPO,
        source="gh",
        settings=RepoSettings(),
    )
    assert {"gh-deploy-263877258": ("queued", "2020-08-26T14:32:51Z")} == shown(outcome.events)
    assert {None} == {e.ref for e in outcome.events}  # the deployment's ref is a commit SHA


#: Every ``state`` of a deployment status: GitHub's OpenAPI enum plus ``waiting``, which the REST
#: schema omits but Actions sets (GraphQL's DeploymentStatusState lists it).
DEPLOYMENT_STATES = {
    "error": "failure",
    "failure": "failure",
    "inactive": None,
    "pending": "pending",
    "success": "success",
    "queued": "queued",
    "in_progress": "in-progress",
    "waiting": "waiting",
}


@pytest.mark.parametrize(("state", "expected"), sorted(DEPLOYMENT_STATES.items()))
def test_github_every_deployment_state_on_the_recorded_deployment(state, expected):
    """The recorded deployment with one status of each documented state."""
    statuses = load_real("github", "deployment_263877258_statuses.json")[:1]
    statuses[0]["state"] = state
    outcome = deployment_events(
        load_real("github", "deployment_263877258.json"),
        statuses,
        repo=REPO,
        source="gh",
        settings=RepoSettings(),
    )
    view = shown(outcome.events)
    assert expected == (view["gh-deploy-263877258"][0] if view else None)


#: (status, conclusion) of a workflow run: the statuses and conclusions GitHub documents.
RUN_VALUES = [
    ("requested", None, "queued"),
    ("queued", None, "queued"),
    ("pending", None, "queued"),
    ("waiting", None, "waiting"),
    ("in_progress", None, "in-progress"),
    ("completed", "success", "success"),
    ("completed", "failure", "failure"),
    ("completed", "timed_out", "failure"),
    ("completed", "startup_failure", "failure"),
    ("completed", "cancelled", "cancelled"),
    ("completed", "action_required", "waiting"),
    ("completed", "neutral", None),
    ("completed", "skipped", None),
    ("completed", "stale", None),
]


@pytest.mark.parametrize(("status", "conclusion", "expected"), RUN_VALUES)
def test_github_every_run_status_and_conclusion_on_the_recorded_run(status, conclusion, expected):
    """The recorded run with each documented status/conclusion, its jobs read."""
    run = {**load_real("github", "run_3881497935.json"), "status": status, "conclusion": conclusion}
    jobs = job_times(load_real("github", "run_3881497935_jobs.json")["jobs"])
    events = run_events(run, repo=REPO, source="gh", settings=RUNS, jobs=jobs).events
    view = shown(events)
    assert expected == (view["gh-run-3881497935-1"][0] if view else None)


# -- GitLab -------------------------------------------------------------------------------------
def _gitlab(raw: Any) -> list[DeployEvent]:
    return gitlab_deployment_events(parse_deployment(raw), GITLAB)


def test_gitlab_documented_deployments_show_their_latest_state_and_time():
    """The API docs' examples: list items still created; the single one succeeded; the created one."""
    listed = [e for raw in load_real("gitlab", "deployments_list.json") for e in _gitlab(raw)]
    assert {
        "gl-deploy-41": ("pending", "2016-08-11T07:36:40.222Z"),
        "gl-deploy-42": ("pending", "2016-08-11T11:32:35.444Z"),
    } == shown(listed)
    assert {"gl-deploy-42": ("success", "2016-08-11T11:32:35.444Z")} == shown(
        _gitlab(load_real("gitlab", "deployments_get.json"))
    )
    assert {"gl-deploy-42": ("success", "2016-08-11T11:32:35.444Z")} == shown(
        _gitlab(load_real("gitlab", "deployments_create.json"))
    )


#: Every deployment ``status`` the Deployments API documents (the list filter's values, plus
#: ``skipped``, which GitLab's deployment model has for a job that never ran).
GITLAB_STATUSES = {
    "created": "pending",
    "running": "in-progress",
    "success": "success",
    "failed": "failure",
    "canceled": "cancelled",
    "blocked": "waiting",
    "skipped": None,
}


@pytest.mark.parametrize(("status", "expected"), sorted(GITLAB_STATUSES.items()))
@pytest.mark.parametrize("shape", ["deployments_get.json", "deployments_create.json"])
def test_gitlab_every_deployment_status_on_the_documented_deployments(shape, status, expected):
    """Each documented status on the example with a job and on the one without."""
    raw = {**load_real("gitlab", shape), "status": status}
    view = shown(_gitlab(raw))
    assert expected == (view["gl-deploy-42"][0] if view else None)


# -- Azure DevOps -------------------------------------------------------------------------------
def _ado_deployments() -> list[dict[str, Any]]:
    listed = load_real("azure_devops", "release_deployments_list.json")
    return listed["responses"]["200"]["body"]["value"]


def test_azure_devops_documented_release_deployments_show_their_latest_state_and_time():
    """All 17 deployments of the service's example: the PhaseFailed one failed, the rest succeeded."""
    events: list[DeployEvent] = []
    for deployment in _ado_deployments():
        mapped = release_events(deployment, naming=NAMING)
        assert not isinstance(mapped, Skip)
        events += mapped
    view = shown(events)
    assert 17 == len(view)
    assert ("failure", "2017-08-29T16:51:40.133Z") == view["ado-rel-79"]
    assert ("success", "2017-06-11T17:25:19.937Z") == view["ado-rel-35"]
    assert {"success"} == {status for key, (status, _) in view.items() if key != "ado-rel-79"}


def _schema_enum(name: str) -> list[str]:
    schema = load_real("azure_devops", "release_7.1_deployments_schema.json")
    return list(schema["definitions"]["Deployment"]["properties"][name]["enum"])


#: What each documented ``operationStatus`` shows on deployment 79 (``deploymentStatus``
#: ``notDeployed``, a manual approval asked at 16:51:32.743): an approval was asked, so nothing
#: before ``waiting`` shows; a phase that ran is in progress from the approval's decision on.
OPERATION_SHOWN = {
    "undefined": "waiting",
    "queued": "waiting",
    "scheduled": "waiting",
    "pending": "waiting",
    "approved": "waiting",
    "rejected": "rejected",
    "deferred": "waiting",
    "queuedForAgent": "waiting",
    "phaseInProgress": "in-progress",
    "phaseSucceeded": "in-progress",
    "phasePartiallySucceeded": "in-progress",
    "phaseFailed": "failure",
    "canceled": "cancelled",
    "phaseCanceled": "cancelled",
    "manualInterventionPending": "waiting",
    "queuedForPipeline": "waiting",
    "cancelling": "waiting",
    "evaluatingGates": "waiting",
    "gateFailed": "failure",
    "all": "waiting",
}


def test_azure_devops_table_covers_every_documented_operation_status():
    """The expectations below name every value of the schema's DeploymentOperationStatus."""
    assert sorted(_schema_enum("operationStatus")) == sorted(OPERATION_SHOWN)


@pytest.mark.parametrize(("operation", "expected"), sorted(OPERATION_SHOWN.items()))
@pytest.mark.parametrize("case", [str, str.capitalize], ids=["camelCase", "PascalCase"])
def test_azure_devops_every_operation_status_on_the_documented_deployment(
    operation, expected, case
):
    """Deployment 79 (an approval created after startedOn) with each documented operationStatus."""
    deployment = copy.deepcopy(next(d for d in _ado_deployments() if d["id"] == 79))
    deployment["operationStatus"] = case(operation[0]) + operation[1:]
    mapped = release_events(deployment, naming=NAMING)
    view = shown(mapped) if not isinstance(mapped, Skip) else {}
    assert expected == (view["ado-rel-79"][0] if view else None)

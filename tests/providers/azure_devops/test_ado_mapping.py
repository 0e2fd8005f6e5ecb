"""Pure mapping of recorded-style Azure DevOps JSON to canonical events."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.providers.azure_devops.support import NAMING, fixture, summary

from deploy_fetcher.model import Status
from deploy_fetcher.providers.azure_devops.mapping import (
    RECORD_RESULT,
    STAGE_RESULT,
    Skip,
    StageTarget,
    record_events,
    release_events,
    release_status,
    resolve_stage_environment,
    stage_events,
)
from deploy_fetcher.providers.azure_devops.selection import StageResolver

RECORDS = {r["id"]: r for r in fixture("environment_records.json")["value"]}
DEPLOYMENTS = {d["id"]: d for d in fixture("release_deployments.json")["value"]}
BUILD = fixture("build.json")
PATTERN = StageResolver(
    mapping={}, pattern=r"(?i)^deploy[_\- ]?(?P<environment>.+)$", environments=[]
)


def _timeline(name: str) -> tuple[dict, list[dict]]:
    data = fixture(name)
    build_id = int(data["url"].split("/builds/")[1].split("/")[0])
    return {**BUILD, "id": build_id}, data["records"]


def _record(record_id: int, build=None):
    return record_events(RECORDS[record_id], environment="prod", naming=NAMING, build=build)


# -- environment deployment records -----------------------------------------------------------------
def test_running_record_is_queued_then_in_progress():
    """A record without a result yields queued and in-progress, keyed on environment, run and stage."""
    events = _record(4107, BUILD)
    assert [
        ("ado-env-3-2412-Deploy_prod-1", "shop-web", "prod", "queued", "11:58:00.123"),
        ("ado-env-3-2412-Deploy_prod-1", "shop-web", "prod", "in-progress", "11:58:05.765"),
    ] == [summary(e) for e in events]


def test_record_with_its_run_carries_commit_branch_and_requester():
    """The run adds version, sha, ref, actor, run URL/number and the metadata other sinks read."""
    event = _record(4107, BUILD)[0]
    expected = {
        "version": "20260302.4",
        "run_url": "https://dev.azure.com/contoso/2c7a9a8e-4c1a-4a7e-8a1e-1f0b7c9d3e21/_build/results?buildId=2412",
        "run_number": 2412,
        "actor": "Dana Developer",
        "ref": "refs/heads/main",
        "sha": "5f1c2d3e4a5b6c7d8e9f00112233445566778899",
        "provider": "azure-devops",
        "source": "ado",
        "metadata": {
            "repo": "shop-web",
            "repo_name": "shop-web",
            "project": "shop",
            "organization": "contoso",
            "run_id": "2412",
            "branch": "main",
            "commit_url": "https://dev.azure.com/contoso/shop/_git/shop-web/commit/5f1c2d3e4a5b6c7d8e9f00112233445566778899",
            "git_repo": "shop-web",
            "pipeline": "web",
            "stage": "Deploy_prod",
            "environment_id": "3",
            "record_id": "4107",
            "job": "Deployprod",
        },
    }
    assert expected == event.model_dump(include=set(expected))


def test_record_without_its_run_uses_the_owner_for_version_and_link():
    """Without the build, the owner's name is the version and its web link the run URL."""
    event = _record(4106)[0]
    assert (
        "20260302.3",
        "https://dev.azure.com/contoso/shop/_build/results?buildId=2409",
        None,
    ) == (
        event.version,
        event.run_url,
        event.sha,
    )


def test_failed_record_of_a_second_stage_attempt():
    """A retried stage is its own logical deployment; failed maps to failure at finishTime."""
    assert [
        ("ado-env-3-2409-Deploy_prod-2", "web", "prod", "queued", "10:40:00.000"),
        ("ado-env-3-2409-Deploy_prod-2", "web", "prod", "in-progress", "10:40:04.500"),
        ("ado-env-3-2409-Deploy_prod-2", "web", "prod", "failure", "10:44:10.250"),
    ] == [summary(e) for e in _record(4106)]


def test_cancelled_record():
    """A canceled deployment job ends cancelled."""
    assert ["queued", "in-progress", "cancelled"] == [e.status.value for e in _record(4105)]


def test_succeeded_with_issues_is_success():
    """A job that succeeded with issues counts as a success."""
    assert ("success", "09:25:00.000") == summary(_record(4103)[-1])[3:]


def test_skipped_record_is_dropped_quietly():
    """A skipped job yields nothing and is not reported as malformed."""
    assert Skip("skipped job", malformed=False) == _record(4104)


def test_record_without_owner_is_malformed():
    """A record missing what identifies its deployment is reported as malformed."""
    result = _record(4102)
    assert isinstance(result, Skip)
    assert result.malformed


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("succeeded", Status.SUCCESS),
        ("succeededWithIssues", Status.SUCCESS),
        ("failed", Status.FAILURE),
        ("canceled", Status.CANCELLED),
        ("abandoned", Status.CANCELLED),
        ("skipped", None),
    ],
)
def test_record_result_table(result, expected):
    """The documented record result → status table."""
    assert expected == RECORD_RESULT[result]


def test_unknown_record_result_is_malformed():
    """A result this adapter does not know is not guessed at."""
    record = {**RECORDS[4106], "result": "exploded"}
    mapped = record_events(record, environment="prod", naming=NAMING)
    assert Skip("unknown record result 'exploded'", malformed=True) == mapped


def test_service_map_and_template():
    """The map wins over the template, the template over the pipeline name."""
    mapped = replace(NAMING, service_map={"web": "storefront"})
    templated = replace(NAMING, service_template="{project}-{pipeline}")
    assert ("storefront", "shop-web") == (
        record_events(RECORDS[4106], environment="prod", naming=mapped)[0].service,
        record_events(RECORDS[4106], environment="prod", naming=templated)[0].service,
    )


def test_short_sha_version_and_build_number_run_number():
    """version_from short_sha and run_number_from build_number (falls back to the run id)."""
    naming = replace(NAMING, version_from="short_sha", run_number_from="build_number")
    event = record_events(RECORDS[4107], environment="prod", naming=naming, build=BUILD)[0]
    assert ("5f1c2d3", 2412) == (event.version, event.run_number)


def test_numeric_build_number_becomes_the_run_number():
    """A build number that is an integer is used as run_number when asked."""
    naming = replace(NAMING, run_number_from="build_number")
    build = {**BUILD, "buildNumber": "318"}
    event = record_events(RECORDS[4107], environment="prod", naming=naming, build=build)[0]
    assert 318 == event.run_number


# -- stages from timelines ----------------------------------------------------------------------------
def test_timeline_stages_with_parents_and_a_waiting_approval():
    """Stages queue until their job starts, each parented on the previous success; prod waits."""
    build, records = _timeline("timeline_waiting.json")
    events, problems = stage_events(
        build, records, naming=NAMING, resolve=PATTERN.for_definition(11)
    )
    assert [] == problems
    assert [
        ("ado-stage-2412-Deploy_dev-1", "shop-web", "dev", "queued", "11:52:01.000", ()),
        ("ado-stage-2412-Deploy_dev-1", "shop-web", "dev", "in-progress", "11:52:06.000", ()),
        ("ado-stage-2412-Deploy_dev-1", "shop-web", "dev", "success", "11:55:00.000", ()),
        (
            "ado-stage-2412-Deploy_staging-1",
            "shop-web",
            "staging",
            "queued",
            "11:55:01.000",
            ("ado-stage-2412-Deploy_dev-1",),
        ),
        (
            "ado-stage-2412-Deploy_staging-1",
            "shop-web",
            "staging",
            "in-progress",
            "11:55:06.000",
            ("ado-stage-2412-Deploy_dev-1",),
        ),
        (
            "ado-stage-2412-Deploy_staging-1",
            "shop-web",
            "staging",
            "success",
            "11:58:00.000",
            ("ado-stage-2412-Deploy_dev-1",),
        ),
        (
            "ado-stage-2412-Deploy_prod-1",
            "shop-web",
            "prod",
            "waiting",
            "11:58:01.500",
            ("ado-stage-2412-Deploy_staging-1",),
        ),
    ] == [(*summary(e), e.parent_deployments) for e in events]


def test_rejected_approval_waits_then_is_rejected():
    """A failed stage whose approval failed is rejected, dated at the stage's end."""
    build, records = _timeline("timeline_rejected.json")
    events, _ = stage_events(build, records, naming=NAMING, resolve=PATTERN.for_definition(11))
    assert [
        ("ado-stage-2413-Deploy_prod-1", "shop-web", "prod", "waiting", "12:02:01.500"),
        ("ado-stage-2413-Deploy_prod-1", "shop-web", "prod", "rejected", "12:30:00.000"),
    ] == [summary(e) for e in events]


def test_cancelled_run_cancels_the_running_stage_and_skips_the_rest():
    """The stage running at cancellation ends cancelled; skipped stages yield nothing."""
    build, records = _timeline("timeline_cancelled.json")
    events, _ = stage_events(build, records, naming=NAMING, resolve=PATTERN.for_definition(11))
    assert [
        ("ado-stage-2414-Deploy_dev-2", "shop-web", "dev", "queued", "13:02:01.000"),
        ("ado-stage-2414-Deploy_dev-2", "shop-web", "dev", "in-progress", "13:02:06.000"),
        ("ado-stage-2414-Deploy_dev-2", "shop-web", "dev", "cancelled", "13:03:30.000"),
    ] == [summary(e) for e in events]


def test_gates_only_keeps_what_records_cannot_show():
    """Mode environments: the waiting and the rejection, under the records' deployment id."""

    def resolve(identifier, _name):
        return StageTarget("prod", 3) if identifier == "Deploy_prod" else None

    build, records = _timeline("timeline_rejected.json")
    rejected, _ = stage_events(build, records, naming=NAMING, resolve=resolve, gates_only=True)
    build, records = _timeline("timeline_waiting.json")
    waiting, _ = stage_events(build, records, naming=NAMING, resolve=resolve, gates_only=True)
    assert [
        ("ado-env-3-2413-Deploy_prod-1", "shop-web", "prod", "waiting", "12:02:01.500"),
        ("ado-env-3-2413-Deploy_prod-1", "shop-web", "prod", "rejected", "12:30:00.000"),
        ("ado-env-3-2412-Deploy_prod-1", "shop-web", "prod", "waiting", "11:58:01.500"),
    ] == [summary(e) for e in rejected + waiting]


def test_gates_only_emits_nothing_for_a_stage_that_ran_its_jobs():
    """Once a job ran, its deployment record tells the story: the timeline adds nothing."""
    build, records = _timeline("timeline_cancelled.json")
    events, _ = stage_events(
        build, records, naming=NAMING, resolve=lambda *_: StageTarget("dev", 1), gates_only=True
    )
    assert [] == events


def test_parents_can_be_turned_off():
    """stage_parents: none leaves parents to the core's promotion rule."""
    build, records = _timeline("timeline_waiting.json")
    events, _ = stage_events(
        build, records, naming=NAMING, resolve=PATTERN.for_definition(11), parents=False
    )
    assert set() == {p for e in events for p in e.parent_deployments}


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("succeeded", Status.SUCCESS),
        ("succeededWithIssues", Status.SUCCESS),
        ("partiallySucceeded", Status.SUCCESS),
        ("failed", Status.FAILURE),
        ("canceled", Status.CANCELLED),
        ("abandoned", Status.CANCELLED),
        ("skipped", None),
    ],
)
def test_stage_result_table(result, expected):
    """The documented stage result → status table."""
    assert expected == STAGE_RESULT[result]


def test_build_without_definition_is_malformed():
    """A run the mapping cannot name is reported, not guessed."""
    events, problems = stage_events({"id": 1}, [], naming=NAMING, resolve=PATTERN.for_definition(1))
    assert ([], [Skip("build without id or definition.name", malformed=True)]) == (events, problems)


@pytest.mark.parametrize(
    ("identifier", "name", "mapping", "expected"),
    [
        ("Deploy_prod", "Deploy to prod", {}, "prod"),
        ("deploy-staging", None, {}, "staging"),
        ("Build", "Build", {}, None),
        ("Release", "Ship it", {"Ship it": "production"}, "production"),
        ("Deploy_prod", None, {"Deploy_prod": "live"}, "live"),
    ],
)
def test_stage_to_environment(identifier, name, mapping, expected):
    """The configured map first (identifier or display name), then the pattern."""
    import re

    pattern = re.compile(r"(?i)^deploy[_\- ]?(?P<environment>.+)$")
    assert expected == resolve_stage_environment(identifier, name, mapping=mapping, pattern=pattern)


# -- classic releases ------------------------------------------------------------------------------------
def _release(deployment_id: int, naming=NAMING):
    return release_events(DEPLOYMENTS[deployment_id], naming=naming)


def test_release_deployment_success_with_artifact_facts():
    """Queued, in-progress, success; version, ref and sha come from the primary artifact."""
    events = _release(801)
    assert [
        ("ado-rel-801", "billing-classic", "QA", "queued", "09:00:00.000"),
        ("ado-rel-801", "billing-classic", "QA", "in-progress", "09:00:05.000"),
        ("ado-rel-801", "billing-classic", "QA", "success", "09:03:05.000"),
    ] == [summary(e) for e in events]
    first = events[0]
    assert (
        "20260301.7",
        140,
        "Riley Releaser",
        "refs/heads/release/2026.03",
        "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        "https://dev.azure.com/contoso/shop/_releaseProgress?releaseId=140",
    ) == (first.version, first.run_number, first.actor, first.ref, first.sha, first.run_url)


def test_release_name_is_the_version_by_default_in_releases_mode():
    """version_from release_name (the mode's default) uses the release's name."""
    assert "Release-140" == _release(801, replace(NAMING, version_from="release_name"))[0].version


def test_release_pending_approval_waits():
    """Queued straight into a pending approval is waiting from the start: no zero-length queued."""
    assert ["waiting"] == [e.status.value for e in _release(802)]


def test_release_approval_waits_then_is_rejected():
    """A rejected approval: waiting from its creation, rejected when it was rejected."""
    assert [
        ("waiting", "10:00:00.000"),
        ("rejected", "10:19:59.000"),
    ] == [summary(e)[3:] for e in _release(803)]


def test_release_cancelled_while_running():
    """A cancelled phase ends the deployment cancelled although deploymentStatus says failed."""
    assert ["queued", "in-progress", "cancelled"] == [e.status.value for e in _release(804)]


@pytest.mark.parametrize("deployment_status", ["inProgress", "failed"])
def test_release_cancelling_reports_nothing_new_until_canceled(deployment_status):
    """While cancelling, a deployment is still in progress: its end comes once, when canceled."""
    cancelling = {
        **DEPLOYMENTS[804],
        "deploymentStatus": deployment_status,
        "operationStatus": "cancelling",
        "lastModifiedOn": "2026-03-02T11:00:50.0000000Z",
    }
    del cancelling["completedOn"]
    events = release_events(cancelling, naming=NAMING)
    assert [("queued", "11:00:00.000"), ("in-progress", "11:00:05.000")] == [
        summary(e)[3:] for e in events
    ]


def test_release_manual_intervention_does_not_go_back_to_waiting():
    """A manual intervention in a running deployment keeps it in progress (never a step back)."""
    assert [
        ("waiting", "11:10:00.000"),
        ("in-progress", "11:25:05.000"),
    ] == [summary(e)[3:] for e in _release(805)]


def test_release_unknown_status_pair_is_malformed():
    """A status pair outside the table is reported, not guessed."""
    assert Skip("unknown status pair 'undefined'/'undefined'", malformed=True) == _release(807)


@pytest.mark.parametrize(
    ("deployment_status", "operation_status", "expected"),
    [
        ("notDeployed", "queued", Status.QUEUED),
        ("notDeployed", "scheduled", Status.QUEUED),
        ("notDeployed", "queuedForAgent", Status.QUEUED),
        ("notDeployed", "approved", Status.QUEUED),
        ("notDeployed", "pending", Status.WAITING),
        ("notDeployed", "evaluatingGates", Status.WAITING),
        ("inProgress", "manualInterventionPending", Status.WAITING),
        ("inProgress", "phaseInProgress", Status.IN_PROGRESS),
        ("succeeded", "phaseSucceeded", Status.SUCCESS),
        ("partiallySucceeded", "phasePartiallySucceeded", Status.SUCCESS),
        ("failed", "phaseFailed", Status.FAILURE),
        ("notDeployed", "gateFailed", Status.FAILURE),
        ("notDeployed", "rejected", Status.REJECTED),
        ("notDeployed", "canceled", Status.CANCELLED),
        ("failed", "phaseCanceled", Status.CANCELLED),
        ("inProgress", "cancelling", Status.IN_PROGRESS),
        ("undefined", "undefined", None),
    ],
)
def test_release_status_table(deployment_status, operation_status, expected):
    """The documented deploymentStatus / operationStatus → status table."""
    assert expected == release_status(deployment_status, operation_status)


# -- the service's own examples (tests/fixtures/real/azure_devops) ---------------------------------
def _real_release(deployment_id: int):
    from tests.fixtures.real import load_real

    listed = load_real("azure_devops", "release_deployments_list.json")["responses"]["200"]
    found = next(d for d in listed["body"]["value"] if d["id"] == deployment_id)
    return release_events(found, naming=NAMING)


def test_pascal_case_phase_failed_is_a_failure_not_a_queued_deployment():
    """The service writes operationStatus PhaseFailed: the deployment failed, it does not wait."""
    events = _real_release(79)
    assert "failure" == events[-1].status.value


@pytest.mark.parametrize(
    ("operation_status", "expected"),
    [
        ("Rejected", Status.REJECTED),
        ("Canceled", Status.CANCELLED),
        ("PhaseCanceled", Status.CANCELLED),
        ("GateFailed", Status.FAILURE),
        ("PhaseFailed", Status.FAILURE),
        ("ManualInterventionPending", Status.WAITING),
        ("EvaluatingGates", Status.WAITING),
        ("Pending", Status.WAITING),
        ("Approved", Status.QUEUED),
    ],
)
def test_operation_status_is_read_in_any_case(operation_status, expected):
    """PascalCase (what the service sends) decides like the schema's camelCase."""
    assert expected == release_status("notDeployed", operation_status)


def test_in_progress_is_dated_after_the_approval_decision_not_at_started_on():
    """The service sets startedOn before the approval exists: it runs from the decision."""
    events = _real_release(35)
    assert [
        ("waiting", "2017-06-01T09:34:34.680Z"),
        ("in-progress", "2017-06-11T17:24:31.787Z"),
        ("success", "2017-06-11T17:25:19.937Z"),
    ] == [(e.status.value, e.contract_payload()["happened_at"]) for e in events]

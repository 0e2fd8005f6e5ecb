"""Pure mapping of recorded GitLab JSON to canonical events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers.gitlab.cursor import Sibling
from deploy_fetcher.providers.gitlab.mapping import (
    Malformed,
    ProjectInfo,
    Rendering,
    deployment_events,
    derive_parents,
    list_key,
    parse_deployment,
    parse_pipeline,
    pipeline_events,
    pipeline_needs_detail,
    render,
    sibling_of,
)

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = ProjectInfo("acme/platform/api", "https://gitlab.example.com/acme/platform/api")
RENDERING = Rendering(source="gl", project=PROJECT, service="{project_path}")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def by_id(deployment_id: int) -> dict[str, Any]:
    return next(d for d in load("deployments_page.json") if d["id"] == deployment_id)


def summary(events: list[DeployEvent]) -> list[tuple[str, str]]:
    return [(e.status.value, e.contract_payload()["happened_at"]) for e in events]


def test_successful_deployment_yields_its_dated_lifecycle_snapshot():
    """A finished deployment becomes pending, in-progress and success, each dated by GitLab."""
    view = parse_deployment(by_id(41))
    events = deployment_events(view, RENDERING)
    expected = [
        {
            "deployment_id": "gl-deploy-41",
            "service": "api",
            "environment": "staging",
            "status": status,
            "happened_at": at,
            "version": "a91957a8",
            "run_url": "https://gitlab.example.com/acme/platform/api/-/pipelines/36",
            "run_number": 12,
            "actor": "root",
            "ref": "refs/heads/main",
            "sha": "a91957a858320c0e17f3a0eca7cfacbff50ea29a",
        }
        for status, at in [
            ("pending", "2026-03-02T07:43:52.301Z"),
            ("in-progress", "2026-03-02T07:45:02.118Z"),
            ("success", "2026-03-02T07:46:39.851Z"),
        ]
    ]
    assert expected == [e.contract_payload() for e in events]


def test_events_carry_provider_source_and_metadata_for_other_sinks():
    """Internal fields name the provider and source; metadata gives repo, branch, commit URL."""
    event = deployment_events(parse_deployment(by_id(41)), RENDERING)[-1]
    expected_metadata = {
        "repo": "acme/platform/api",
        "repo_name": "api",
        "project_url": "https://gitlab.example.com/acme/platform/api",
        "branch": "main",
        "commit_url": "https://gitlab.example.com/acme/platform/api/-/commit/"
        "a91957a858320c0e17f3a0eca7cfacbff50ea29a",
        "pipeline": "36",
        "job": "deploy-staging",
        "stage": "deploy-staging",
        "environment_url": "https://staging.api.example.com",
        "environment_tier": "staging",
        "gitlab_status": "success",
    }
    assert ("gitlab", "gl", expected_metadata) == (event.provider, event.source, event.metadata)


@pytest.mark.parametrize(
    ("deployment_id", "expected"),
    [
        (47, ["pending"]),
        (42, ["pending", "waiting"]),
        (46, ["pending", "in-progress"]),
        (41, ["pending", "in-progress", "success"]),
        (43, ["pending", "rejected"]),
        (44, ["pending", "in-progress", "cancelled"]),
        (45, []),
    ],
    ids=["created", "blocked", "running", "success", "rejected", "canceled", "skipped"],
)
def test_deployment_status_table(deployment_id, expected):
    """Each GitLab deployment status maps to the documented canonical lifecycle."""
    events = deployment_events(parse_deployment(by_id(deployment_id)), RENDERING)
    assert expected == [e.status.value for e in events]


def test_failed_status_without_rejection_is_failure():
    """A deployment whose job failed on its script is a failure, dated by the job's finish."""
    raw = by_id(43)
    raw["deployable"]["failure_reason"] = "script_failure"
    events = deployment_events(parse_deployment(raw), RENDERING)
    assert [("pending", "2026-03-02T08:01:00Z"), ("failure", "2026-03-02T08:09:12.400Z")] == (
        summary(events)
    )


def test_blocked_deployment_waits_from_its_last_update():
    """Waiting is dated by the moment the deployment became blocked (its updated_at)."""
    events = deployment_events(parse_deployment(by_id(42)), RENDERING)
    assert ("waiting", "2026-03-02T07:46:40.020Z") == summary(events)[-1]


def test_rejected_approval_on_a_canceled_deployment_is_rejected():
    """A canceled deployment whose approvals include a rejection is reported rejected."""
    events = deployment_events(parse_deployment(load("deployment_detail_rejected.json")), RENDERING)
    assert ("rejected", "2026-03-02T08:22:30.500Z") == summary(events)[-1]


def test_deployment_without_job_uses_its_own_times():
    """A deployment created through the API as running (no deployable) was never pending."""
    view = parse_deployment(load("deployment_without_job.json"))
    events = deployment_events(view, RENDERING)
    expected = ([("in-progress", "2026-03-02T09:00:00Z")], None, None)
    assert expected == (summary(events), events[0].run_url, events[0].run_number)


def test_tag_deployment_sets_tag_metadata_and_no_branch():
    """A deployment of a tag reports the tag, not a branch."""
    event = deployment_events(parse_deployment(by_id(46)), RENDERING)[0]
    assert ("v1.2.0", None) == (event.metadata.get("tag"), event.metadata.get("branch"))


@pytest.mark.parametrize(
    ("version", "deployment_id", "expected"),
    [
        ("short_sha", 41, "a91957a8"),
        ("sha", 41, "a91957a858320c0e17f3a0eca7cfacbff50ea29a"),
        ("ref", 41, "main"),
        ("tag", 46, "v1.2.0"),
        ("tag", 41, "a91957a8"),
        ("pipeline_iid", 41, "12"),
    ],
)
def test_version_sources(version, deployment_id, expected):
    """The version comes from the configured source: sha, short sha, ref, tag or pipeline iid."""
    rendering = Rendering(source="gl", project=PROJECT, service="{project_path}", version=version)
    event = deployment_events(parse_deployment(by_id(deployment_id)), rendering)[0]
    assert expected == event.version


def test_service_template_and_fixed_name():
    """The service comes from the template's fields, or from a fixed name that wins over it."""
    view = parse_deployment(by_id(41))
    templated = Rendering(source="gl", project=PROJECT, service="{namespace}-{job}")
    fixed = Rendering(source="gl", project=PROJECT, service="{job}", service_name="payments")
    assert ("acme/platform-deploy-staging", "payments") == (
        deployment_events(view, templated)[0].service,
        deployment_events(view, fixed)[0].service,
    )


def test_long_environment_names_are_cut_to_the_contract_limit():
    """GitLab allows longer environment names than the dashboard; they are cut to 64."""
    raw = by_id(41)
    raw["environment"]["name"] = "review/" + "x" * 100
    events = deployment_events(parse_deployment(raw), RENDERING)
    assert 64 == len(events[0].environment)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.pop("id"), "missing id"),
        (lambda d: d.update(created_at="yesterday"), "created_at is not a timestamp"),
        (lambda d: d.update(environment=None), "missing name"),
        (lambda d: d.update(deployable=[]), "deployable is not an object"),
    ],
    ids=["no-id", "bad-time", "no-environment", "bad-deployable"],
)
def test_malformed_deployments_are_refused_with_a_reason(change, reason):
    """Items missing what GitLab documents raise Malformed naming the problem."""
    raw = by_id(41)
    change(raw)
    with pytest.raises(Malformed, match=reason):
        parse_deployment(raw)


def test_unknown_deployment_status_is_malformed():
    """A status GitLab does not document is refused rather than guessed."""
    raw = by_id(41)
    raw["status"] = "exploded"
    with pytest.raises(Malformed, match="unknown deployment status"):
        deployment_events(parse_deployment(raw), RENDERING)


def test_list_key_reads_id_and_update_time_even_of_a_partial_item():
    """Paging places an item by id and updated_at, falling back to created_at."""
    expected = (7, datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    assert (expected, None) == (
        list_key({"id": 7, "created_at": "2026-03-02T01:00:00Z"}),
        list_key({"created_at": "2026-03-02T01:00:00Z"}),
    )


# -- parents ---------------------------------------------------------------------------------------


def _sib(dep: int, job: int, stage: str, env: str, status: str = "success") -> Sibling:
    return Sibling(dep, job, stage, env, status)


def test_parent_is_the_earlier_stage_deployment_of_the_same_pipeline():
    """Production's parent is staging of the same pipeline (stages ranked by first job id)."""
    view = parse_deployment(by_id(42))
    siblings = [_sib(41, 657, "deploy-staging", "staging"), sibling_of(view)]
    assert ("gl-deploy-41",) == derive_parents(view, [s for s in siblings if s])


def test_parents_come_from_the_nearest_earlier_stage_only():
    """With dev, staging and production stages, production's parent is staging alone."""
    view = parse_deployment(by_id(42))
    siblings = [
        _sib(30, 600, "deploy-dev", "dev"),
        _sib(41, 657, "deploy-staging", "staging"),
    ]
    assert ("gl-deploy-41",) == derive_parents(view, siblings)


def test_a_retried_earlier_job_keeps_its_stage_rank_and_the_latest_attempt_wins():
    """A retry (new, higher job id) still ranks in its stage; the newest deployment there counts."""
    view = parse_deployment(by_id(42))
    siblings = [
        _sib(41, 657, "deploy-staging", "staging", "failed"),
        _sib(49, 700, "deploy-staging", "staging"),
    ]
    assert ("gl-deploy-49",) == derive_parents(view, siblings)


def test_later_stages_and_skipped_deployments_are_never_parents():
    """Staging gets no parent from production, and a skipped earlier deployment does not count."""
    staging = parse_deployment(by_id(41))
    production = parse_deployment(by_id(42))
    assert ((), ()) == (
        derive_parents(staging, [_sib(42, 664, "deploy-production", "production")]),
        derive_parents(production, [_sib(41, 657, "deploy-staging", "staging", "skipped")]),
    )


# -- pipelines -------------------------------------------------------------------------------------


PIPELINE_RENDERING = Rendering(
    source="gl",
    project=ProjectInfo("acme/tools/cli", "https://gitlab.example.com/acme/tools/cli"),
    service="{project_path}",
    environment="production",
)


def test_finished_pipeline_with_details_yields_its_lifecycle_snapshot():
    """A pipeline taken as a deployment: pending at creation, running at start, success at finish."""
    raw = load("pipelines_page.json")[0]
    view = parse_pipeline(raw, load("pipeline_detail.json"))
    events = pipeline_events(view, PIPELINE_RENDERING)
    expected = [
        {
            "deployment_id": "gl-pipeline-1201",
            "service": "cli",
            "environment": "production",
            "status": status,
            "happened_at": at,
            "version": "f4a5b6c7",
            "run_url": "https://gitlab.example.com/acme/tools/cli/-/pipelines/1201",
            "run_number": 88,
            "actor": "root",
            "ref": "refs/heads/main",
            "sha": "f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3",
        }
        for status, at in [
            ("pending", "2026-03-02T10:00:00Z"),
            ("in-progress", "2026-03-02T10:00:03.120Z"),
            ("success", "2026-03-02T10:06:41.517Z"),
        ]
    ]
    assert expected == [e.contract_payload() for e in events]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("created", ["pending"]),
        ("waiting_for_resource", ["pending", "queued"]),
        ("preparing", ["pending", "queued"]),
        ("pending", ["pending", "queued"]),
        ("manual", ["pending", "waiting"]),
        ("scheduled", ["pending", "waiting"]),
        ("running", ["pending", "in-progress"]),
        ("success", ["pending", "success"]),
        ("failed", ["pending", "failure"]),
        ("canceled", ["pending", "cancelled"]),
        ("canceling", ["pending"]),
        ("skipped", []),
    ],
)
def test_pipeline_status_table(status, expected):
    """Each pipeline status maps to the documented canonical lifecycle (list item, no details)."""
    raw = {**load("pipelines_page.json")[1], "status": status}
    assert expected == [
        e.status.value for e in pipeline_events(parse_pipeline(raw), PIPELINE_RENDERING)
    ]


def test_pipeline_environment_template_uses_the_ref_and_pipeline_name():
    """A templated environment is rendered from the pipeline's fields."""
    rendering = Rendering(
        source="gl",
        project=PIPELINE_RENDERING.project,
        service="{pipeline_name}",
        environment="{source}-{ref}",
    )
    event = pipeline_events(parse_pipeline(load("pipelines_page.json")[1]), rendering)[0]
    assert ("web-main", "Release") == (event.environment, event.service)


def test_only_started_or_finished_pipelines_need_their_details():
    """Details are fetched only for pipelines whose events need start or finish times."""
    listed = load("pipelines_page.json")
    assert (True, False, False) == (
        pipeline_needs_detail(parse_pipeline(listed[0])),
        pipeline_needs_detail(parse_pipeline(listed[1])),
        pipeline_needs_detail(parse_pipeline(listed[0], load("pipeline_detail.json"))),
    )


def test_render_fills_absent_fields_with_nothing_and_refuses_unknown_ones():
    """Templates render absent values empty, an unknown field too (config refuses it at load)."""
    assert "api-" == render("{project}-{ref}", {"project": "api", "ref": None})
    assert "" == render("{nope}", {"project": "api"})
    with pytest.raises(Malformed, match="template"):
        render("{project:d}", {"project": "api"})


REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "gitlab"


def real(name: str) -> Any:
    return json.loads((REAL / name).read_text())


def test_a_deployment_created_through_the_api_as_success_is_only_a_success():
    """The API docs' create example (no deployable, created as success) emits no pending."""
    events = deployment_events(parse_deployment(real("deployments_create.json")), RENDERING)
    assert [("success", "2016-08-11T11:32:35.444Z")] == summary(events)


def test_a_job_that_ended_before_its_deployment_record_is_dated_no_earlier_than_the_record():
    """The API docs' example job finished before the deployment existed: success is not dated earlier."""
    events = deployment_events(parse_deployment(real("deployments_get.json")), RENDERING)
    assert [
        ("pending", "2016-08-11T11:32:35.444Z"),
        ("success", "2016-08-11T11:32:35.444Z"),
    ] == summary(events)


def test_ref_is_qualified_when_gitlab_says_branch_or_tag_and_bare_when_it_does_not():
    """A job's tag flag gives refs/heads/… or refs/tags/…; a deployment without a job keeps the name."""
    branch = deployment_events(parse_deployment(real("deployments_get.json")), RENDERING)[0]
    tag = deployment_events(parse_deployment(by_id(46)), RENDERING)[0]
    unknown = deployment_events(parse_deployment(real("deployments_create.json")), RENDERING)[0]
    assert ("refs/heads/main", "refs/tags/v1.2.0", "main") == (branch.ref, tag.ref, unknown.ref)

"""Pipelines mode end to end: selection by ref, source and job name; one pipeline = one deployment."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from tests.providers.gitlab.support import Harness, make_provider

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.emulators.gitlab.scenario import run_from
from deploy_fetcher.errors import TransientError

PIPELINES = {
    "project": "acme/cli",
    "mode": "pipelines",
    "pipelines": {"refs": ["main"], "job_pattern": "deploy*", "environment": "prod-{ref}"},
}


@pytest.fixture
def cli(emulator: GitLabEmulator) -> GitLabEmulator:
    emulator.add_project("acme/cli")
    return emulator


def test_selected_pipeline_is_one_deployment_with_its_lifecycle(cli):
    """Only main pipelines with a deploy job count; each yields pending, in-progress, success."""
    kept = cli.add_pipeline("acme/cli", environments=(), deploy_job=True, ago=3600)
    cli.add_pipeline("acme/cli", environments=(), deploy_job=True, ref="feature", ago=3500)
    cli.add_pipeline("acme/cli", environments=(), deploy_job=False, ago=3400)
    events = Harness(make_provider(cli, projects=[PIPELINES])).cycle("acme/cli")
    assert [
        (f"gl-pipeline-{kept.id}", "prod-main", "cli", status)
        for status in ("pending", "in-progress", "success")
    ] == [(e.deployment_id, e.environment, e.service, e.status.value) for e in events]


def test_idle_cycle_costs_one_request_once_pipelines_are_handled(cli):
    """Details and jobs are fetched once per pipeline change; an idle cycle is one list request."""
    pipeline = cli.add_pipeline("acme/cli", environments=(), deploy_job=True, ago=3600)
    harness = Harness(make_provider(cli, projects=[PIPELINES]))
    harness.cycle("acme/cli")
    first = [r.path for r in cli.log]
    cli.reset_log()
    harness.cycle("acme/cli")
    base = "/api/v4/projects/acme%2Fcli/pipelines"
    assert (
        [base, f"{base}/{pipeline.id}/jobs", f"{base}/{pipeline.id}"],
        [base],
    ) == (first, [r.path for r in cli.log])


def test_a_running_pipeline_is_followed_to_its_end(cli):
    """A pipeline polled while queued and running is reported through to success, once each."""
    pipeline = cli.add_pipeline("acme/cli", environments=(), deploy_job=True, ago=0)
    harness = Harness(make_provider(cli, projects=[PIPELINES]))
    cli.advance(2)  # the build job is queued for a runner
    for _ in range(100):
        harness.cycle("acme/cli")
        if pipeline.status(cli.now) == "success":
            break
        cli.advance(10)
    harness.cycle("acme/cli")
    assert ["pending", "queued", "in-progress", "success"] == harness.statuses(
        f"gl-pipeline-{pipeline.id}"
    )


def test_single_ref_and_source_are_filtered_by_gitlab(cli):
    """One plain ref and one source are passed to GitLab as filters."""
    settings = {
        **PIPELINES,
        "pipelines": {"refs": ["main"], "sources": ["push"], "environment": "production"},
    }
    Harness(make_provider(cli, projects=[settings])).cycle("acme/cli")
    query = parse_qs(cli.log[-1].query)
    assert (["main"], ["push"], ["updated_at"]) == (
        query["ref"],
        query["source"],
        query["order_by"],
    )


def test_failed_pipeline_is_a_failure(cli):
    """A pipeline whose build fails is one failed deployment."""
    pipeline = cli.add_pipeline("acme/cli", environments=(), deploy_job=True, ago=3600)
    for job in pipeline.jobs:
        job.timeline.cut(pipeline.created_at)
    run_from(cli.world, pipeline, 0, pipeline.created_at, cli.rng, build_outcome="failed")
    events = Harness(make_provider(cli, projects=[PIPELINES])).cycle("acme/cli")
    assert ["pending", "in-progress", "failure"] == [e.status.value for e in events]


def test_a_pipeline_detail_that_is_not_json_is_read_again_next_cycle(cli):
    """An HTML 200 for a pipeline's detail fails the cycle; the next one reports the pipeline."""
    pipeline = cli.add_pipeline("acme/cli", environments=(), deploy_job=True, ago=3600)
    harness = Harness(make_provider(cli, projects=[PIPELINES]))
    html = Fault(
        match=rf"/pipelines/{pipeline.id}$",
        status=200,
        body="<html>Sign in</html>",
        headers={"Content-Type": "text/html"},
    )
    cli.inject(html)
    with pytest.raises(TransientError, match="not JSON"):
        harness.cycle("acme/cli")
    harness.cycle("acme/cli")
    assert ["pending", "in-progress", "success"] == harness.statuses(f"gl-pipeline-{pipeline.id}")

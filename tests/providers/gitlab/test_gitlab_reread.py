"""``fetcher explain``'s reread: one deployment's events with the GitLab objects they came from."""

from __future__ import annotations

from datetime import timedelta

from tests.providers.gitlab.support import START, make_provider

PIPELINES = {"project": "acme/api", "mode": "pipelines", "pipelines": {"refs": ["main"]}}


def test_a_reread_deployment_carries_its_raw_deployment_object(emulator):
    """The staging deployment is read with its own deployment object, not its sibling's."""
    pipeline = emulator.add_pipeline("acme/api", environments=["staging", "production"], ago=3600)
    staging = emulator.deployments_of(pipeline)["staging"]
    found = make_provider(emulator).reread(
        "acme/api", f"gl-deploy-{staging.id}", since=START - timedelta(days=1), until=START
    )
    ((what, data),) = found.objects
    assert (f"deployment {staging.id}", staging.id, "staging") == (
        what,
        data["id"],
        data["environment"]["name"],
    )
    assert {f"gl-deploy-{staging.id}"} == {e.deployment_id for e in found.events}


def test_a_reread_pipeline_carries_the_pipeline_it_was_mapped_from(emulator):
    """In pipelines mode the object is the pipeline (its detail where one was read)."""
    pipeline = emulator.add_pipeline("acme/api", environments=(), deploy_job=True, ago=3600)
    found = make_provider(emulator, projects=[PIPELINES]).reread(
        "acme/api", f"gl-pipeline-{pipeline.id}", since=START - timedelta(days=1), until=START
    )
    assert [(f"pipeline {pipeline.id}", pipeline.id)] == [
        (what, data["id"]) for what, data in found.objects
    ]
    assert ["pending", "in-progress", "success"] == [e.status.value for e in found.events]

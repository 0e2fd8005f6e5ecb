"""Every GitLab emulator response the adapter reads has GitLab's documented fields and values.

GitLab publishes no machine-readable schema for these endpoints; its API documentation gives the
fields as example responses and the statuses as lists. The examples are kept in
``tests/fixtures/real/gitlab`` (see the README there), and a schema is derived from each: every
field of the example must be present, with the example's JSON type or null (GitLab sends null for
what is not there yet: ``started_at`` of a pending job, ``name`` of a pipeline without one), nested
objects likewise; statuses must be one of the documented values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.emulators.schemas import get_json, problems
from tests.fixtures.real import load_real

from deploy_fetcher.emulators.gitlab import GitLabEmulator

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TOKEN = "emulator-token"

#: ``status`` of a deployment: the Deployments API's documented values, and ``skipped``, which
#: GitLab's deployment model has for a job that never ran (the list filter does not offer it).
DEPLOYMENT_STATUSES = ["created", "running", "success", "failed", "canceled", "blocked", "skipped"]
#: ``status`` of a pipeline, as the Pipelines API documents it.
PIPELINE_STATUSES = [
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "success",
    "failed",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
]
_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}


def schema_of(example: Any) -> dict[str, Any]:
    """A JSON schema requiring the example's fields with the example's types."""
    if example is None:
        return {}
    if isinstance(example, dict):
        return {
            "type": "object",
            "required": sorted(example),
            "properties": {key: schema_of(value) for key, value in example.items()},
        }
    if isinstance(example, list):
        return {"type": "array", "items": schema_of(example[0]) if example else {}}
    return {"type": [_TYPES[type(example)], "null"]}


def _deployment_schema() -> dict[str, Any]:
    schema = schema_of(load_real("gitlab", "deployments_get.json"))
    # A deployment made through the Deployments API has no job (the create example).
    schema["properties"]["deployable"] = {
        "anyOf": [schema["properties"]["deployable"], {"type": "null"}]
    }
    schema["properties"]["status"] = {"enum": DEPLOYMENT_STATUSES}
    return schema


def _pipeline_schema(name: str) -> dict[str, Any]:
    example = load_real("gitlab", name)
    schema = schema_of(example[0] if isinstance(example, list) else example)
    schema["properties"]["status"] = {"enum": PIPELINE_STATUSES}
    return schema


@pytest.fixture(scope="module")
def world() -> Any:
    """The demo scenario some hours in: deployments and pipelines in every state it plays."""
    emulator = GitLabEmulator(token=TOKEN, scenario="demo", seed=7, start=START)
    with emulator:
        emulator.advance(8 * 3600)
        project = "acme/api"
        emulator.add_pipeline(project, gates={"production": "manual"}, ago=600)  # blocked
        for ago in (30, 90, 180, 300):  # at different points of their run
            emulator.add_pipeline(project, ago=ago)
        emulator.add_pipeline(project)  # just created
        yield emulator


def _get(emulator: GitLabEmulator, path: str) -> Any:
    return get_json(emulator.url(f"/api/v4{path}"), {"PRIVATE-TOKEN": TOKEN})


def _projects(emulator: GitLabEmulator) -> list[int]:
    return [p["id"] for p in _get(emulator, "/groups/acme/projects?per_page=100")]


def test_deployments_have_the_documented_fields_and_statuses(world):
    """Listed and single deployments match the documented example (a job, or none) and statuses."""
    schema = _deployment_schema()
    found: list[str] = []
    statuses: set[str] = set()
    for project in _projects(world):
        for item in _get(
            world, f"/projects/{project}/deployments?per_page=100&order_by=id&sort=desc"
        ):
            statuses.add(item["status"])
            found += [f"deployment {item['id']}: {p}" for p in problems(schema, item)]
            single = _get(world, f"/projects/{project}/deployments/{item['id']}")
            found += [f"deployment {item['id']} (single): {p}" for p in problems(schema, single)]
    assert [] == found
    assert {"created", "running", "success", "failed", "blocked"} <= statuses


def test_pipelines_have_the_documented_fields_and_statuses(world):
    """Listed pipelines match the list example, a single pipeline the detailed one."""
    listed, single = _pipeline_schema("pipelines_list.json"), _pipeline_schema("pipelines_get.json")
    found: list[str] = []
    statuses: set[str] = set()
    for project in _projects(world):
        for item in _get(world, f"/projects/{project}/pipelines?per_page=100"):
            statuses.add(item["status"])
            found += [f"pipeline {item['id']}: {p}" for p in problems(listed, item)]
            detail = _get(world, f"/projects/{project}/pipelines/{item['id']}")
            found += [f"pipeline {item['id']} (single): {p}" for p in problems(single, detail)]
    assert [] == found
    assert {"success", "failed", "running"} <= statuses

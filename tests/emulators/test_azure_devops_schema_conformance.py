"""Every Azure DevOps emulator response the adapter reads conforms to the published REST specs.

The schemas are the 200 responses of the operations the adapter calls and the definitions they
reference, copied from ``MicrosoftDocs/vsts-rest-api-specs`` (API version 7.1) into
``tests/fixtures/real/azure_devops`` (see the README there). The specs describe a list response as
the array; the service wraps it in ``{"count", "value"}``, so each ``value`` is validated. Swagger
2.0 cannot mark a field nullable and the service's own examples send null in many, so null is
accepted for any field; every value that is there must have the documented type and enum value.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from tests.emulators.schemas import get_json, problems
from tests.fixtures.real import load_real
from tests.providers.azure_devops.support import START, TOKEN

from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator

SPECS = load_real("azure_devops", "api_7.1_schemas.json")["specs"]
RELEASE = load_real("azure_devops", "release_7.1_deployments_schema.json")
AUTH = {"Authorization": "Basic " + base64.b64encode(f":{TOKEN}".encode()).decode()}


def _items(spec: str, operation: str) -> tuple[Any, Any]:
    """(item schema, definitions) of a list operation; the single object for a non-list."""
    section = SPECS[spec]
    schema = section["operations"][operation]["response"]["schema"]
    return schema.get("items", schema), section["definitions"]


def _camel(document: Any) -> Any:
    """The service sends operationStatus in PascalCase where the spec lists camelCase."""
    out = dict(document)
    value = out.get("operationStatus")
    if isinstance(value, str):
        out["operationStatus"] = value[:1].lower() + value[1:]
    return out


@pytest.fixture(scope="module")
def world() -> Any:
    """The demo scenario a day in: runs and releases of every outcome."""
    emulator = AzureDevOpsEmulator(token=TOKEN, scenario="demo", seed=7, start=START)
    with emulator:
        emulator.advance(6 * 3600)
        definition = emulator.scenario.releases[0].definition.name
        environments = [env.name for env in emulator.scenario.releases[0].environments]
        held = {name: {"approval": 60.0, "decision": "pending"} for name in environments}
        rejected = emulator.add_release(definition, environments=held)
        cancelled_waiting = emulator.add_release(definition, environments=held)
        cancelled_running = emulator.add_release(definition)
        emulator.add_release(definition, environments=held)  # left pending
        emulator.advance(60)
        emulator.reject_release(rejected.id, environments[0])
        emulator.cancel_release(cancelled_waiting.id)
        emulator.cancel_release(cancelled_running.id)
        emulator.add_release(definition)  # in progress
        emulator.advance(5)
        yield emulator


def _get(emulator: AzureDevOpsEmulator, base: str, path: str) -> Any:
    joiner = "&" if "?" in path else "?"
    return get_json(f"{base}/shop/_apis/{path}{joiner}api-version=7.1-preview.1", AUTH)


def test_builds_timelines_environments_and_records_conform(world):
    """Builds, their timelines, environments and environment deployment records match the spec."""
    base = world.organization_url
    found: list[str] = []
    checked = 0
    build, build_defs = _items("build.json", "GET /_apis/build/builds")
    builds = _get(world, base, "build/builds?$top=100")["value"]
    for item in builds:
        found += [
            f"build {item['id']}: {p}"
            for p in problems(build, item, definitions=build_defs, nulls=True)
        ]
        timeline, _ = _items("build.json", "GET /_apis/build/builds/{buildId}/timeline")
        body = _get(world, base, f"build/builds/{item['id']}/timeline")
        found += [
            f"timeline {item['id']}: {p}"
            for p in problems(timeline, body, definitions=build_defs, nulls=True)
        ]
        checked += 2
    environment, env_defs = _items("taskAgent.json", "GET /_apis/distributedtask/environments")
    record, _ = _items(
        "taskAgent.json",
        "GET /_apis/distributedtask/environments/{environmentId}/environmentdeploymentrecords",
    )
    for env in _get(world, base, "distributedtask/environments")["value"]:
        found += [
            f"environment {env['id']}: {p}"
            for p in problems(environment, env, definitions=env_defs, nulls=True)
        ]
        path = f"distributedtask/environments/{env['id']}/environmentdeploymentrecords?top=100"
        for item in _get(world, base, path)["value"]:
            found += [
                f"record {item['id']}: {p}"
                for p in problems(record, item, definitions=env_defs, nulls=True)
            ]
            checked += 1
    assert [] == found
    assert 20 < checked


def test_release_deployments_conform_and_every_emitted_status_is_documented(world):
    """Release deployments match the spec; operationStatus comes in PascalCase, as from the service."""
    schema = RELEASE["responses"]["200"]["schema"]["items"]
    deployments = _get(world, world.release_url, "release/deployments?$top=100")["value"]
    found = [
        f"deployment {d['id']}: {p}"
        for d in deployments
        for p in problems(schema, _camel(d), definitions=RELEASE["definitions"], nulls=True)
    ]
    assert [] == found
    operations = {d["operationStatus"] for d in deployments}
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", value) for value in operations)
    expected = {"Pending", "PhaseSucceeded", "PhaseFailed", "Rejected", "Canceled", "PhaseCanceled"}
    assert expected <= operations
    assert {d["queuedOn"] for d in deployments} == {"0001-01-01T00:00:00"}
    late = [
        d for d in deployments for a in d["preDeployApprovals"] if a["createdOn"] > d["startedOn"]
    ]
    assert late, "approvals are created after startedOn, as the service does"


def test_project_and_definition_listings_conform(world):
    """The organization's projects and a project's pipeline definitions match the spec."""
    base = world.organization_url
    project, core_defs = _items("core.json", "GET /_apis/projects")
    projects = get_json(f"{base}/_apis/projects?$top=100&api-version=7.1-preview.4", AUTH)
    found = [
        f"project {item.get('name')}: {p}"
        for item in projects["value"]
        for p in problems(project, item, definitions=core_defs, nulls=True)
    ]
    definition, build_defs = _items("build.json", "GET /_apis/build/definitions")
    definitions = _get(world, base, "build/definitions?$top=100")["value"]
    found += [
        f"definition {item.get('id')}: {p}"
        for item in definitions
        for p in problems(definition, item, definitions=build_defs, nulls=True)
    ]
    assert [] == found
    assert (len(projects["value"]), len(definitions)) == (projects["count"], len(definitions))
    assert ["shop"] == [item["name"] for item in projects["value"]]
    assert definitions

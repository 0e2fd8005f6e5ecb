"""The GitHub emulator's GraphQL answers conform to GitHub's published GraphQL schema.

The schema is GitHub's own (the npm package ``@octokit/graphql-schema``, see the README of the
real fixtures), cut to the types and fields the adapter's two queries select. Each query the
adapter sends is validated against it, and each answer is run back through it: a value of the wrong
type, an unknown enum value or a null where the schema says non-null is an execution error, and the
data must come out exactly as the emulator sent it.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import GraphQLResolveInfo, build_schema, graphql_sync, parse, validate
from tests.emulators.schemas import get_json
from tests.fixtures.real import REAL

from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.emulators.github.scenario import Pipeline, WorkflowSpec, start_pipeline
from deploy_fetcher.providers.github.deployments import GRAPHQL_STATUSES

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
REPO = "octo/api"
FLOW = WorkflowSpec("Deploy API", "deploy.yml", ("dev", "prod"), frozenset({"prod"}))
AUTH = {"Authorization": "token emulator-token"}
SCHEMA = build_schema((REAL / "github" / "graphql_schema_subset.graphql").read_text("utf-8"))
#: The adapter's workflow-files query for two files (lookups.prefetch_graphs builds it so).
WORKFLOWS = (
    "query Workflows($owner: String!, $name: String!, $e0: String!, $e1: String!) "
    "{ repository(owner: $owner, name: $name) { f0: object(expression: $e0) { ... on Blob { text } } "
    "f1: object(expression: $e1) { ... on Blob { text } } } }"
)


@pytest.fixture(scope="module")
def world() -> Any:
    """Deployments through every outcome, one in every documented state, workflow files."""
    emulator = GitHubEmulator(scenario="empty", start=START)
    emulator.start()
    try:
        for n, outcome in enumerate(("success", "failure", "cancelled", "rejected")):
            at = START + timedelta(minutes=10 * n)
            start_pipeline(emulator, REPO, FLOW, at=at, sha=f"{n:x}" * 40, plan=Pipeline(outcome))
        emulator.advance(3600)
        tool = emulator.add_deployment(REPO, "preview", sha="e" * 40, at=emulator.now())
        for state in ("pending", "queued", "in_progress", "waiting", "success", "error"):
            emulator.add_status(REPO, tool.id, state, at=emulator.now())
        yield emulator
    finally:
        emulator.stop()


def _post(emulator: GitHubEmulator, query: str, variables: dict[str, Any]) -> Any:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(  # noqa: S310 - the emulator on 127.0.0.1
        emulator.url("/graphql"), data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def _by_response_key(source: Any, info: GraphQLResolveInfo, **_args: Any) -> Any:
    """Read each field from the answer under its response key (an alias where there is one)."""
    return source.get(info.path.key) if isinstance(source, dict) else None


def _concrete(value: Any, _info: GraphQLResolveInfo, abstract: Any) -> str:
    """The object type behind an abstract field, as the queries ask for it."""
    if abstract.name == "Actor":
        return "Bot" if str(value.get("login", "")).endswith("[bot]") else "User"
    return {"Node": "Deployment", "GitObject": "Blob"}[abstract.name]


def _run_back(query: str, variables: dict[str, Any], answer: Any) -> tuple[list[str], Any]:
    """Execution errors of the answer's data through the schema, and the data it gives."""
    result = graphql_sync(
        SCHEMA,
        query,
        root_value=answer["data"],
        variable_values=variables,
        field_resolver=_by_response_key,
        type_resolver=_concrete,
    )
    return [str(e) for e in result.errors or []], result.data


@pytest.mark.parametrize("query", [GRAPHQL_STATUSES, WORKFLOWS], ids=["statuses", "workflows"])
def test_the_adapters_queries_are_valid_against_githubs_schema(query):
    """Both queries the adapter sends validate against GitHub's schema."""
    assert [] == [e.message for e in validate(SCHEMA, parse(query))]


def test_deployment_statuses_answer_conforms(world):
    """nodes(ids:) on Deployment: every state, time, URL and creator as GitHub's schema types it."""
    deployments = get_json(world.url(f"/repos/{REPO}/deployments?per_page=100"), AUTH)
    variables = {"ids": [d["node_id"] for d in deployments]}
    answer = _post(world, GRAPHQL_STATUSES, variables)
    errors, data = _run_back(GRAPHQL_STATUSES, variables, answer)
    assert ([], answer["data"]) == (errors, data)
    states = {s["state"] for node in data["nodes"] for s in node["statuses"]["nodes"]}
    assert {"PENDING", "QUEUED", "IN_PROGRESS", "WAITING", "SUCCESS", "FAILURE", "ERROR"} <= states
    assert 9 == len(data["nodes"])


def test_a_node_that_is_gone_is_null_with_a_not_found_error(world):
    """An id that resolves to nothing is a null node, which [Node]! allows, and a NOT_FOUND error."""
    variables = {"ids": ["DE_gone"]}
    answer = _post(world, GRAPHQL_STATUSES, variables)
    errors, data = _run_back(GRAPHQL_STATUSES, variables, answer)
    assert ([], {"nodes": [None]}) == (errors, data)
    assert [("NOT_FOUND", ["nodes", 0])] == [(e["type"], e["path"]) for e in answer["errors"]]


def test_workflow_files_answer_conforms(world):
    """A workflow file read as a Blob through repository.object: its text, or null when missing."""
    run = get_json(world.url(f"/repos/{REPO}/actions/runs?per_page=1"), AUTH)["workflow_runs"][0]
    variables = {
        "owner": "octo",
        "name": "api",
        "e0": f"{run['head_sha']}:{run['path']}",
        "e1": f"{run['head_sha']}:.github/workflows/missing.yml",
    }
    answer = _post(world, WORKFLOWS, variables)
    errors, data = _run_back(WORKFLOWS, variables, answer)
    assert ([], answer["data"]) == (errors, data)
    assert (True, None) == ("jobs:" in data["repository"]["f0"]["text"], data["repository"]["f1"])

"""Properties of the Azure DevOps mapping: any response the API could send maps to events or a Skip.

The client hands the mapping dicts only (it drops list items that are not objects), and the adapter
logs a malformed :class:`Skip` with its URL; the mapping itself must never raise.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.properties.mutations import OFFSETS, fixture, prune, reoffset, variants

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers.azure_devops.mapping import (
    Naming,
    Skip,
    StageTarget,
    build_index,
    record_events,
    release_events,
    resolve_stage_environment,
    stage_events,
)

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMINGS = (
    Naming("ado", "contoso", "https://dev.azure.com/contoso", "shop"),
    Naming(
        "ado",
        "contoso",
        "https://dev.azure.com/contoso",
        "shop",
        service_template="{pipeline}-{stage}-{environment}",
        version_from="short_sha",
        run_number_from="build_number",
    ),
)
_LINK = {"web": {"href": None}}
_IDENTITY = {"displayName": None, "uniqueName": None}
BUILD_SHAPE: dict[str, Any] = {
    "id": None,
    "buildNumber": None,
    "status": None,
    "result": None,
    "queueTime": None,
    "startTime": None,
    "finishTime": None,
    "sourceBranch": None,
    "sourceVersion": None,
    "definition": {"id": None, "name": None},
    "requestedFor": _IDENTITY,
    "repository": {"id": None, "type": None, "name": None},
    "_links": _LINK,
}
RECORD_SHAPE: dict[str, Any] = {
    "id": None,
    "environmentId": None,
    "stageName": None,
    "jobName": None,
    "stageAttempt": None,
    "result": None,
    "queueTime": None,
    "startTime": None,
    "finishTime": None,
    "definition": {"id": None, "name": None},
    "owner": {"id": None, "name": None, "_links": _LINK},
}
TIMELINE_SHAPE: dict[str, Any] = dict.fromkeys(
    (
        "id",
        "parentId",
        "type",
        "name",
        "identifier",
        "order",
        "state",
        "result",
        "startTime",
        "finishTime",
        "lastModified",
        "attempt",
    )
)
_APPROVAL = {"createdOn": None, "modifiedOn": None, "status": None, "isAutomated": None}
RELEASE_SHAPE: dict[str, Any] = {
    "id": None,
    "release": {
        "id": None,
        "name": None,
        "webAccessUri": None,
        "_links": _LINK,
        "artifacts": {
            "isPrimary": None,
            "definitionReference": {
                "version": {"name": None},
                "branch": {"id": None},
                "sourceVersion": {"id": None},
            },
        },
    },
    "releaseDefinition": {"id": None, "name": None},
    "releaseEnvironment": {"id": None, "name": None},
    "deploymentStatus": None,
    "operationStatus": None,
    "queuedOn": None,
    "startedOn": None,
    "completedOn": None,
    "lastModifiedOn": None,
    "requestedFor": _IDENTITY,
    "requestedBy": _IDENTITY,
    "preDeployApprovals": _APPROVAL,
}

BUILD = prune(fixture("azure_devops", "build"), BUILD_SHAPE)
RECORDS = prune(fixture("azure_devops", "environment_records")["value"], RECORD_SHAPE)
TIMELINES = [
    prune(fixture("azure_devops", name)["records"], TIMELINE_SHAPE)
    for name in ("timeline_cancelled", "timeline_rejected", "timeline_waiting")
]
RELEASES = prune(fixture("azure_devops", "release_deployments")["value"], RELEASE_SHAPE)
_STAGE = re.compile(r"Deploy_(?P<environment>\w+)")


def _resolver(with_ids: bool) -> Any:
    def resolve(identifier: str, name: str | None) -> StageTarget | None:
        environment = resolve_stage_environment(identifier, name, mapping={}, pattern=_STAGE)
        if environment is None:
            return None
        return StageTarget(environment, len(environment) if with_ids else None)

    return resolve


def _check(outcome: list[DeployEvent] | Skip) -> None:
    if isinstance(outcome, Skip):
        return
    for event in outcome:
        assert isinstance(event, DeployEvent)
        assert "azure-devops" == event.provider
        assert "ado" == event.source
        assert ("contoso", "shop") == (event.metadata["organization"], event.metadata["project"])


def _objects(items: Any) -> list[dict[str, Any]]:
    """What the client hands on: the list's items that are objects."""
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


@BOUNDED
@given(
    st.sampled_from(RECORDS).flatmap(variants),
    st.none() | variants(BUILD, 3),
    st.sampled_from(NAMINGS),
)
def test_any_environment_record_maps_to_events_or_a_skip(
    record: Any, build: Any, naming: Naming
) -> None:
    """A deployment record, with or without its run, maps to events or a Skip, never an exception."""
    if not isinstance(record, dict):
        return
    builds = build_index(_objects([build]))
    _check(record_events(record, environment="prod", naming=naming, build=builds.get(2412)))


@BOUNDED
@given(
    variants(BUILD, 3),
    st.sampled_from(TIMELINES).flatmap(lambda t: variants(t, 6)),
    st.sampled_from(NAMINGS),
    st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_any_timeline_maps_to_events_or_skips(
    build: Any, records: Any, naming: Naming, flags: tuple[bool, bool, bool]
) -> None:
    """A run and its timeline map to events and Skips, never an exception."""
    if not isinstance(build, dict):
        return
    gates_only, with_ids, parents = flags
    events, problems = stage_events(
        build,
        _objects(records),
        naming=naming,
        resolve=_resolver(with_ids),
        gates_only=gates_only,
        parents=parents,
    )
    _check(events)
    assert all(isinstance(p, Skip) for p in problems)


@BOUNDED
@given(st.sampled_from(RELEASES).flatmap(variants), st.sampled_from(NAMINGS))
def test_any_release_deployment_maps_to_events_or_a_skip(deployment: Any, naming: Naming) -> None:
    """A classic release deployment maps to events or a Skip, never an exception."""
    if not isinstance(deployment, dict):
        return
    _check(release_events(deployment, naming=naming))


#: Recorded release deployments that do yield events (one has a status pair no table knows).
EMITTING = [d for d in RELEASES if isinstance(release_events(d, naming=NAMINGS[0]), list)]


@BOUNDED
@given(st.sampled_from(EMITTING), OFFSETS, st.integers(0, 7))
def test_timestamps_in_other_offsets_give_the_same_events(
    deployment: dict[str, Any], offset: int, digits: int
) -> None:
    """The same instants written in another offset or precision map to the very same events."""
    expected = release_events(deployment, naming=NAMINGS[0])
    assert isinstance(expected, list)
    assert expected
    assert expected == release_events(reoffset(deployment, offset, digits), naming=NAMINGS[0])

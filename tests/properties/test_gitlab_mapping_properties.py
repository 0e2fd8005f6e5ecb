"""Properties of the GitLab mapping: any response the API could send maps to events or a logged skip.

The adapter catches ``ValueError`` around parsing and mapping (``Malformed`` is one, and so is the
event model's refusal) and logs the item with its URL; anything else would end the cycle, so the
properties allow exactly that exception and no other.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.properties.mutations import OFFSETS, fixture, prune, reoffset, variants

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers.gitlab.mapping import (
    ProjectInfo,
    Rendering,
    deployment_events,
    derive_parents,
    list_key,
    parse_deployment,
    parse_pipeline,
    pipeline_events,
    pipeline_needs_detail,
    sibling_of,
)

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROJECT = ProjectInfo("acme/platform/api", "https://gitlab.example.com/acme/platform/api")
RENDERINGS = (
    Rendering("gl", PROJECT, "{project_path}"),
    Rendering("gl", PROJECT, "{project_path}-{environment}", version="tag"),
    Rendering("gl", PROJECT, "{project}", service_name="api", version="pipeline_iid"),
)
PIPELINE_RENDERINGS = (
    Rendering("gl", PROJECT, "{project_path}", environment="production"),
    Rendering("gl", PROJECT, "{pipeline_name}", environment="{ref}", version="ref"),
)
_USER = {"username": None}
DEPLOYMENT_SHAPE: dict[str, Any] = {
    "id": None,
    "iid": None,
    "ref": None,
    "sha": None,
    "created_at": None,
    "updated_at": None,
    "status": None,
    "user": _USER,
    "environment": {"name": None, "external_url": None, "tier": None},
    "deployable": {
        "id": None,
        "status": None,
        "stage": None,
        "name": None,
        "tag": None,
        "started_at": None,
        "finished_at": None,
        "failure_reason": None,
        "user": _USER,
        "pipeline": {"id": None, "iid": None, "web_url": None},
    },
    "approvals": {"status": None, "created_at": None, "user": _USER},
}
PIPELINE_SHAPE: dict[str, Any] = dict.fromkeys(
    (
        "id",
        "iid",
        "status",
        "ref",
        "sha",
        "source",
        "name",
        "tag",
        "web_url",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    )
) | {"user": _USER}

DEPLOYMENT_BASES = [
    *prune(fixture("gitlab", "deployments_page"), DEPLOYMENT_SHAPE),
    prune(fixture("gitlab", "deployment_detail_rejected"), DEPLOYMENT_SHAPE),
    prune(fixture("gitlab", "deployment_without_job"), DEPLOYMENT_SHAPE),
]
PIPELINE_BASES = [
    *prune(fixture("gitlab", "pipelines_page"), PIPELINE_SHAPE),
    prune(fixture("gitlab", "pipeline_detail"), PIPELINE_SHAPE),
]


def _check(events: list[DeployEvent]) -> None:
    for event in events:
        assert isinstance(event, DeployEvent)
        assert "gitlab" == event.provider
        assert "gl" == event.source
        assert "acme/platform/api" == event.metadata["repo"]


def _deployment_outcome(raw: Any, rendering: Rendering, others: list[Any]) -> object:
    """Events, or the ValueError the adapter logs and skips (any other exception propagates)."""
    list_key(raw)
    try:
        view = parse_deployment(raw)
        siblings = []
        for other in others:
            try:
                sibling = sibling_of(parse_deployment(other))
            except ValueError:
                continue
            if sibling is not None:
                siblings.append(sibling)
        events = deployment_events(view, rendering, derive_parents(view, siblings))
    except ValueError as skipped:
        return skipped
    _check(events)
    return events


@BOUNDED
@given(
    st.sampled_from(DEPLOYMENT_BASES).flatmap(variants),
    st.lists(st.sampled_from(DEPLOYMENT_BASES).flatmap(lambda b: variants(b, 2)), max_size=3),
    st.sampled_from(RENDERINGS),
)
def test_any_deployment_maps_to_events_or_a_skip(
    raw: Any, others: list[Any], rendering: Rendering
) -> None:
    """A deployment item (and its siblings for parents) maps, or is refused with a ValueError."""
    _deployment_outcome(raw, rendering, others)


@BOUNDED
@given(
    st.sampled_from(PIPELINE_BASES).flatmap(variants),
    st.none() | st.sampled_from(PIPELINE_BASES).flatmap(lambda b: variants(b, 3)),
    st.sampled_from(PIPELINE_RENDERINGS),
)
def test_any_pipeline_maps_to_events_or_a_skip(raw: Any, detail: Any, rendering: Rendering) -> None:
    """A pipeline item, merged with whatever its detail says, maps or is refused with a ValueError."""
    list_key(raw)
    try:
        view = parse_pipeline(raw)
        pipeline_needs_detail(view)
        events = pipeline_events(parse_pipeline(raw, detail), rendering)
    except ValueError:
        return
    _check(events)


#: Recorded deployments that do yield events (a skipped one yields none, in any offset).
EMITTING = [b for b in DEPLOYMENT_BASES if deployment_events(parse_deployment(b), RENDERINGS[0])]


@BOUNDED
@given(st.sampled_from(EMITTING), OFFSETS, st.integers(0, 7))
def test_timestamps_in_other_offsets_give_the_same_events(
    raw: dict[str, Any], offset: int, digits: int
) -> None:
    """The same instants written in another offset or precision map to the very same events."""
    expected = deployment_events(parse_deployment(raw), RENDERINGS[0])
    assert expected == deployment_events(
        parse_deployment(reoffset(raw, offset, digits)), RENDERINGS[0]
    )
    assert expected

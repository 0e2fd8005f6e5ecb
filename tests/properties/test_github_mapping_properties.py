"""Properties of the GitHub mapping: any response the API could send maps to events or a logged skip.

The adapter validates an object with ``deployment_problem`` / ``run_problem`` / ``status_problem``
first and maps it only when they find nothing; the properties hold the mapping to that contract.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.properties.mutations import OFFSETS, fixture, reoffset, variants

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers.github.config import RepoSettings
from deploy_fetcher.providers.github.mapping import (
    Repo,
    deployment_events,
    deployment_problem,
    run_events,
    run_id_of_statuses,
    run_problem,
    snapshot_deployment,
)

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REPO = Repo("octo/api", "https://github.com")
SETTINGS = (
    RepoSettings(),
    RepoSettings(version="payload.version", service="{repo_name}-{environment}"),
    RepoSettings(version="run_number", service="{workflow_file}/{branch}"),
)


def _keep(doc: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The fixture's fields the mapping reads (so mutations land where they matter)."""
    return {key: doc[key] for key in keys if key in doc}


def _user(doc: dict[str, Any]) -> dict[str, Any]:
    return {"login": doc["login"]} if isinstance(doc, dict) and "login" in doc else doc


_DEPLOYMENT_KEYS = ("id", "node_id", "environment", "created_at", "sha", "ref", "task", "payload")
_STATUS_KEYS = ("id", "state", "created_at", "log_url", "target_url", "environment")
_RUN_KEYS = (
    "id",
    "name",
    "path",
    "head_branch",
    "head_sha",
    "run_number",
    "run_attempt",
    "event",
    "status",
    "conclusion",
    "created_at",
    "updated_at",
    "run_started_at",
    "html_url",
)


def _deployment(name: str) -> dict[str, Any]:
    raw = fixture("github", name)
    return {**_keep(raw, _DEPLOYMENT_KEYS), "creator": _user(raw["creator"])}


def _statuses(name: str) -> list[dict[str, Any]]:
    return [_keep(s, _STATUS_KEYS) for s in fixture("github", name)]


def _run(name: str) -> dict[str, Any]:
    raw = fixture("github", name)
    return {
        **_keep(raw, _RUN_KEYS),
        "actor": _user(raw["actor"]),
        "triggering_actor": _user(raw["triggering_actor"]),
    }


CASES = (
    ("deployment_actions_staging", "statuses_actions_staging", "run_success"),
    ("deployment_cancelled", "statuses_cancelled", "run_cancelled"),
    ("deployment_rejected", "statuses_rejected", "run_rejected"),
)
DEPLOYMENTS = st.sampled_from(CASES).flatmap(
    lambda case: st.tuples(
        variants(_deployment(case[0]), 3),
        variants(_statuses(case[1]), 5),
        st.none() | variants(_run(case[2]), 4),
        st.sampled_from(SETTINGS),
    )
)
RUNS = st.sampled_from(("run_success", "run_cancelled", "run_rejected")).flatmap(
    lambda name: st.tuples(variants(_run(name), 5), st.sampled_from(SETTINGS))
)


def _check(events: list[DeployEvent]) -> None:
    for event in events:
        assert isinstance(event, DeployEvent)
        assert "github" == event.provider
        assert "gh" == event.source
        assert "octo/api" == event.metadata["repo"]


@BOUNDED
@given(DEPLOYMENTS)
def test_any_deployment_maps_to_events_or_a_reported_problem(case: tuple[Any, ...]) -> None:
    """A deployment the validators accept maps without raising; its cursor snapshot is JSON."""
    deployment, statuses, run, repo_settings = case
    if deployment_problem(deployment) is not None:
        return  # logged with its URL and skipped by the adapter
    usable_run = run if run is not None and run_problem(run) is None else None
    readable = [s for s in statuses if isinstance(s, dict)]
    outcome = deployment_events(
        deployment,
        readable,
        repo=REPO,
        source="gh",
        settings=repo_settings,
        run=usable_run,
        rejected=usable_run is not None,
    )
    _check(outcome.events)
    run_id_of_statuses(readable)
    json.dumps(snapshot_deployment(deployment, repo_settings))


@BOUNDED
@given(RUNS)
def test_any_workflow_run_maps_to_events_or_a_reported_problem(case: tuple[Any, ...]) -> None:
    """A workflow run the validator accepts maps without raising; a rejected one is just skipped."""
    run, repo_settings = case
    if run_problem(run) is not None:
        return
    outcome = run_events(run, repo=REPO, source="gh", settings=repo_settings)
    _check(outcome.events)


@BOUNDED
@given(st.sampled_from(CASES), OFFSETS, st.integers(0, 7))
def test_timestamps_in_other_offsets_give_the_same_events(
    case: tuple[str, str, str], offset: int, digits: int
) -> None:
    """The same instants written in another offset or precision map to the very same events."""
    deployment, statuses, run = _deployment(case[0]), _statuses(case[1]), _run(case[2])

    def events(dep: Any, sts: Any, rn: Any) -> list[DeployEvent]:
        return deployment_events(
            dep, sts, repo=REPO, source="gh", settings=SETTINGS[0], run=rn
        ).events

    expected = events(deployment, statuses, run)
    shifted = [reoffset(doc, offset, digits) for doc in (deployment, statuses, run)]
    assert expected == events(*shifted)
    assert expected

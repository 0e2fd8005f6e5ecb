"""The lifecycle invariant over every provider's mappers, for any object the APIs could send.

For one ``deployment_id`` the events a mapper returns, taken in time order, never go backwards in the
lifecycle (pending < queued < waiting < in-progress < the end) and none is dated before an earlier
state: the engine's safety net (:func:`deploy_fetcher.lifecycle.enforce_lifecycle`) never has to
drop one. The objects are the recorded fixtures, mutated: timestamps in any order, statuses of any
documented or unknown value, fields missing or of another type.

Across pages and poll cycles the engine and the store keep it too: the same objects read several
times (their timestamps moved in between), each read's events in any order and cut into pages of
any size, committed to a real state file — what a sink is then given never goes backwards.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.engine.builders import make_config
from tests.properties.mutations import variants
from tests.properties.test_azure_devops_mapping_properties import (
    BUILD,
    NAMINGS,
    RECORDS,
    RELEASES,
    TIMELINES,
    _objects,
    _resolver,
)
from tests.properties.test_github_mapping_properties import BOUNDED, DEPLOYMENTS, REPO, RUNS
from tests.properties.test_gitlab_mapping_properties import (
    DEPLOYMENT_BASES,
    PIPELINE_BASES,
    PIPELINE_RENDERINGS,
    RENDERINGS,
)

from deploy_fetcher.engine import Health, Poller
from deploy_fetcher.lifecycle import enforce_lifecycle, lifecycle_order, violations
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent, utc_now
from deploy_fetcher.providers import Page
from deploy_fetcher.providers.azure_devops.mapping import (
    Skip,
    build_index,
    record_events,
    release_events,
    stage_events,
)
from deploy_fetcher.providers.github.mapping import (
    JobTimes,
    deployment_events,
    deployment_problem,
    run_events,
    run_problem,
)
from deploy_fetcher.providers.gitlab.mapping import (
    deployment_events as gitlab_deployment_events,
)
from deploy_fetcher.providers.gitlab.mapping import (
    parse_deployment,
    parse_pipeline,
    pipeline_events,
)
from deploy_fetcher.store import SqliteStore


def assert_monotone(events: list[DeployEvent] | Skip) -> None:
    """Nothing goes backwards, and the engine's net would drop nothing."""
    if isinstance(events, Skip):
        return
    ordered = lifecycle_order(events)
    assert [] == violations(ordered)
    assert ordered == enforce_lifecycle(events)


JOB_TIMES = st.none() | st.builds(
    JobTimes,
    started=st.none() | st.sampled_from(["2026-03-02T08:00:09Z", "2026-03-02T07:00:00Z"]),
    completed=st.none() | st.sampled_from(["2026-03-02T08:02:40Z", "2026-03-02T07:30:00Z"]),
)


# -- each mapper's events for one drawn object ------------------------------------------------------
def _github_deployment(case: tuple[Any, ...], rejected: bool) -> list[DeployEvent]:
    deployment, statuses, run, repo_settings = case
    if deployment_problem(deployment) is not None:
        return []
    usable_run = run if run is not None and run_problem(run) is None else None
    return deployment_events(
        deployment,
        [s for s in statuses if isinstance(s, dict)],
        repo=REPO,
        source="gh",
        settings=repo_settings,
        run=usable_run,
        rejected=rejected and usable_run is not None,
    ).events


def _github_run(case: tuple[Any, ...], jobs: JobTimes | None, waited: bool) -> list[DeployEvent]:
    run, repo_settings = case
    if run_problem(run) is not None:
        return []
    return run_events(
        run,
        repo=REPO,
        source="gh",
        settings=repo_settings,
        jobs=jobs,
        waiting_since="2026-03-02T08:00:30Z" if waited else None,
        resumed_at="2026-03-02T08:01:00Z" if waited else None,
    ).events


def _gitlab_deployment(raw: Any, rendering: Any) -> list[DeployEvent]:
    try:
        return gitlab_deployment_events(parse_deployment(raw), rendering)
    except ValueError:
        return []


def _gitlab_pipeline(raw: Any, detail: Any, rendering: Any) -> list[DeployEvent]:
    try:
        return pipeline_events(parse_pipeline(raw, detail), rendering)
    except ValueError:
        return []


def _azure_record(record: Any, build: Any, naming: Any) -> list[DeployEvent]:
    if not isinstance(record, dict):
        return []
    builds = build_index(_objects([build]))
    found = record_events(record, environment="prod", naming=naming, build=builds.get(2412))
    return [] if isinstance(found, Skip) else found


def _azure_stages(
    build: Any, records: Any, naming: Any, flags: tuple[bool, bool, bool]
) -> list[DeployEvent]:
    if not isinstance(build, dict):
        return []
    gates_only, with_ids, parents = flags
    events, _problems = stage_events(
        build,
        _objects(records),
        naming=naming,
        resolve=_resolver(with_ids),
        gates_only=gates_only,
        parents=parents,
    )
    return [] if isinstance(events, Skip) else events


def _azure_release(deployment: Any, naming: Any) -> list[DeployEvent]:
    if not isinstance(deployment, dict):
        return []
    found = release_events(deployment, naming=naming)
    return [] if isinstance(found, Skip) else found


#: Per mapper: the events it returns for one object an API could send.
MAPPERS: dict[str, st.SearchStrategy[list[DeployEvent]]] = {
    "github-deployments": st.builds(_github_deployment, DEPLOYMENTS, st.booleans()),
    "github-runs": st.builds(_github_run, RUNS, JOB_TIMES, st.booleans()),
    "gitlab-deployments": st.builds(
        _gitlab_deployment,
        st.sampled_from(DEPLOYMENT_BASES).flatmap(variants),
        st.sampled_from(RENDERINGS),
    ),
    "gitlab-pipelines": st.builds(
        _gitlab_pipeline,
        st.sampled_from(PIPELINE_BASES).flatmap(variants),
        st.none() | st.sampled_from(PIPELINE_BASES).flatmap(lambda b: variants(b, 3)),
        st.sampled_from(PIPELINE_RENDERINGS),
    ),
    "azure-devops-environments": st.builds(
        _azure_record,
        st.sampled_from(RECORDS).flatmap(variants),
        st.none() | variants(BUILD, 3),
        st.sampled_from(NAMINGS),
    ),
    "azure-devops-stages": st.builds(
        _azure_stages,
        variants(BUILD, 3),
        st.sampled_from(TIMELINES).flatmap(lambda t: variants(t, 6)),
        st.sampled_from(NAMINGS),
        st.tuples(st.booleans(), st.booleans(), st.booleans()),
    ),
    "azure-devops-releases": st.builds(
        _azure_release, st.sampled_from(RELEASES).flatmap(variants), st.sampled_from(NAMINGS)
    ),
}


@pytest.mark.parametrize("mapper", sorted(MAPPERS))
@BOUNDED
@given(data=st.data())
def test_each_mapper_never_goes_backwards(mapper: str, data: st.DataObject) -> None:
    """For any object an API could send, a mapper's events go forward only: the net drops nothing."""
    assert_monotone(data.draw(MAPPERS[mapper]))


# -- through a real store, across pages and poll cycles ---------------------------------------------
STORED = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pages(data: st.DataObject, events: list[DeployEvent]) -> list[list[DeployEvent]]:
    """One cycle's events in any order, cut into pages of any size."""
    shuffled = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(events) - 1, 1)), max_size=4)))
    bounds = [0, *(c for c in cuts if c < len(events)), len(events)]
    return [shuffled[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@pytest.mark.parametrize("mapper", sorted(MAPPERS))
@STORED
@given(data=st.data())
def test_what_a_store_queues_never_goes_backwards_across_pages_and_cycles(
    mapper: str, data: st.DataObject
) -> None:
    """Several reads of the same objects (their times moved in between), in pages of any order.

    Each cycle reads every object again as the API then shows it; each cycle's events come in any
    order, in pages of any size, committed by the engine to a real state file. Taken the way a
    sink gets them, the queued rows of each deployment never go backwards, and every deployment
    read reaches the outbox.
    """
    objects = data.draw(st.integers(1, 2))
    reads = [data.draw(st.lists(MAPPERS[mapper], min_size=objects, max_size=objects))]
    reads += data.draw(
        st.lists(st.lists(MAPPERS[mapper], min_size=objects, max_size=objects), max_size=2)
    )
    config = make_config()
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory) / "state.db")
        try:
            poller = Poller(config, store, Metrics(), Health())
            for cycle, snapshots in enumerate(reads):
                events = [event for snapshot in snapshots for event in snapshot]
                for number, page in enumerate(_pages(data, events)):
                    poller.commit(
                        config.sources[0], "src", Page(page, {"cycle": cycle, "page": number})
                    )
            rows = store.claim("dash", limit=10_000, lease_seconds=60, now=utc_now())
        finally:
            store.close()
    queued = [row.event for row in rows]
    assert [] == violations(queued)
    read = {event.deployment_id for snapshots in reads for s in snapshots for event in s}
    assert read == {event.deployment_id for event in queued}

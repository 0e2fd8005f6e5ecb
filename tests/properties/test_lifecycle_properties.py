"""The lifecycle invariant over every provider's mappers, for any object the APIs could send.

For one ``deployment_id`` the events a mapper returns, taken in time order, never go backwards in the
lifecycle (pending < queued < waiting < in-progress < the end) and none is dated before an earlier
state: the engine's safety net (:func:`deploy_fetcher.lifecycle.enforce_lifecycle`) never has to
drop one. The objects are the recorded fixtures, mutated: timestamps in any order, statuses of any
documented or unknown value, fields missing or of another type.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
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

from deploy_fetcher.lifecycle import enforce_lifecycle, lifecycle_order, violations
from deploy_fetcher.model import DeployEvent
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


@BOUNDED
@given(DEPLOYMENTS, st.booleans())
def test_github_deployments_never_go_backwards(case: tuple[Any, ...], rejected: bool) -> None:
    """GitHub deployments mode: any statuses, any linked run, rejected or not."""
    deployment, statuses, run, repo_settings = case
    if deployment_problem(deployment) is not None:
        return
    usable_run = run if run is not None and run_problem(run) is None else None
    outcome = deployment_events(
        deployment,
        [s for s in statuses if isinstance(s, dict)],
        repo=REPO,
        source="gh",
        settings=repo_settings,
        run=usable_run,
        rejected=rejected and usable_run is not None,
    )
    assert_monotone(outcome.events)


@BOUNDED
@given(RUNS, JOB_TIMES, st.booleans())
def test_github_workflow_runs_never_go_backwards(
    case: tuple[Any, ...], jobs: JobTimes | None, waited: bool
) -> None:
    """GitHub workflow-runs mode: any run, any job times, after a wait or not."""
    run, repo_settings = case
    if run_problem(run) is not None:
        return
    outcome = run_events(
        run,
        repo=REPO,
        source="gh",
        settings=repo_settings,
        jobs=jobs,
        waiting_since="2026-03-02T08:00:30Z" if waited else None,
        resumed_at="2026-03-02T08:01:00Z" if waited else None,
    )
    assert_monotone(outcome.events)


@BOUNDED
@given(st.sampled_from(DEPLOYMENT_BASES).flatmap(variants), st.sampled_from(RENDERINGS))
def test_gitlab_deployments_never_go_backwards(raw: Any, rendering: Any) -> None:
    """GitLab deployments, with or without a job, any status and times."""
    try:
        events = gitlab_deployment_events(parse_deployment(raw), rendering)
    except ValueError:
        return
    assert_monotone(events)


@BOUNDED
@given(
    st.sampled_from(PIPELINE_BASES).flatmap(variants),
    st.none() | st.sampled_from(PIPELINE_BASES).flatmap(lambda b: variants(b, 3)),
    st.sampled_from(PIPELINE_RENDERINGS),
)
def test_gitlab_pipelines_never_go_backwards(raw: Any, detail: Any, rendering: Any) -> None:
    """GitLab pipelines taken as deployments, merged with any detail."""
    try:
        events = pipeline_events(parse_pipeline(raw, detail), rendering)
    except ValueError:
        return
    assert_monotone(events)


@BOUNDED
@given(
    st.sampled_from(RECORDS).flatmap(variants),
    st.none() | variants(BUILD, 3),
    st.sampled_from(NAMINGS),
)
def test_azure_devops_environment_records_never_go_backwards(
    record: Any, build: Any, naming: Any
) -> None:
    """Azure DevOps environment deployment records, with or without their run."""
    if not isinstance(record, dict):
        return
    builds = build_index(_objects([build]))
    assert_monotone(
        record_events(record, environment="prod", naming=naming, build=builds.get(2412))
    )


@BOUNDED
@given(
    variants(BUILD, 3),
    st.sampled_from(TIMELINES).flatmap(lambda t: variants(t, 6)),
    st.sampled_from(NAMINGS),
    st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_azure_devops_stages_never_go_backwards(
    build: Any, records: Any, naming: Any, flags: tuple[bool, bool, bool]
) -> None:
    """Azure DevOps stages (with their approvals and checks) from any timeline."""
    if not isinstance(build, dict):
        return
    gates_only, with_ids, parents = flags
    events, _problems = stage_events(
        build,
        _objects(records),
        naming=naming,
        resolve=_resolver(with_ids),
        gates_only=gates_only,
        parents=parents,
    )
    assert_monotone(events)


@BOUNDED
@given(st.sampled_from(RELEASES).flatmap(variants), st.sampled_from(NAMINGS))
def test_azure_devops_releases_never_go_backwards(deployment: Any, naming: Any) -> None:
    """Azure DevOps classic release deployments, any status pair, approvals and times."""
    if not isinstance(deployment, dict):
        return
    assert_monotone(release_events(deployment, naming=naming))

"""Properties of every provider's cursor: it survives the store unchanged, and damage is caught.

A cursor goes through the store's codec (compact JSON in SQLite) after every page, so encode → store
→ decode must give the same cursor back. A cursor the file holds may also be damaged (edited by
hand, written by another version): decoding it must then fail with the exception the adapter catches
to start over (logged), never with another one that would fail every cycle of the target.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.properties.mutations import mutated

from deploy_fetcher.model import format_rfc3339
from deploy_fetcher.providers.azure_devops.cursor import (
    EnvironmentsCursor,
    EnvMark,
    ReleasesCursor,
    StagesCursor,
)
from deploy_fetcher.providers.github.cursor import (
    DeploymentsCursor,
    OpenDeployment,
    OpenRun,
    RunsCursor,
)
from deploy_fetcher.providers.gitlab.cursor import (
    DeploymentsState,
    PipelineMemory,
    PipelinesState,
    Sibling,
)
from deploy_fetcher.providers.kit import DoneSet, OpenItem, OpenSet, Sealed, Watermark
from deploy_fetcher.store._codec import dump_cursor, load_cursor

BOUNDED = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCOPE = "scope-1"
START = datetime(2026, 1, 1, tzinfo=UTC)

# -- building blocks ------------------------------------------------------------------------------
#: Instants at millisecond precision: what every cursor keeps.
TIMES = st.integers(0, 10**11).map(lambda ms: START + timedelta(milliseconds=ms - 5 * 10**10))
TIME_TEXT = TIMES.map(format_rfc3339)
IDS = st.integers(1, 2**53)
TEXT = st.text(min_size=1, max_size=12)
SMALL = {"max_size": 4}


def stored(cursor: dict[str, Any]) -> dict[str, Any]:
    """The cursor as the store gives it back."""
    return load_cursor(dump_cursor("source/target", cursor))


# -- GitHub -------------------------------------------------------------------------------------
OPEN_DEPLOYMENTS = st.builds(
    OpenDeployment,
    created_at=TIME_TEXT,
    deployment=st.fixed_dictionaries(
        {"id": IDS, "environment": TEXT}, optional={"sha": TEXT, "ref": TEXT}
    ),
    etag=st.none() | TEXT,
    run_id=st.none() | IDS,
    awaiting_run=st.booleans(),
    waited=st.booleans(),
)


@st.composite
def github_deployments(draw: st.DrawFn) -> DeploymentsCursor:
    cursor = DeploymentsCursor(draw(TIMES), scope=SCOPE, etag=draw(st.none() | TEXT))
    for dep_id, entry in draw(st.dictionaries(IDS, OPEN_DEPLOYMENTS, **SMALL)).items():
        cursor.keep_open(dep_id, entry)
    for dep_id, created in draw(st.dictionaries(IDS, TIME_TEXT, **SMALL)).items():
        cursor.close(dep_id, created)
    return cursor


GITHUB_DEPLOYMENTS = github_deployments()
OPEN_RUNS = st.builds(
    OpenRun,
    attempt=st.integers(1, 50),
    created_at=TIME_TEXT,
    etag=st.none() | TEXT,
    waiting_since=st.none() | TIME_TEXT,
    resumed_at=st.none() | TIME_TEXT,
)


@st.composite
def github_runs(draw: st.DrawFn) -> RunsCursor:
    cursor = RunsCursor(draw(TIMES), scope=SCOPE, etags=draw(st.dictionaries(TEXT, TEXT, **SMALL)))
    for run_id, entry in draw(st.dictionaries(IDS, OPEN_RUNS, **SMALL)).items():
        cursor.keep_open(run_id, entry)
    done = draw(st.dictionaries(IDS, st.tuples(st.integers(1, 50), TIME_TEXT), **SMALL))
    for run_id, (attempt, created) in done.items():
        cursor.close(run_id, attempt, created)
    return cursor


GITHUB_RUNS = github_runs()


@BOUNDED
@given(GITHUB_DEPLOYMENTS)
def test_github_deployments_cursor_round_trips(cursor: DeploymentsCursor) -> None:
    """A GitHub deployments cursor read back from the store equals the one written."""
    assert cursor == DeploymentsCursor.load(stored(cursor.sealed()), scope=SCOPE)


@BOUNDED
@given(GITHUB_RUNS)
def test_github_runs_cursor_round_trips(cursor: RunsCursor) -> None:
    """A GitHub workflow-runs cursor read back from the store equals the one written."""
    assert cursor == RunsCursor.load(stored(cursor.sealed()), scope=SCOPE)


# -- GitLab -------------------------------------------------------------------------------------
SIBLINGS = st.builds(Sibling, IDS, IDS, TEXT, TEXT, st.sampled_from(["success", "skipped"]))


@st.composite
def memories(draw: st.DrawFn) -> PipelineMemory:
    memory = PipelineMemory()
    for pipeline, sibling in draw(st.lists(st.tuples(IDS, SIBLINGS), max_size=6)):
        memory.add(pipeline, sibling)
    return memory


ID_DONE_SETS = st.dictionaries(IDS, TIMES, **SMALL).map(
    lambda items: DoneSet({str(k): (t, 0) for k, t in items.items()})
)
GITLAB_DEPLOYMENTS = st.builds(
    DeploymentsState, TIMES, scope=st.just(SCOPE), done=ID_DONE_SETS, memory=memories()
)
GITLAB_PIPELINES = st.builds(
    PipelinesState,
    TIMES,
    scope=st.just(SCOPE),
    done=ID_DONE_SETS,
    matches=st.dictionaries(IDS, st.booleans(), **SMALL),
)


@BOUNDED
@given(GITLAB_DEPLOYMENTS)
def test_gitlab_deployments_cursor_round_trips(state: DeploymentsState) -> None:
    """A GitLab deployments cursor read back from the store encodes to the same JSON."""
    back = DeploymentsState.load(stored(state.sealed()), scope=SCOPE)
    assert state.sealed() == back.sealed()
    assert (state.mark, state.done) == (back.mark, back.done)


@BOUNDED
@given(GITLAB_PIPELINES)
def test_gitlab_pipelines_cursor_round_trips(state: PipelinesState) -> None:
    """A GitLab pipelines cursor read back from the store equals the one written."""
    assert state == PipelinesState.load(stored(state.sealed()), scope=SCOPE)


# -- Azure DevOps -------------------------------------------------------------------------------
OPEN_SETS = st.dictionaries(TEXT, TIMES, **SMALL).map(
    lambda items: OpenSet({k: OpenItem(t) for k, t in items.items()})
)
DONE_SETS = st.dictionaries(TEXT, TIMES, **SMALL).map(
    lambda items: DoneSet({k: (t, 0) for k, t in items.items()})
)
RUN_STATES = st.builds(Watermark, TIMES, OPEN_SETS, DONE_SETS)
ENV_MARKS = st.builds(
    EnvMark,
    st.integers(0, 2**31),
    st.none() | TIMES,
    st.lists(st.integers(0, 2**31), max_size=4, unique=True).map(sorted),
)


@st.composite
def environment_cursors(draw: st.DrawFn) -> EnvironmentsCursor:
    late = draw(st.dictionaries(st.integers(1, 10**6).map(str), TIMES, **SMALL))
    return EnvironmentsCursor(
        scope=SCOPE,
        start=draw(TIMES),
        envs=draw(st.dictionaries(st.integers(1, 999).map(str), ENV_MARKS, **SMALL)),
        open=draw(OPEN_SETS),
        stage_envs=draw(st.dictionaries(TEXT, st.integers(1, 999), **SMALL)),
        definitions=draw(st.lists(st.integers(1, 999), unique=True, max_size=4).map(sorted)),
        runs=draw(st.none() | RUN_STATES),
        polled_at=draw(st.none() | TIMES),
        late=late,
        late_seen=OpenSet({key: OpenItem(draw(TIMES)) for key in late}),
    )


ADO_CURSORS: dict[str, st.SearchStrategy[Any]] = {
    "environments": environment_cursors(),
    "stages": st.builds(StagesCursor, st.just(SCOPE), RUN_STATES),
    "releases": st.builds(
        ReleasesCursor, st.just(SCOPE), st.builds(Watermark, TIMES, done=DONE_SETS)
    ),
}


@pytest.mark.parametrize("mode", sorted(ADO_CURSORS))
@BOUNDED
@given(data=st.data())
def test_azure_devops_cursors_round_trip(mode: str, data: st.DataObject) -> None:
    """Every Azure DevOps cursor mode read back from the store equals the one written."""
    cursor = data.draw(ADO_CURSORS[mode])
    assert cursor == type(cursor).load(stored(cursor.sealed()), scope=SCOPE)


# -- damage -------------------------------------------------------------------------------------
def type_of(mode: str) -> Any:
    return {"environments": EnvironmentsCursor, "stages": StagesCursor}.get(mode, ReleasesCursor)


#: name → (valid cursors, the cursor type its adapter resumes from the store)
DECODERS: dict[str, tuple[st.SearchStrategy[Any], type[Sealed]]] = {
    "github-deployments": (GITHUB_DEPLOYMENTS, DeploymentsCursor),
    "github-runs": (GITHUB_RUNS, RunsCursor),
    "gitlab-deployments": (GITLAB_DEPLOYMENTS, DeploymentsState),
    "gitlab-pipelines": (GITLAB_PIPELINES, PipelinesState),
    **{f"azure-devops-{mode}": (strategy, type_of(mode)) for mode, strategy in ADO_CURSORS.items()},
}


def _to_json(cursor: Any) -> dict[str, Any]:
    return cursor if isinstance(cursor, dict) else cursor.sealed()


@pytest.mark.parametrize("name", sorted(DECODERS))
@BOUNDED
@given(data=st.data())
def test_a_damaged_cursor_is_resumed_or_started_over(name: str, data: st.DataObject) -> None:
    """Resuming from a damaged cursor gives a cursor or None (start over), never an exception."""
    strategy, kind = DECODERS[name]
    damaged = data.draw(mutated(stored(_to_json(data.draw(strategy))), 4))
    if not isinstance(damaged, dict):
        return  # the store refuses a cursor that is not an object before any adapter sees it
    resumed = kind.resume(damaged, scope=SCOPE, log_name="test", target="t")
    assert resumed is None or isinstance(resumed, kind)

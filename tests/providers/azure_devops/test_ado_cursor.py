"""Cursor bookkeeping, without HTTP: round trips, the open set's bounds, refusing foreign cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deploy_fetcher.providers.azure_devops.cursor import (
    CursorMismatch,
    EnvironmentsCursor,
    EnvMark,
    OpenSet,
    ReleasesCursor,
    RunsState,
    StagesCursor,
    scope_digest,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_environments_cursor_round_trips():
    """Everything an environments cursor holds survives JSON."""
    cursor = EnvironmentsCursor(
        scope="s",
        start=T0,
        envs={"3": EnvMark(4107, T0 + timedelta(seconds=1.5), [4106, 4107])},
        open=OpenSet({"3:4107": T0}),
        stage_envs={"11/Deploy_prod": 3},
        definitions=[11],
        runs=RunsState(T0, OpenSet({"2412": T0}), {"2409": T0 - timedelta(minutes=1)}),
        polled_at=T0 + timedelta(minutes=1),
    )
    assert cursor == EnvironmentsCursor.from_json(cursor.to_json(), scope="s")


def test_a_walk_cut_short_round_trips_with_its_resume_token():
    """An environment mark keeps where a cut-short walk stopped and the mark read above it."""
    ahead = EnvMark(4120, T0 + timedelta(minutes=3), [4119, 4120])
    cursor = EnvironmentsCursor(
        scope="s", start=T0, envs={"3": EnvMark(4107, T0, [4107], resume="4111", ahead=ahead)}
    )
    assert cursor == EnvironmentsCursor.from_json(cursor.to_json(), scope="s")


def test_a_resume_token_without_its_mark_is_refused():
    """A mark with a resume token but no mark above it cannot be continued."""
    data = {"hwm": 4107, "recent": [], "resume": "4111"}
    with pytest.raises(CursorMismatch, match="resume"):
        EnvMark.from_json(data)


def test_stages_and_releases_cursors_round_trip():
    """Stages and releases cursors survive JSON."""
    stages = StagesCursor("s", RunsState(T0, OpenSet({"1": T0}), {}))
    releases = ReleasesCursor("s", T0, {"801": T0})
    assert (stages, releases) == (
        StagesCursor.from_json(stages.to_json(), scope="s"),
        ReleasesCursor.from_json(releases.to_json(), scope="s"),
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"v": 1, "mode": "stages", "scope": "other", "runs": {}}, "selection"),
        ({"v": 1, "mode": "releases", "scope": "s", "mark": "2026-03-02T12:00:00Z"}, "mode"),
        ({"v": 99, "mode": "stages", "scope": "s"}, "version"),
        ({"v": 1, "mode": "stages", "scope": "s", "runs": {"mark": "yesterday"}}, "timestamp"),
        (["not", "an", "object"], "not an object"),
    ],
)
def test_foreign_cursors_are_refused(data, reason):
    """Another selection, mode or version, or garbage: CursorMismatch (the target starts over)."""
    with pytest.raises(CursorMismatch, match=reason):
        StagesCursor.from_json(data, scope="s")


def test_open_set_drops_old_entries_then_the_oldest_beyond_its_size():
    """Age first, then size; the dropped keys are returned for the log."""
    open_set = OpenSet()
    for n in range(5):
        open_set.add(str(n), T0 + timedelta(hours=n))
    dropped = open_set.prune(
        T0 + timedelta(hours=5), max_size=2, max_age=timedelta(hours=4, minutes=30)
    )
    assert (["0", "1", "2"], ["3", "4"]) == (dropped, open_set.oldest_first())


def test_open_set_keeps_the_first_seen_time():
    """Seeing an open item again does not make it younger."""
    open_set = OpenSet()
    open_set.add("a", T0)
    open_set.add("a", T0 + timedelta(days=9))
    assert T0 == open_set.items["a"]


def test_runs_state_forgets_done_runs_behind_the_overlap():
    """Completed runs are remembered only while the overlap window can return them."""
    state = RunsState(T0)
    state.open.add("1", T0)
    state.remember_done("1", T0 - timedelta(minutes=10))
    state.remember_done("2", T0 - timedelta(minutes=2))
    state.trim_done(timedelta(minutes=5))
    assert ({"2"}, 0) == (set(state.done), len(state.open))


def test_releases_cursor_remembers_versions_at_millisecond_precision():
    """A deployment read again with the same lastModifiedOn is known, even after a JSON trip."""
    cursor = ReleasesCursor("s", T0)
    cursor.remember("801", T0.replace(microsecond=123456))
    again = ReleasesCursor.from_json(cursor.to_json(), scope="s")
    assert (True, False) == (
        again.seen("801", T0.replace(microsecond=123456)),
        again.seen("801", T0.replace(microsecond=999000)),
    )


def test_learned_stage_environments_are_bounded():
    """The learned (pipeline, stage) → environment map keeps its newest entries."""
    cursor = EnvironmentsCursor(scope="s", start=T0)
    for n in range(1005):
        cursor.learn(n, "Deploy", 1)
    assert (1000, "1004/Deploy") == (len(cursor.stage_envs), list(cursor.stage_envs)[-1])


def test_scope_digest_is_short_and_stable():
    """The digest stored in cursors depends on the selection only."""
    assert (16, scope_digest("a|b")) == (len(scope_digest("a|b")), scope_digest("a|b"))

"""Cursor bookkeeping, without HTTP: round trips, the open set's bounds, refusing foreign cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deploy_fetcher.providers.azure_devops.cursor import (
    CursorMismatch,
    EnvironmentsCursor,
    EnvMark,
    ReleasesCursor,
    StagesCursor,
    scope_digest,
)
from deploy_fetcher.providers.kit import DoneSet, OpenSet, Watermark


def _open(**items: datetime) -> OpenSet:
    open_set = OpenSet()
    for key, since in items.items():
        open_set.add(key, since)
    return open_set


def _done(**items: datetime) -> DoneSet:
    done = DoneSet()
    for key, at in items.items():
        done.add(key, at)
    return done


T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_environments_cursor_round_trips():
    """Everything an environments cursor holds survives JSON."""
    cursor = EnvironmentsCursor(
        scope="s",
        start=T0,
        envs={"3": EnvMark(4107, T0 + timedelta(seconds=1.5), [4106, 4107])},
        open=_open(**{"3:4107": T0}),
        stage_envs={"11/Deploy_prod": 3},
        definitions=[11],
        runs=Watermark(T0, _open(**{"2412": T0}), _done(**{"2409": T0 - timedelta(minutes=1)})),
        polled_at=T0 + timedelta(minutes=1),
    )
    assert cursor == EnvironmentsCursor.load(cursor.sealed(), scope="s")


def test_a_walk_cut_short_round_trips_with_its_resume_token():
    """An environment mark keeps where a cut-short walk stopped and the mark read above it."""
    ahead = EnvMark(4120, T0 + timedelta(minutes=3), [4119, 4120])
    cursor = EnvironmentsCursor(
        scope="s", start=T0, envs={"3": EnvMark(4107, T0, [4107], resume="4111", ahead=ahead)}
    )
    assert cursor == EnvironmentsCursor.load(cursor.sealed(), scope="s")


def test_a_resume_token_without_its_mark_is_refused():
    """A mark with a resume token but no mark above it cannot be continued."""
    data = {"hwm": 4107, "recent": [], "resume": "4111"}
    with pytest.raises(CursorMismatch, match="resume"):
        EnvMark.from_json(data)


def test_stages_and_releases_cursors_round_trip():
    """Stages and releases cursors survive JSON."""
    stages = StagesCursor("s", Watermark(T0, _open(**{"1": T0})))
    releases = ReleasesCursor("s", Watermark(T0, done=_done(**{"801": T0})))
    assert (stages, releases) == (
        StagesCursor.load(stages.sealed(), scope="s"),
        ReleasesCursor.load(releases.sealed(), scope="s"),
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
        StagesCursor.load(data, scope="s")


def test_run_state_forgets_done_runs_behind_the_overlap():
    """Completed runs are remembered only while the overlap window can return them."""
    state = Watermark(T0)
    state.open.add("1", T0)
    state.open.discard("1")
    state.done.add("1", T0 - timedelta(minutes=10))
    state.done.add("2", T0 - timedelta(minutes=2))
    state.prune(now=T0, overlap=timedelta(minutes=5))
    assert ({"2"}, 0) == (set(state.done.items), len(state.open))


def test_releases_cursor_remembers_versions_at_millisecond_precision():
    """A deployment read again with the same lastModifiedOn is known, even after a JSON trip."""
    cursor = ReleasesCursor("s", Watermark(T0))
    cursor.state.done.add("801", T0.replace(microsecond=123456))
    again = ReleasesCursor.load(cursor.sealed(), scope="s")
    assert (True, False) == (
        again.state.done.has("801", T0.replace(microsecond=123456)),
        again.state.done.has("801", T0.replace(microsecond=999000)),
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

"""The GitLab cursor: mark, scope, and the bounded memories, testable without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from deploy_fetcher.providers.gitlab.cursor import (
    DeploymentsState,
    PipelineMemory,
    PipelinesState,
    Sibling,
)
from deploy_fetcher.providers.kit import scope_digest

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CEILING = T0 + timedelta(days=1)


def test_deployments_cursor_round_trips_mark_done_and_memory():
    """Encoding then decoding gives back the mark, the handled items and the siblings."""
    state = DeploymentsState(T0, scope="s1")
    state.memory.add(36, Sibling(41, 657, "staging", "staging", "success"))
    state.advance(T0 + timedelta(seconds=5), ceiling=CEILING)
    state.done.add("41", T0 + timedelta(seconds=5))
    decoded = DeploymentsState.resume(state.sealed(), scope="s1", log_name="gitlab", target="g/p")
    assert decoded is not None
    assert (
        T0 + timedelta(seconds=5),
        True,
        [Sibling(41, 657, "staging", "staging", "success")],
    ) == (
        decoded.mark,
        decoded.done.has("41", T0 + timedelta(seconds=5)),
        decoded.memory.siblings(36),
    )


def test_mark_never_moves_back():
    """An older item does not pull the high-water mark back."""
    state = DeploymentsState(T0)
    state.advance(T0 - timedelta(hours=1), ceiling=CEILING)
    assert T0 == state.mark


@pytest.mark.parametrize(
    "cursor",
    [
        {"v": 1, "mode": "deployments", "scope": "other", "mark": "2026-03-02T12:00:00Z"},
        {"v": 1, "mode": "pipelines", "scope": "s1", "mark": "2026-03-02T12:00:00Z"},
        {"v": 99, "mode": "deployments", "scope": "s1", "mark": "2026-03-02T12:00:00Z"},
        {"since": "2026-03-02T12:00:00Z"},
        None,
    ],
    ids=["other-scope", "other-mode", "other-version", "foreign", "absent"],
)
def test_cursor_of_another_scope_mode_or_format_is_not_continued(cursor):
    """Only a cursor written for this mode and selection is continued; others start over."""
    assert DeploymentsState.resume(cursor, scope="s1", log_name="gitlab", target="g/p") is None


def test_damaged_cursor_is_a_warning_not_a_guess():
    """A cursor that claims to be ours but is damaged is not half-read: it is logged, not continued."""
    cursor = {"v": 1, "mode": "deployments", "scope": "s1", "mark": "2026-03-02T12:00:00Z"}
    damaged = {**cursor, "pipelines": [[1, [["x"]]]]}
    with capture_logs() as logs:
        assert DeploymentsState.resume(damaged, scope="s1", log_name="gitlab", target="g/p") is None
    assert [("gitlab.cursor_reset", "warning")] == [(e["event"], e["log_level"]) for e in logs]


def test_pipeline_memory_keeps_the_most_recently_touched_pipelines():
    """The memory is bounded: the pipeline touched longest ago is forgotten first."""
    memory = PipelineMemory(limit=2)
    memory.add(1, Sibling(10, 100, "a", "dev", "success"))
    memory.add(2, Sibling(20, 200, "a", "dev", "success"))
    memory.add(1, Sibling(11, 101, "b", "prod", "running"))
    memory.add(3, Sibling(30, 300, "a", "dev", "success"))
    assert ([], 2, 2) == (memory.siblings(2), len(memory.siblings(1)), len(memory))


def test_pipelines_state_forgets_what_the_next_poll_cannot_return():
    """Entries older than mark - overlap are pruned, with their job-match verdicts."""
    state = PipelinesState(T0, scope="s1")
    state.done.add("1", T0 - timedelta(minutes=10))
    state.done.add("2", T0 - timedelta(minutes=1))
    state.matches = {1: True, 2: False}
    state.forget(timedelta(minutes=5))
    decoded = PipelinesState.load(state.sealed(), scope="s1")
    assert ({"2": (T0 - timedelta(minutes=1), 0)}, {2: False}) == (
        decoded.done.items,
        decoded.matches,
    )


def test_scope_digest_depends_on_content_not_key_order():
    """The scope digest is stable across key order and changes with the selection."""
    assert scope_digest({"a": 1, "b": [2]}) == scope_digest({"b": [2], "a": 1})
    assert scope_digest({"a": 1}) != scope_digest({"a": 2})

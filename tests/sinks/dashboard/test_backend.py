"""The dashboard state backend: cursors reach the slot only when their pages' rows are settled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from tests.store.factories import FakeClock, make_event
from tests.support import wait_until

from deploy_fetcher.errors import StoreError
from deploy_fetcher.model import DeployEvent, Status
from deploy_fetcher.sinks.dashboard.backend import (
    SLOT_MAX_BYTES,
    DashboardStore,
    SlotError,
    decode_document,
    encode_document,
)

KEY = "gh/octo/api"


class MemorySlot:
    """A state slot in memory that can be told to fail."""

    description = "the test slot"

    def __init__(self, state: str | None = None) -> None:
        self.state = state
        self.saves: list[str] = []
        self.load_error: SlotError | None = None
        self.save_error: SlotError | None = None
        self.closed = False

    def load(self) -> str | None:
        if self.load_error is not None:
            raise self.load_error
        return self.state

    def save(self, state: str) -> None:
        if self.save_error is not None:
            raise self.save_error
        self.state = state
        self.saves.append(state)

    def close(self) -> None:
        self.closed = True

    def cursors(self) -> dict[str, Any] | None:
        return None if self.state is None else decode_document(self.state)[0]


@pytest.fixture
def slot() -> MemorySlot:
    return MemorySlot()


@pytest.fixture
def open_store(tmp_path: Path, slot: MemorySlot, clock: FakeClock) -> Iterator[Any]:
    opened: list[DashboardStore] = []

    def _open(**kwargs: Any) -> DashboardStore:
        options: dict[str, Any] = {"directory": tmp_path, "flush_interval": None, "clock": clock}
        store = DashboardStore(slot, **(options | kwargs))
        opened.append(store)
        return store

    yield _open
    for store in opened:
        if store.path.parent.exists():
            store.close()


def _claim_all(store: DashboardStore, sink: str, clock: FakeClock) -> dict[str, int]:
    rows = store.claim(sink, limit=100, lease_seconds=60, now=clock())
    return {row.event.deployment_id: row.id for row in rows}


def _commit(store: DashboardStore, offset: int, *events: DeployEvent, sinks=("a",)) -> None:
    rows = [(sink, event) for event in events for sink in sinks]
    store.commit_page(KEY, {"offset": offset}, rows)


def test_cursor_waits_until_every_sink_has_the_page(open_store, slot, clock) -> None:
    """A page fanned out to two sinks moves the slot's cursor only after both delivered it."""
    store = open_store()
    assert store.get_cursor(KEY) is None
    _commit(store, 1, make_event("run-1"), sinks=("a", "b"))
    store.flush()
    assert slot.cursors() is None
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    store.flush()
    assert slot.cursors() is None
    store.mark_delivered(_claim_all(store, "b", clock)["run-1"], now=clock())
    assert store.flush()
    assert {KEY: {"offset": 1}} == slot.cursors()


def test_the_local_cursor_is_used_while_the_process_runs(open_store, slot) -> None:
    """The next poll continues from the latest commit, delivered or not."""
    store = open_store()
    store.get_cursor(KEY)
    _commit(store, 5, make_event("run-1"))
    assert {"offset": 5} == store.get_cursor(KEY)
    store.flush()
    assert slot.cursors() is None


def test_a_dead_letter_does_not_hold_the_cursor_back(open_store, slot, clock) -> None:
    """A row dead-lettered for good settles its page like a delivered one."""
    store = open_store()
    _commit(store, 1, make_event("run-1"))
    store.dead_letter(_claim_all(store, "a", clock)["run-1"], reason="422", now=clock())
    store.flush()
    assert {KEY: {"offset": 1}} == slot.cursors()


def test_a_later_page_waits_for_an_earlier_one(open_store, slot, clock) -> None:
    """Page 2 delivered before page 1 moves nothing; page 1 delivered then moves it to page 2's."""
    store = open_store()
    _commit(store, 1, make_event("run-1"))
    _commit(store, 2, make_event("run-2", minute=1))
    ids = _claim_all(store, "a", clock)
    store.mark_delivered(ids["run-2"], now=clock())
    store.flush()
    assert slot.cursors() is None
    store.mark_delivered(ids["run-1"], now=clock())
    store.flush()
    assert {KEY: {"offset": 2}} == slot.cursors()


def test_commits_held_back_by_a_pending_row_do_not_pile_up(open_store, slot, clock) -> None:
    """A day of polls behind one undelivered row keeps two commits, and the last cursor wins."""
    store = open_store()
    _commit(store, 0, make_event("run-1"))
    for offset in range(1, 1441):
        store.commit_page(KEY, {"offset": offset}, [])
    store.flush()
    assert (2, None) == (len(store._commits[KEY]), slot.cursors())
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    assert store.flush()
    assert ({KEY: {"offset": 1440}}, {}) == (slot.cursors(), store._commits)


def test_merged_commits_wait_for_every_row_they_took_in(open_store, slot, clock) -> None:
    """Pages merged behind a pending one move the cursor only when all their rows are settled."""
    store = open_store()
    _commit(store, 1, make_event("run-1"))
    _commit(store, 2, make_event("run-2", minute=1))
    _commit(store, 3, make_event("run-3", minute=2))
    store.commit_page(KEY, None, [("a", make_event("run-4", minute=3))])
    ids = _claim_all(store, "a", clock)
    for deployment in ("run-1", "run-3", "run-4"):
        store.mark_delivered(ids[deployment], now=clock())
    store.flush()
    assert {KEY: {"offset": 1}} == slot.cursors()
    store.mark_delivered(ids["run-2"], now=clock())
    store.flush()
    assert {KEY: {"offset": 3}} == slot.cursors()


def test_pages_without_rows_follow_the_page_before_them(open_store, slot, clock) -> None:
    """An empty page's cursor is written once the pages before it are settled, not before."""
    store = open_store()
    _commit(store, 1, make_event("run-1"))
    store.commit_page(KEY, {"offset": 9}, [])
    store.flush()
    assert slot.cursors() is None
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    store.flush()
    assert {KEY: {"offset": 9}} == slot.cursors()


def test_a_re_read_of_a_delivered_event_does_not_block(open_store, slot, clock) -> None:
    """An overlap re-reading an event already delivered (a duplicate row) leaves nothing pending."""
    store = open_store()
    _commit(store, 1, make_event("run-1"))
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    _commit(store, 2, make_event("run-1"))
    store.flush()
    assert {KEY: {"offset": 2}} == slot.cursors()


def test_targets_move_independently(open_store, slot, clock) -> None:
    """An undelivered page of one target does not hold another target's cursor."""
    store = open_store()
    store.commit_page("gh/octo/web", {"offset": 3}, [("a", make_event("web-1"))])
    _commit(store, 1, make_event("run-1"))
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    store.flush()
    assert {KEY: {"offset": 1}} == slot.cursors()


def test_purged_pending_rows_release_the_cursor(open_store, slot, clock) -> None:
    """Rows purged before delivery (a dashboard reset) no longer hold their page's cursor."""
    store = open_store()
    _commit(store, 4, make_event("run-1"))
    assert 1 == store.purge(state="pending", sink="a")
    store.flush()
    assert {KEY: {"offset": 4}} == slot.cursors()


def test_a_restart_resumes_from_the_slot(open_store, slot, clock) -> None:
    """A new store (a new process, no volume) starts from the cursor the last one wrote."""
    first = open_store()
    _commit(first, 7, make_event("run-1"))
    first.mark_delivered(_claim_all(first, "a", clock)["run-1"], now=clock())
    directory = first.path.parent
    first.close()
    assert not directory.exists()
    second = open_store()
    assert {"offset": 7} == second.get_cursor(KEY)
    assert [(KEY, {"offset": 7})] == [(r.key, r.cursor) for r in second.list_cursors()]


def test_a_crash_before_delivery_leaves_the_old_cursor(open_store, slot, clock) -> None:
    """Undelivered events are lost with the temporary outbox, but the slot's cursor does not cover them."""
    first = open_store()
    _commit(first, 1, make_event("run-1"))
    first.mark_delivered(_claim_all(first, "a", clock)["run-1"], now=clock())
    first.flush()
    _commit(first, 2, make_event("run-2", minute=1))
    first.close()
    second = open_store()
    assert {"offset": 1} == second.get_cursor(KEY)


def test_a_document_over_the_slot_limit_is_refused_and_the_old_one_kept(
    open_store, slot, clock
) -> None:
    """Cursors over 8 KiB are not written: the slot keeps the last document, readiness says why."""
    store = open_store()
    store.commit_page("small", {"offset": 1}, [])
    store.flush()
    kept = slot.state
    store.commit_page("huge", {"blob": "x" * SLOT_MAX_BYTES}, [])
    assert not store.flush()
    assert kept == slot.state
    problem = store.check_writable()
    assert problem is not None
    assert f"more than the {SLOT_MAX_BYTES} bytes the test slot can hold" in problem
    store.reset_cursor("huge")
    assert store.flush()
    assert store.check_writable() is None
    assert {"small": {"offset": 1}} == slot.cursors()


def test_a_document_at_the_limit_is_written(open_store, slot) -> None:
    """The limit is the dashboard's: a document of exactly 8192 bytes goes through."""
    store = open_store()
    overhead = len(encode_document({"k": {"b": ""}}, store._clock()).encode())
    store.commit_page("k", {"b": "x" * (SLOT_MAX_BYTES - overhead)}, [])
    assert store.flush()
    assert SLOT_MAX_BYTES == len(slot.state.encode())


def test_an_unreachable_dashboard_is_a_store_error_not_a_fresh_start(open_store, slot) -> None:
    """When the slot cannot be read the poll fails (and is retried) instead of starting at lookback."""
    slot.state = encode_document({KEY: {"offset": 3}}, FakeClock()())
    slot.load_error = SlotError("cannot read the cursors: connection failed", permanent=False)
    store = open_store()
    with pytest.raises(StoreError, match="connection failed"):
        store.get_cursor(KEY)
    assert "cannot read the cursors: connection failed" == store.check_writable()
    slot.load_error = None
    assert {"offset": 3} == store.get_cursor(KEY)
    assert store.check_writable() is None


def test_a_slot_holding_something_else_is_refused_and_left_alone(open_store, slot) -> None:
    """A slot with foreign content is never overwritten; the error says what to do."""
    slot.state = "not ours"
    store = open_store()
    with pytest.raises(StoreError, match="not a deploy-fetcher cursor document"):
        store.get_cursor(KEY)
    with pytest.raises(StoreError):
        store.commit_page(KEY, {"offset": 1}, [])
    store.close()
    assert ("not ours", []) == (slot.state, slot.saves)


def test_a_backfill_only_process_never_writes_the_slot(open_store, slot, clock) -> None:
    """`fetcher sync` commits without cursors: it neither reads nor overwrites the daemon's slot."""
    store = open_store()
    store.commit_page(KEY, None, [("a", make_event("run-1"))])
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    store.close()
    assert [] == slot.saves


def test_reset_cursor_forgets_it_here_and_in_the_slot(open_store, slot, clock) -> None:
    """A reset cursor is gone for the next poll and from the slot, and its held pages are dropped."""
    slot.state = encode_document({KEY: {"offset": 3}, "other": {"offset": 1}}, clock())
    store = open_store()
    _commit(store, 4, make_event("run-1"))
    assert store.reset_cursor(KEY)
    assert store.get_cursor(KEY) is None
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    store.flush()
    assert {"other": {"offset": 1}} == slot.cursors()
    assert not store.reset_cursor("never-seen")


def test_an_outage_is_retried_and_a_refusal_is_a_problem(open_store, slot) -> None:
    """A failed write is tried again; only a refusal (4xx) marks the store as not writable."""
    store = open_store()
    store.commit_page(KEY, {"offset": 1}, [])
    slot.save_error = SlotError("cannot store: HTTP 503", permanent=False)
    assert not store.flush()
    assert store.check_writable() is None
    slot.save_error = SlotError("cannot store: HTTP 401", permanent=True)
    assert not store.flush()
    assert "cannot store: HTTP 401" == store.check_writable()
    slot.save_error = None
    assert store.flush()
    assert (store.check_writable(), slot.cursors()) == (None, {KEY: {"offset": 1}})


def test_the_writer_thread_follows_deliveries(open_store, slot, clock) -> None:
    """With the background writer on, a delivery reaches the slot without anyone calling flush()."""
    store = open_store(flush_interval=0.01)
    _commit(store, 1, make_event("run-1"))
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    wait_until(lambda: slot.cursors() == {KEY: {"offset": 1}}, timeout=10)


def test_an_unchanged_document_is_not_written_again(open_store, slot) -> None:
    """Flushing with nothing new sends nothing: the slot is not rewritten every second."""
    slot.state = encode_document({KEY: {"offset": 3}}, FakeClock()())
    store = open_store()
    store.get_cursor(KEY)
    store.flush()
    store.commit_page(KEY, {"offset": 4}, [])
    store.flush()
    store.flush()
    assert [{KEY: {"offset": 4}}] == [json.loads(s)["cursors"] for s in slot.saves]


def test_close_releases_the_slot_and_repr_names_it(open_store, slot) -> None:
    """close() closes the slot's connections; the store's repr names the slot, never a secret."""
    store = open_store()
    assert "DashboardStore('the test slot')" == repr(store)
    store.close()
    assert slot.closed


def test_an_over_long_document_is_logged_once_while_it_lasts(open_store, slot) -> None:
    """Growing cursors over the limit log one error, not one per flush; recovery logs once too."""
    store = open_store()
    with capture_logs() as logs:
        for extra in range(3):
            store.commit_page("huge", {"blob": "x" * (SLOT_MAX_BYTES + extra)}, [])
            store.flush()
        store.reset_cursor("huge")
        store.flush()
    events = [line["event"] for line in logs if line["event"].startswith("dashboard_state.")]
    assert [
        "dashboard_state.loaded",
        "dashboard_state.too_large",
        "dashboard_state.saved",
    ] == events


def test_a_row_re_dated_by_the_lifecycle_ledger_holds_its_cursor_back(open_store, slot, clock):
    """A success dated before the queued in-progress is queued re-dated; its page waits for it."""
    store = open_store()
    store.get_cursor(KEY)
    _commit(store, 1, make_event("run-1", status=Status.IN_PROGRESS, minute=5))
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    assert store.flush()
    assert {KEY: {"offset": 1}} == slot.cursors()

    _commit(store, 2, make_event("run-1", status=Status.SUCCESS, minute=3))
    assert store.flush()

    assert {KEY: {"offset": 1}} == slot.cursors()
    store.mark_delivered(_claim_all(store, "a", clock)["run-1"], now=clock())
    assert store.flush()
    assert {KEY: {"offset": 2}} == slot.cursors()

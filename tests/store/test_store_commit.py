"""Cursors and commit_page: the cursor only moves with the events it covers, and nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.store.conftest import BACKENDS, Backend, DashboardBackend, PostgresBackend
from tests.store.factories import T0, FakeClock, make_event
from tests.support import DASHBOARD_KEY

from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.errors import StoreError
from deploy_fetcher.model import Status
from deploy_fetcher.sinks.dashboard.backend import DashboardStore, decode_document
from deploy_fetcher.store import CursorRecord, SqliteStore, StateStore


def _row_count(backend: Backend) -> int:
    return int(backend.execute("SELECT count(*) FROM outbox")[0][0])


# -- cursors --------------------------------------------------------------------------------------
def test_cursor_round_trip(store: StateStore) -> None:
    """A committed cursor comes back equal, nested values included."""
    cursor = {"since": "2024-05-01T12:00:00Z", "etag": 'W/"abc"', "seen": [1, 2], "n": {"x": None}}

    store.commit_page("gh/octo/api", cursor, [])

    assert cursor == store.get_cursor("gh/octo/api")


def test_no_cursor_before_the_first_commit(store: StateStore) -> None:
    """get_cursor is None for a target never committed."""
    assert None is store.get_cursor("gh/octo/api")


def test_a_later_commit_replaces_the_cursor(store: StateStore, clock: FakeClock) -> None:
    """The newest committed cursor wins, stamped with the time of its commit."""
    store.commit_page("gh/octo/api", {"page": 1}, [])
    later = clock.advance(60)
    store.commit_page("gh/octo/api", {"page": 2}, [])

    assert [CursorRecord("gh/octo/api", {"page": 2}, later)] == store.list_cursors()


def test_a_page_without_cursor_leaves_the_stored_one(store: StateStore) -> None:
    """A page with cursor None stores its rows and keeps the previous cursor as it is."""
    store.commit_page("gh/octo/api", {"page": 1}, [])

    store.commit_page("gh/octo/api", None, [("dash", make_event())])

    assert {"page": 1} == store.get_cursor("gh/octo/api")
    assert 1 == store.pending_count("dash")


def test_list_cursors_is_ordered_by_key_with_aware_utc_times(store: StateStore) -> None:
    """Every cursor is listed, by key, with a timezone-aware UTC updated_at."""
    for key in ("gl/b", "az/a", "gh/c"):
        store.commit_page(key, {"k": key}, [])

    records = store.list_cursors()

    assert ["az/a", "gh/c", "gl/b"] == [record.key for record in records]
    assert {T0} == {record.updated_at for record in records}
    assert {"UTC"} == {record.updated_at.tzname() for record in records}


def test_reset_cursor_forgets_it_once(store: StateStore) -> None:
    """reset_cursor removes the cursor and says whether there was one."""
    store.commit_page("gh/octo/api", {"page": 1}, [])

    assert (True, False) == (store.reset_cursor("gh/octo/api"), store.reset_cursor("gh/octo/api"))
    assert None is store.get_cursor("gh/octo/api")


@pytest.fixture(scope="module", params=BACKENDS)
def shared_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StateStore]:
    """One store for every example hypothesis tries (a new database per example would be slow)."""
    if request.param == "sqlite":
        opened: StateStore = SqliteStore(tmp_path_factory.mktemp("hypothesis") / "state.db")
        yield opened
        opened.close()
        return
    if request.param == "dashboard":
        emulator = DashboardEmulator(api_key=DASHBOARD_KEY)
        emulator.start()
        try:
            directory = tmp_path_factory.mktemp("hypothesis")
            opened = DashboardBackend(emulator, directory).open(FakeClock())
            yield opened
            opened.close()
        finally:
            emulator.stop()
        return
    cluster = request.getfixturevalue("postgres_cluster")
    with cluster.database() as url:
        opened = PostgresBackend(url).open(FakeClock())
        yield opened
        opened.close()


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(cursor=st.dictionaries(st.text(), _json, max_size=6))
def test_any_json_object_cursor_round_trips(
    shared_store: StateStore, cursor: dict[str, Any]
) -> None:
    """Whatever JSON object an adapter uses as its cursor comes back equal (from the slot too)."""
    shared_store.commit_page("prop", cursor, [])

    assert cursor == shared_store.get_cursor("prop")
    if isinstance(shared_store, DashboardStore):
        assert shared_store.flush()
        assert cursor == decode_document(shared_store.slot.load() or "")[0]["prop"]


def test_a_cursor_json_cannot_carry_is_refused_and_nothing_is_stored(
    store: StateStore, backend: Backend
) -> None:
    """A cursor with a non-JSON value raises ValueError before any row or cursor is written."""
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        store.commit_page("gh/octo/api", {"since": T0}, [("dash", make_event())])

    assert (None, 0) == (store.get_cursor("gh/octo/api"), _row_count(backend))


# -- commit_page ----------------------------------------------------------------------------------
def test_commit_page_returns_rows_inserted(store: StateStore) -> None:
    """Every new (sink, event) pair is one row, counted in the return value."""
    rows = [("dash", make_event("run-1")), ("dash", make_event("run-2"))]

    assert 2 == store.commit_page("gh/octo/api", {"page": 1}, rows)


def test_an_event_seen_again_in_a_later_page_is_not_queued_twice(store: StateStore) -> None:
    """Re-reading an overlap window inserts nothing new: the dedup key is already there."""
    store.commit_page("gh/octo/api", {"page": 1}, [("dash", make_event("run-1"))])

    inserted = store.commit_page(
        "gh/octo/api", {"page": 2}, [("dash", make_event("run-1")), ("dash", make_event("run-2"))]
    )

    assert 1 == inserted
    assert 2 == store.pending_count("dash")
    assert {"page": 2} == store.get_cursor("gh/octo/api")


def test_the_dedup_key_includes_status_and_time(store: StateStore) -> None:
    """The same deployment in another status, or the same status at another time, is a new row."""
    rows = [
        ("dash", make_event("run-1", status=Status.IN_PROGRESS, minute=0)),
        ("dash", make_event("run-1", status=Status.SUCCESS, minute=5)),
        ("dash", make_event("run-1", status=Status.IN_PROGRESS, minute=9)),
    ]

    assert 3 == store.commit_page("gh/octo/api", None, rows)


def test_the_same_event_for_two_sinks_is_two_rows(store: StateStore) -> None:
    """Dedup is per sink: one event fanned out to two sinks is queued for each."""
    event = make_event()

    inserted = store.commit_page("gh/octo/api", None, [("dash", event), ("jsonl", event)])

    assert 2 == inserted
    assert (1, 1) == (store.pending_count("dash"), store.pending_count("jsonl"))


def test_a_failure_inside_the_transaction_stores_neither_rows_nor_cursor(
    store: StateStore, backend: Backend
) -> None:
    """When the cursor write fails after the rows went in, the rows are rolled back with it."""
    store.commit_page("gh/octo/api", {"page": 1}, [])
    backend.refuse_writes("cursors", "UPDATE", "boom")

    with pytest.raises(StoreError, match="boom while committing a page"):
        store.commit_page("gh/octo/api", {"page": 2}, [("dash", make_event())])

    assert {"page": 1} == store.get_cursor("gh/octo/api")
    assert 0 == _row_count(backend)


def test_the_store_is_usable_after_a_rolled_back_page(store: StateStore, backend: Backend) -> None:
    """A failed commit leaves no transaction open: the next page commits normally."""
    backend.refuse_writes("cursors", "INSERT", "x")
    with pytest.raises(StoreError):
        store.commit_page("gh/octo/api", {"page": 1}, [("dash", make_event("run-1"))])
    backend.allow_writes("cursors")

    assert 1 == store.commit_page("gh/octo/api", {"page": 1}, [("dash", make_event("run-2"))])


# -- promotion ledger -----------------------------------------------------------------------------
def test_latest_success_picks_the_latest_whatever_the_commit_order(store: StateStore) -> None:
    """The latest successful deployment by happened_at wins, even when committed first."""
    store.commit_page("k", None, [("dash", make_event("late", minute=30))])
    store.commit_page("k", None, [("dash", make_event("early", minute=10))])

    assert "late" == store.latest_success(service="api", environment="prod", sha="abc123")


def test_latest_success_ignores_failures_and_events_without_sha(store: StateStore) -> None:
    """Only successes with a sha are remembered; other service, env or sha find nothing."""
    store.commit_page(
        "k",
        None,
        [
            ("dash", make_event("ok", minute=1)),
            ("dash", make_event("failed", status=Status.FAILURE, minute=2)),
            ("dash", make_event("no-sha", sha=None, minute=3)),
        ],
    )

    found = [
        store.latest_success(service="api", environment="prod", sha="abc123"),
        store.latest_success(service="api", environment="staging", sha="abc123"),
        store.latest_success(service="web", environment="prod", sha="abc123"),
        store.latest_success(service="api", environment="prod", sha="other"),
    ]
    assert ["ok", None, None, None] == found


# -- small values ---------------------------------------------------------------------------------
def test_values_round_trip_and_replace(store: StateStore) -> None:
    """set_value stores, a second set_value replaces, an unknown key is None."""
    store.set_value("control.last-event-id", "41")
    store.set_value("control.last-event-id", "42")

    assert ("42", None) == (store.get_value("control.last-event-id"), store.get_value("other"))


def test_a_damaged_cursor_is_a_store_error_naming_the_key(
    store: StateStore, backend: Backend
) -> None:
    """A cursor that is no longer JSON is reported with its key, so the operator can reset it."""
    store.commit_page("gh/octo/api", {"page": 1}, [])
    backend.execute("UPDATE cursors SET cursor = '{not json'")

    with pytest.raises(StoreError, match="the cursor 'gh/octo/api' is damaged"):
        store.get_cursor("gh/octo/api")

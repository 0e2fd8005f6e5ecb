"""The lifecycle ledger: across commits, a sink's rows of one deployment never go backwards.

Every test runs on both backends (a SQLite file, a PostgreSQL database). The rows are read back the
way a delivery worker takes them (``claim``: oldest ``happened_at`` first, then insertion order).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs
from tests.store.conftest import TEMPORARY_OUTBOX, Backend, PostgresBackend, SqliteBackend
from tests.store.factories import T0, FakeClock, make_event
from tests.support import wait_until

from deploy_fetcher.errors import StoreError
from deploy_fetcher.lifecycle import violations
from deploy_fetcher.model import DeployEvent, Status
from deploy_fetcher.store import StateStore

LATER = T0 + timedelta(days=1)


def _event(status: str, minute: int, deployment: str = "d1") -> DeployEvent:
    return make_event(deployment, status=Status(status), minute=minute)


def _queued(store: StateStore, sink: str = "dash") -> list[tuple[str, str, int]]:
    """``(deployment, status, minute)`` of every pending row, in the order it would be delivered."""
    rows = store.claim(sink, limit=1000, lease_seconds=60, now=LATER)
    store.release([row.id for row in rows])
    return [
        (
            row.event.deployment_id,
            row.event.status.value,
            int((row.event.happened_at - T0).total_seconds() // 60),
        )
        for row in rows
    ]


def _ledger(backend: Backend) -> list[tuple[Any, ...]]:
    return [
        (str(sink), str(deployment), str(status))
        for sink, deployment, status in backend.execute(
            "SELECT sink, deployment_id, status FROM lifecycle ORDER BY sink, deployment_id"
        )
    ]


def _drops(logs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (log["status"], log["after"], log["why"])
        for log in logs
        if log["event"] == "lifecycle.event_dropped"
    ]


def test_a_state_behind_one_queued_by_an_earlier_commit_is_dropped(store: StateStore) -> None:
    """in-progress committed, then queued for the same deployment: queued is left out, logged once."""
    store.commit_page("k", {"page": 1}, [("dash", _event("in-progress", 5))])

    with capture_logs() as logs:
        inserted = store.commit_page("k", {"page": 2}, [("dash", _event("queued", 3))])

    assert 0 == inserted
    assert [("d1", "in-progress", 5)] == _queued(store)
    assert [("queued", "in-progress", "behind_stored")] == _drops(logs)
    [line] = [log for log in logs if log["event"] == "lifecycle.event_dropped"]
    assert ("d1", "dash", "gh") == (line["deployment_id"], line["sink"], line["source"])


def test_a_re_read_of_states_already_queued_is_left_out_without_a_log_line(
    store: StateStore,
) -> None:
    """An overlap re-read repeats a deployment's older states: nothing new, nothing logged."""
    page = [("dash", _event("queued", 1)), ("dash", _event("in-progress", 2))]
    store.commit_page("k", None, page)
    store.commit_page("k", None, [("dash", _event("success", 4))])

    with capture_logs() as logs:
        inserted = store.commit_page("k", None, [*page, ("dash", _event("success", 4))])

    assert 0 == inserted
    assert [] == _drops(logs)
    assert [("d1", "queued", 1), ("d1", "in-progress", 2), ("d1", "success", 4)] == _queued(store)


def test_a_state_further_along_but_dated_earlier_is_re_dated_to_the_latest(
    store: StateStore,
) -> None:
    """Success dated before the stored in-progress is queued at the in-progress's time, and said so."""
    store.commit_page("k", None, [("dash", _event("in-progress", 5))])

    with capture_logs() as logs:
        store.commit_page("k", None, [("dash", _event("success", 3))])
        # Read again on the next cycle, the success is the row already queued: not a second one.
        store.commit_page("k", None, [("dash", _event("success", 3))])

    assert [("d1", "in-progress", 5), ("d1", "success", 5)] == _queued(store)
    clamped = [log for log in logs if log["event"] == "lifecycle.event_clamped"]
    assert [("success", (T0 + timedelta(minutes=5)).isoformat())] == [
        (log["status"], log["clamped_to"]) for log in clamped
    ]
    assert [] == _drops(logs)


def test_an_end_dated_before_the_end_already_queued_is_dropped(store: StateStore) -> None:
    """Failure at :05 queued; a cancelled at :04 read later is older news and is left out."""
    store.commit_page("k", None, [("dash", _event("failure", 5))])

    with capture_logs() as logs:
        store.commit_page("k", None, [("dash", _event("cancelled", 4))])

    assert [("d1", "failure", 5)] == _queued(store)
    assert [("cancelled", "failure", "behind_stored")] == _drops(logs)


def test_a_tie_in_time_across_pages_keeps_lifecycle_order(store: StateStore) -> None:
    """Same instant in two pages: queued then in-progress is kept; in-progress then queued is not."""
    store.commit_page("k", None, [("dash", _event("queued", 1, "a"))])
    store.commit_page("k", None, [("dash", _event("in-progress", 1, "a"))])
    store.commit_page("k", None, [("dash", _event("in-progress", 1, "b"))])
    store.commit_page("k", None, [("dash", _event("queued", 1, "b"))])

    queued = _queued(store)

    assert [("a", "queued", 1), ("a", "in-progress", 1), ("b", "in-progress", 1)] == queued
    assert [] == violations([row.event for row in _claimed(store)])


def _claimed(store: StateStore) -> list[Any]:
    rows = store.claim("dash", limit=1000, lease_seconds=60, now=LATER)
    store.release([row.id for row in rows])
    return rows


def test_each_sink_is_judged_on_its_own(store: StateStore) -> None:
    """A sink that never got the in-progress (filtered, or stored first by a backfill) gets queued."""
    store.commit_page("k", None, [("dash", _event("in-progress", 5))])

    store.commit_page("k", None, [("jsonl", _event("queued", 3)), ("dash", _event("queued", 3))])

    assert ([("d1", "in-progress", 5)], [("d1", "queued", 3)]) == (
        _queued(store),
        _queued(store, "jsonl"),
    )


def test_a_rerun_under_the_same_id_after_its_end_is_a_new_lifecycle(store: StateStore) -> None:
    """A failed deployment re-run later under its id (a retried pipeline): its states all arrive."""
    store.commit_page(
        "k", None, [("dash", _event("in-progress", 1)), ("dash", _event("failure", 2))]
    )

    store.commit_page("k", None, [("dash", _event("queued", 10))])
    store.commit_page("k", None, [("dash", _event("in-progress", 11))])
    store.commit_page("k", None, [("dash", _event("success", 12))])
    # Its attempt numbered in the id (GitHub runs, Azure DevOps stages) is another deployment.
    store.commit_page("k", None, [("dash", _event("queued", 10, "d1-attempt-2"))])

    expected = [
        ("d1", "in-progress", 1),
        ("d1", "failure", 2),
        ("d1", "queued", 10),
        ("d1-attempt-2", "queued", 10),
        ("d1", "in-progress", 11),
        ("d1", "success", 12),
    ]
    assert expected == _queued(store)
    assert [] == violations([row.event for row in _claimed(store)])


def test_a_rolled_back_commit_leaves_neither_ledger_nor_rows(
    store: StateStore, backend: Backend
) -> None:
    """The cursor write fails after rows and ledger went in: both roll back, so queued still passes."""
    backend.refuse_writes("cursors", "INSERT", "boom")
    with pytest.raises(StoreError, match="boom"):
        store.commit_page("k", {"page": 1}, [("dash", _event("in-progress", 5))])
    backend.allow_writes("cursors")

    assert ([], []) == (_ledger(backend), _queued(store))
    store.commit_page("k", {"page": 1}, [("dash", _event("queued", 3))])
    assert [("d1", "queued", 3)] == _queued(store)


def test_pruning_forgets_entries_last_written_before_the_cutoff(
    store: StateStore, backend: Backend, clock: FakeClock
) -> None:
    """An entry older than the retention goes (the page's own order rules again); a newer one stays."""
    store.commit_page("k", None, [("dash", _event("in-progress", 5, "old"))])
    clock.advance(3600)
    store.commit_page("k", None, [("dash", _event("in-progress", 5, "new"))])

    store.prune_delivered(older_than=T0 + timedelta(minutes=30))

    assert [("dash", "new", "in-progress")] == _ledger(backend)
    store.commit_page("k", None, [("dash", _event("queued", 3, "old"))])
    store.commit_page("k", None, [("dash", _event("queued", 3, "new"))])
    assert ["old"] == [d for d, status, _ in _queued(store) if status == "queued"]


def _back_to_the_previous_version(backend: Backend) -> None:
    """Leave the state as the version before the ledger had it: no ledger, the version before."""
    backend.execute("DROP TABLE lifecycle")
    if isinstance(backend, SqliteBackend):
        from deploy_fetcher.store._schema import schema_version

        backend.execute(f"PRAGMA user_version = {schema_version() - 1}")
    else:
        from deploy_fetcher.store.postgres import schema_version as pg_version

        backend.execute("UPDATE meta SET schema_version = ?", (pg_version() - 1,))


@pytest.mark.not_applicable("dashboard", reason=TEMPORARY_OUTBOX)
def test_an_existing_state_from_the_previous_version_gets_its_ledger_from_the_outbox(
    backend: Backend, clock: FakeClock
) -> None:
    """Upgraded in place, a deployment in flight is judged against what its outbox already holds."""
    old = backend.open(clock)
    old.commit_page(
        "k",
        {"page": 1},
        [
            ("dash", _event("queued", 1)),
            ("dash", _event("in-progress", 4)),
            ("dash", _event("queued", 4, "tie")),
            ("dash", _event("waiting", 4, "tie")),
            ("jsonl", _event("queued", 1)),
        ],
    )
    old.close()
    _back_to_the_previous_version(backend)

    store = backend.open(clock)
    try:
        assert [
            ("dash", "d1", "in-progress"),
            ("dash", "tie", "waiting"),
            ("jsonl", "d1", "queued"),
        ] == _ledger(backend)
        assert {"page": 1} == store.get_cursor("k")
        store.commit_page(
            "k", None, [("dash", _event("queued", 3)), ("jsonl", _event("queued", 3))]
        )
        assert [("d1", "queued", 1), ("d1", "in-progress", 4)] == [
            row for row in _queued(store) if row[0] == "d1"
        ]
        assert [("d1", "queued", 1), ("d1", "queued", 3)] == _queued(store, "jsonl")
    finally:
        store.close()


def test_two_writers_of_one_deployment_judge_it_one_after_the_other(
    pg_url: str, clock: FakeClock
) -> None:
    """PostgreSQL: a commit waits for another writer's uncommitted entry, then judges against it."""
    import psycopg

    from deploy_fetcher.store.postgres import PostgresStore
    from deploy_fetcher.store.postgres._store import _LEDGER_LOCKS, _lock_keys

    backend = PostgresBackend(pg_url)
    store = PostgresStore(pg_url, clock=clock, pool_size=2)
    other = psycopg.connect(pg_url)
    try:
        # Another writer, mid-commit: it holds the deployment's lock and has queued in-progress.
        [key] = _lock_keys([("dash", "d1")])
        other.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LEDGER_LOCKS, key))
        other.execute(
            "INSERT INTO deploy_fetcher.lifecycle VALUES ('dash', 'd1', 'in-progress', %s, %s)",
            (T0 + timedelta(minutes=5), T0),
        )
        done: list[int] = []
        writer = threading.Thread(
            target=lambda: done.append(
                store.commit_page("k", None, [("dash", _event("queued", 3))])
            )
        )
        writer.start()
        wait_until(lambda: _waiting_for_an_advisory_lock(backend))
        assert [] == done
        other.commit()
        writer.join(timeout=20)

        assert [0] == done
        assert [("dash", "d1", "in-progress")] == _ledger(backend)
    finally:
        other.close()
        store.close()


def _waiting_for_an_advisory_lock(backend: PostgresBackend) -> bool:
    found = backend.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    return int(found[0][0]) > 0


def test_the_ledger_is_keyed_like_the_dedup_ledger(backend: Backend, store: StateStore) -> None:
    """One entry per sink and deployment, holding the furthest state (and its time) queued."""
    store.commit_page(
        "k",
        None,
        [
            ("dash", _event("queued", 1)),
            ("dash", _event("in-progress", 2)),
            ("jsonl", _event("queued", 1)),
            ("dash", _event("queued", 1, "d2")),
        ],
    )

    found = backend.execute(
        "SELECT sink, deployment_id, status, happened_at FROM lifecycle"
        " ORDER BY sink, deployment_id"
    )
    assert [
        ("dash", "d1", "in-progress", 2),
        ("dash", "d2", "queued", 1),
        ("jsonl", "d1", "queued", 1),
    ] == [(s, d, st, _minute(at)) for s, d, st, at in found]


def _minute(value: Any) -> int:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return int((at - T0).total_seconds() // 60)

"""The outbox: claims with leases, retries, dead letters, and cleaning up."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest
from tests.store.conftest import TEMPORARY_OUTBOX, Backend
from tests.store.factories import T0, FakeClock, make_event

from deploy_fetcher.model import Status
from deploy_fetcher.store import OutboxStats, StateStore

LEASE = 60.0


def _queue(store: StateStore, *minutes: int, sink: str = "dash") -> None:
    store.commit_page(
        "gh/octo/api", None, [(sink, make_event(f"run-{m}", minute=m)) for m in minutes]
    )


def _ids_by_deployment(store: StateStore, **filters: str) -> dict[str, int]:
    return {row.event.deployment_id: row.id for row in store.list_rows(**filters)}  # type: ignore[arg-type]


# -- claiming -------------------------------------------------------------------------------------
def test_claim_returns_rows_oldest_happened_at_first(store: StateStore) -> None:
    """Rows come out in happened_at order, not in the order they were queued."""
    _queue(store, 30, 10, 20)
    _queue(store, 5)

    rows = store.claim("dash", limit=10, lease_seconds=LEASE, now=T0)

    assert ["run-5", "run-10", "run-20", "run-30"] == [r.event.deployment_id for r in rows]


def test_claim_returns_the_stored_row_as_queued(store: StateStore, clock: FakeClock) -> None:
    """A claimed row carries its sink, source, event and times (aware UTC) as committed."""
    event = make_event("run-1")
    clock.advance(90)
    store.commit_page("gh/octo/api", None, [("dash", event)])

    (row,) = store.claim("dash", limit=1, lease_seconds=LEASE, now=clock.now)

    assert ("dash", "gh", event, "pending", 0, None) == (
        row.sink,
        row.source,
        row.event,
        row.state,
        row.attempts,
        row.last_error,
    )
    assert (clock.now, clock.now) == (row.created_at, row.next_attempt_at)
    assert UTC == row.created_at.tzinfo


def test_claim_is_bounded_by_limit_and_per_sink(store: StateStore) -> None:
    """A claim takes at most ``limit`` rows, and only of the sink asked for."""
    _queue(store, 1, 2, 3)
    _queue(store, 0, sink="jsonl")

    rows = store.claim("dash", limit=2, lease_seconds=LEASE, now=T0)

    assert ["run-1", "run-2"] == [r.event.deployment_id for r in rows]


def test_claimed_rows_are_not_claimed_again_during_the_lease(store: StateStore) -> None:
    """A second claim within the lease gets only the rows the first did not take."""
    _queue(store, 1, 2, 3)
    store.claim("dash", limit=2, lease_seconds=LEASE, now=T0)

    again = store.claim("dash", limit=10, lease_seconds=LEASE, now=T0 + timedelta(seconds=59))

    assert ["run-3"] == [r.event.deployment_id for r in again]


def test_an_expired_lease_makes_the_row_claimable_again(store: StateStore) -> None:
    """A claimer that crashed holds its rows only until the lease runs out."""
    _queue(store, 1)
    store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)

    later = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0 + timedelta(seconds=LEASE))

    assert ["run-1"] == [r.event.deployment_id for r in later]


def test_release_makes_rows_claimable_without_counting_an_attempt(store: StateStore) -> None:
    """Released rows are claimable at once, with attempts unchanged."""
    _queue(store, 1, 2)
    rows = store.claim("dash", limit=2, lease_seconds=LEASE, now=T0)

    store.release([r.id for r in rows])
    again = store.claim("dash", limit=2, lease_seconds=LEASE, now=T0)

    assert [("run-1", 0), ("run-2", 0)] == [(r.event.deployment_id, r.attempts) for r in again]


def test_release_does_not_free_another_processs_claim(store: StateStore, backend: Backend) -> None:
    """A release only gives back this process's claims, not rows re-claimed by someone else."""
    _queue(store, 1)
    (row,) = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)
    backend.execute("UPDATE outbox SET claimed_by = 'other-host-1-x' WHERE id = ?", (row.id,))

    store.release([row.id])

    assert [] == store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)


# -- head of the line -----------------------------------------------------------------------------
def _retry(store: StateStore, row_id: int, minutes: float) -> datetime:
    due = T0 + timedelta(minutes=minutes)
    store.mark_retry(row_id, next_attempt_at=due, error="503 Service Unavailable")
    return due


def _claimed(store: StateStore, now: datetime, sink: str = "dash") -> list[str]:
    rows = store.claim(sink, limit=10, lease_seconds=LEASE, now=now)
    return [f"{row.event.deployment_id}/{row.event.status.value}" for row in rows]


@pytest.mark.not_applicable("dashboard", reason=TEMPORARY_OUTBOX)
def test_a_row_waiting_to_be_retried_holds_back_later_rows_after_a_restart(
    store: StateStore, backend: Backend, clock: FakeClock
) -> None:
    """A new process (a restart, fetcher sync) does not send success before the in-progress awaiting its retry."""
    store.commit_page(
        "gh/octo/api",
        None,
        [
            ("dash", make_event("run-1", status=Status.IN_PROGRESS, minute=0)),
            ("dash", make_event("run-1", status=Status.SUCCESS, minute=1)),
        ],
    )
    (first,) = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)
    due = _retry(store, first.id, 4)
    store.close()
    restarted = backend.open(clock)
    try:
        assert [] == _claimed(restarted, T0 + timedelta(minutes=1))
        assert ["run-1/in-progress", "run-1/success"] == _claimed(restarted, due)
    finally:
        restarted.close()


def test_rows_before_the_waiting_row_are_still_claimed(store: StateStore) -> None:
    """Only rows after the waiting one in happened_at order wait; earlier ones (late arrivals) go."""
    _queue(store, 10, 20)
    first = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)[0]
    _retry(store, first.id, 60)
    _queue(store, 5)
    assert ["run-5/success"] == _claimed(store, T0)


def test_ties_on_happened_at_follow_the_row_id(store: StateStore) -> None:
    """Rows of equal happened_at keep (happened_at, id) order around a row waiting for its retry."""
    store.commit_page(
        "gh/octo/api",
        None,
        [("dash", make_event(name, minute=1)) for name in ("a", "b", "c")],
    )
    first, middle, last = store.claim("dash", limit=3, lease_seconds=LEASE, now=T0)
    store.release([first.id, last.id])
    _retry(store, middle.id, 60)
    assert ["a/success"] == _claimed(store, T0)


def test_a_waiting_row_holds_back_only_its_own_sink(store: StateStore) -> None:
    """Another sink's rows are claimed while one sink waits for a retry."""
    _queue(store, 1, 2)
    _queue(store, 1, 2, sink="cloudlink")
    first = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)[0]
    _retry(store, first.id, 60)
    assert ([], ["run-1/success", "run-2/success"]) == (
        _claimed(store, T0),
        _claimed(store, T0, sink="cloudlink"),
    )


# -- settling rows --------------------------------------------------------------------------------
def test_mark_retry_counts_the_attempt_and_delays_the_row(store: StateStore) -> None:
    """A retried row keeps its error, counts the attempt, and is due only at next_attempt_at."""
    _queue(store, 1)
    (row,) = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)
    due = T0 + timedelta(seconds=30)

    store.mark_retry(row.id, next_attempt_at=due, error="503 Service Unavailable")

    assert [] == store.claim("dash", limit=1, lease_seconds=LEASE, now=due - timedelta(seconds=1))
    (again,) = store.claim("dash", limit=1, lease_seconds=LEASE, now=due)
    assert (1, "503 Service Unavailable", due) == (
        again.attempts,
        again.last_error,
        again.next_attempt_at,
    )


def test_delivered_rows_leave_the_queue_and_count_as_delivered(store: StateStore) -> None:
    """A delivered row is never claimed again and shows in the stats as delivered."""
    _queue(store, 1, 2)
    rows = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)

    store.mark_delivered(rows[0].id, now=T0)

    assert [OutboxStats("dash", 1, 1, 0, T0)] == store.stats()
    later = store.claim("dash", limit=5, lease_seconds=LEASE, now=T0 + timedelta(hours=1))
    assert ["run-2"] == [r.event.deployment_id for r in later]


def test_dead_letter_stores_the_reason_and_stops_claims(store: StateStore) -> None:
    """A dead-lettered row keeps the reason, counts the attempt, and is not claimable."""
    _queue(store, 1)
    (row,) = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)

    store.dead_letter(row.id, reason="422: unknown field 'foo'", now=T0)

    (dead,) = store.list_rows(state="dead")
    assert ("dead", "422: unknown field 'foo'", 1) == (dead.state, dead.last_error, dead.attempts)
    assert [] == store.claim("dash", limit=1, lease_seconds=LEASE, now=T0 + timedelta(days=1))
    assert 0 == store.pending_count("dash")


def test_settling_a_row_no_longer_pending_changes_nothing(store: StateStore) -> None:
    """A late mark from a claimer whose lease ran out does not undo a delivery made meanwhile."""
    _queue(store, 1)
    (row,) = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)
    store.mark_delivered(row.id, now=T0)

    store.mark_retry(row.id, next_attempt_at=T0, error="late timeout")
    store.dead_letter(row.id, reason="late 422", now=T0)

    (after,) = store.list_rows()
    assert ("delivered", 0, None) == (after.state, after.attempts, after.last_error)


def test_retry_dead_resets_attempts_and_makes_rows_due(store: StateStore, clock: FakeClock) -> None:
    """Dead letters retried are pending again, attempts reset, due now, the last error kept."""
    _queue(store, 1, 2)
    for row in store.claim("dash", limit=2, lease_seconds=LEASE, now=T0):
        store.dead_letter(row.id, reason="422", now=T0)
    clock.advance(3600)

    assert 2 == store.retry_dead(sink="dash")

    rows = store.claim("dash", limit=5, lease_seconds=LEASE, now=clock.now)
    assert [(0, "422", clock.now)] * 2 == [
        (r.attempts, r.last_error, r.next_attempt_at) for r in rows
    ]


def test_retry_dead_by_id_and_by_sink_only_touches_those(store: StateStore) -> None:
    """retry_dead with ids or a sink leaves other dead letters dead."""
    _queue(store, 1, 2, 3)
    _queue(store, 4, sink="jsonl")
    for sink in ("dash", "jsonl"):
        for row in store.claim(sink, limit=5, lease_seconds=LEASE, now=T0):
            store.dead_letter(row.id, reason="422", now=T0)
    ids = _ids_by_deployment(store, sink="dash")

    by_id = store.retry_dead(ids=[ids["run-2"]])
    wrong_sink = store.retry_dead(sink="jsonl", ids=[ids["run-3"]])
    nothing = store.retry_dead(ids=[])

    assert (1, 0, 0) == (by_id, wrong_sink, nothing)
    assert [("dash", 1, 2), ("jsonl", 0, 1)] == [(s.sink, s.pending, s.dead) for s in store.stats()]


def test_purge_deletes_only_rows_in_the_given_state(store: StateStore) -> None:
    """Purging dead letters keeps pending and delivered rows."""
    _queue(store, 1, 2, 3)
    first, second, _third = store.claim("dash", limit=3, lease_seconds=LEASE, now=T0)
    store.dead_letter(first.id, reason="422", now=T0)
    store.mark_delivered(second.id, now=T0)

    assert 1 == store.purge(state="dead")

    assert [("run-3", "pending"), ("run-2", "delivered")] == [
        (r.event.deployment_id, r.state) for r in store.list_rows()
    ]


def test_purge_by_id_and_sink(store: StateStore) -> None:
    """Purge with ids deletes only those rows, and only if sink and state match."""
    _queue(store, 1, 2)
    _queue(store, 3, sink="jsonl")
    ids = _ids_by_deployment(store)

    deleted = store.purge(state="pending", sink="dash", ids=[ids["run-1"], ids["run-3"]])

    assert 1 == deleted
    assert {"run-2", "run-3"} == set(_ids_by_deployment(store))


def test_a_dedup_key_is_remembered_until_its_row_is_pruned(store: StateStore) -> None:
    """A delivered event seen again is not queued again; after pruning it would be."""
    _queue(store, 1)
    (row,) = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)
    store.mark_delivered(row.id, now=T0)

    again = store.commit_page("gh/octo/api", None, [("dash", make_event("run-1", minute=1))])
    pruned = store.prune_delivered(older_than=T0 + timedelta(seconds=1))
    after_prune = store.commit_page("gh/octo/api", None, [("dash", make_event("run-1", minute=1))])

    assert (0, 1, 1) == (again, pruned, after_prune)


def test_prune_keeps_recent_delivered_and_all_undelivered_rows(
    store: StateStore, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prune removes delivered rows older than the cutoff, in several small batches, and no others."""
    monkeypatch.setattr(sys.modules[backend.outbox_module], "DELETE_BATCH", 3)
    _queue(store, *range(12))
    rows = store.claim("dash", limit=12, lease_seconds=LEASE, now=T0)
    for index, row in enumerate(rows[:10]):
        store.mark_delivered(row.id, now=T0 + timedelta(days=index))
    store.dead_letter(rows[10].id, reason="422", now=T0)

    pruned = store.prune_delivered(older_than=T0 + timedelta(days=7))

    assert 7 == pruned
    assert [OutboxStats("dash", 1, 3, 1, T0)] == store.stats()


def test_prune_forgets_old_successes(store: StateStore) -> None:
    """The promotion ledger is pruned with the same cutoff as delivered rows."""
    _queue(store, 0)
    store.commit_page("k", None, [("dash", make_event("new", service="web", minute=60 * 24))])

    store.prune_delivered(older_than=T0 + timedelta(hours=1))

    assert [None, "new"] == [
        store.latest_success(service=service, environment="prod", sha="abc123")
        for service in ("api", "web")
    ]


# -- reading --------------------------------------------------------------------------------------
def test_list_rows_is_newest_first_with_filters_and_limit(store: StateStore) -> None:
    """list_rows orders by insertion, newest first, filtered by sink and state, cut at limit."""
    _queue(store, 1, 2, 3)
    _queue(store, 4, sink="jsonl")

    newest = [r.event.deployment_id for r in store.list_rows(limit=3)]
    dash = [r.event.deployment_id for r in store.list_rows(sink="dash", state="pending")]
    dead = store.list_rows(state="dead")

    assert (["run-4", "run-3", "run-2"], ["run-3", "run-2", "run-1"], []) == (newest, dash, dead)


def test_stats_per_sink_with_oldest_pending(store: StateStore, clock: FakeClock) -> None:
    """Stats count each state per sink and give when the oldest pending row was queued."""
    _queue(store, 1)
    clock.advance(60)
    _queue(store, 2, 3)
    _queue(store, 4, sink="jsonl")
    (first,) = store.claim("dash", limit=1, lease_seconds=LEASE, now=clock.now)
    store.mark_delivered(first.id, now=clock.now)

    assert [
        OutboxStats("dash", 2, 1, 0, T0 + timedelta(seconds=60)),
        OutboxStats("jsonl", 1, 0, 0, T0 + timedelta(seconds=60)),
    ] == store.stats()
    assert (2, 0) == (store.pending_count("dash"), store.pending_count("nobody"))


def test_a_row_whose_event_cannot_be_read_back_is_dead_lettered_by_claim(
    store: StateStore, backend: Backend
) -> None:
    """A stored event that no longer parses goes to the dead letters instead of blocking the queue."""
    _queue(store, 1, 2)
    backend.execute(
        """UPDATE outbox SET event = '{"deployment_id": ""}' WHERE deployment_id = 'run-1'"""
    )

    rows = store.claim("dash", limit=5, lease_seconds=LEASE, now=T0)

    assert ["run-2"] == [r.event.deployment_id for r in rows]
    assert [OutboxStats("dash", 1, 0, 1, T0)] == store.stats()


# -- what `fetcher explain` and `fetcher outbox flush` need ------------------------------------------
def test_rows_for_gives_one_deployments_rows_of_the_named_sinks(store: StateStore) -> None:
    """Every state of the deployment, oldest first, only for the sinks asked about."""
    store.commit_page(
        "gh/octo/api",
        None,
        [
            ("dash", make_event("run-1", status=Status.SUCCESS, minute=5)),
            ("dash", make_event("run-1", status=Status.IN_PROGRESS, minute=1)),
            ("archive", make_event("run-1", status=Status.SUCCESS, minute=5)),
            ("other", make_event("run-1", status=Status.SUCCESS, minute=5)),
            ("dash", make_event("run-2", minute=3)),
        ],
    )

    rows = store.rows_for("run-1", sinks=["dash", "archive"])

    assert [("dash", "in-progress"), ("dash", "success"), ("archive", "success")] == sorted(
        ((r.sink, r.event.status.value) for r in rows),
        key=lambda pair: (pair[1], pair[0] != "dash"),
    )
    assert [] == store.rows_for("run-9", sinks=["dash"])


def test_make_due_ends_a_backoff_but_leaves_live_claims(store: StateStore) -> None:
    """Rows waiting out a retry become claimable now; a row claimed elsewhere is left alone."""
    _queue(store, 1, 2)
    first, second = store.claim("dash", limit=2, lease_seconds=LEASE, now=T0)
    store.mark_retry(first.id, next_attempt_at=T0 + timedelta(hours=1), error="503")

    assert [] == store.claim("dash", limit=2, lease_seconds=LEASE, now=T0)  # head of line waits
    assert 1 == store.make_due(sink="dash", now=T0)

    (again,) = store.claim("dash", limit=2, lease_seconds=LEASE, now=T0)
    assert (first.id, 1) == (again.id, again.attempts)  # the failed attempt still counts
    assert second.id not in [
        r.id for r in store.claim("dash", limit=5, lease_seconds=LEASE, now=T0)
    ]

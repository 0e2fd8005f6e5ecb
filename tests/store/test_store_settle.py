"""Recording many deliveries' answers at once: one transaction, all or none, claims dropped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.store.conftest import Backend
from tests.store.factories import T0, make_event

from deploy_fetcher.errors import StoreError
from deploy_fetcher.store import Settlement, StateStore

LEASE = 60.0


def _claimed(store: StateStore, count: int) -> list[int]:
    """Queue ``count`` events a minute apart and claim them all; their row ids, oldest first."""
    store.commit_page(
        "gh/octo/api", None, [("dash", make_event(f"run-{m}", minute=m)) for m in range(count)]
    )
    rows = store.claim("dash", limit=count, lease_seconds=LEASE, now=T0)
    return [row.id for row in rows]


def _states(store: StateStore) -> dict[str, tuple[str, int, str | None]]:
    return {
        row.event.deployment_id: (row.state, row.attempts, row.last_error)
        for row in store.list_rows(sink="dash")
    }


def test_a_batch_of_answers_is_recorded_row_by_row(store: StateStore) -> None:
    """Delivered, retried and dead-lettered rows of one batch each get their own answer."""
    first, second, third, fourth = _claimed(store, 4)
    retry_at = T0 + timedelta(minutes=10)

    changed = store.settle(
        [
            Settlement.delivered(first, now=T0),
            Settlement.retry(second, next_attempt_at=retry_at, error="HTTP 503"),
            Settlement.dead(third, reason="HTTP 422: run_number", now=T0),
            Settlement.delivered(fourth, now=T0),
        ]
    )

    assert 4 == changed
    assert {
        "run-0": ("delivered", 0, None),
        "run-1": ("pending", 1, "HTTP 503"),
        "run-2": ("dead", 1, "HTTP 422: run_number"),
        "run-3": ("delivered", 0, None),
    } == _states(store)


def test_settled_rows_lose_their_claim(store: StateStore) -> None:
    """A retried row is claimable again once due: the batch dropped its claim like a single mark."""
    [row_id] = _claimed(store, 1)
    store.settle([Settlement.retry(row_id, next_attempt_at=T0, error="timeout")])

    again = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)

    assert [(row_id, 1)] == [(row.id, row.attempts) for row in again]


def test_a_row_settled_elsewhere_is_left_alone_and_not_counted(store: StateStore) -> None:
    """A row already delivered (a lease ran out, another process sent it) keeps its first answer."""
    first, second = _claimed(store, 2)
    store.settle([Settlement.delivered(first, now=T0)])

    changed = store.settle(
        [
            Settlement.dead(first, reason="late answer", now=T0),
            Settlement.delivered(second, now=T0),
        ]
    )

    assert (1, ("delivered", 0, None)) == (changed, _states(store)["run-0"])


def _refuse_dead_letters(backend: Backend) -> None:
    """Make every update that dead-letters a row fail inside the store's transaction."""
    if backend.dialect == "sqlite":
        backend.execute(
            "CREATE TRIGGER refuse_dead BEFORE UPDATE ON outbox WHEN NEW.state = 'dead'"
            " BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        return
    backend.execute(
        "CREATE FUNCTION refuse_dead() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'boom'; END $$"
    )
    backend.execute(
        "CREATE TRIGGER refuse_dead BEFORE UPDATE ON outbox FOR EACH ROW"
        " WHEN (NEW.state = 'dead') EXECUTE FUNCTION refuse_dead()"
    )


def test_a_batch_is_recorded_all_or_none(store: StateStore, backend: Backend) -> None:
    """When the last answer of a batch cannot be written, the answers before it are not either."""
    first, second, third = _claimed(store, 3)
    _refuse_dead_letters(backend)

    with pytest.raises(StoreError, match="boom while recording the answers of 3 deliveries"):
        store.settle(
            [
                Settlement.delivered(first, now=T0),
                Settlement.retry(second, next_attempt_at=T0, error="HTTP 503"),
                Settlement.dead(third, reason="HTTP 422", now=T0),
            ]
        )

    assert {
        "run-0": ("pending", 0, None),
        "run-1": ("pending", 0, None),
        "run-2": ("pending", 0, None),
    } == _states(store)


def test_an_empty_batch_records_nothing(store: StateStore) -> None:
    """Settling no answers is no transaction and no change."""
    _claimed(store, 1)

    assert (0, {"run-0": ("pending", 0, None)}) == (store.settle([]), _states(store))

"""Leases and membership in PostgreSQL: one holder at a time, tokens that only rise, fenced commits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from tests.store.factories import FakeClock, make_event

from deploy_fetcher.errors import LeaseLost, StoreError
from deploy_fetcher.store import Fence
from deploy_fetcher.store.postgres import PostgresStore

TTL = 30.0


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_url, clock=FakeClock(), pool_size=4)
    yield store
    store.close()


def test_a_free_lease_is_taken_once_and_held_leases_are_not_taken(pg: PostgresStore) -> None:
    """The first member gets token 1; another member asking for the same key gets nothing."""
    board = pg.lease_board

    first = board.acquire("a", ["gh/octo/api", "sink:dash"], ttl=TTL)
    second = board.acquire("b", ["gh/octo/api", "gh/octo/web"], ttl=TTL)

    assert {"gh/octo/api": 1, "sink:dash": 1} == first
    assert {"gh/octo/web": 1} == second


def test_a_released_lease_goes_to_the_next_member_with_a_higher_token(pg: PostgresStore) -> None:
    """Releasing hands the key over at once; the new holder's token is the old one plus one."""
    board = pg.lease_board
    board.acquire("a", ["k"], ttl=TTL)

    board.release("a", ["k"])
    taken = board.acquire("b", ["k"], ttl=TTL)

    assert {"k": 2} == taken
    assert {} == board.renew("a", ttl=TTL)
    assert {"k": 2} == board.renew("b", ttl=TTL)


def test_an_expired_lease_is_not_renewed_but_can_be_taken_again(pg: PostgresStore) -> None:
    """Once expired a lease is gone even for its holder: only a new acquisition (new token) brings it back."""
    board = pg.lease_board
    board.acquire("a", ["k"], ttl=0.2)
    time.sleep(0.3)

    assert {} == board.renew("a", ttl=TTL)
    assert {"k": 2} == board.acquire("a", ["k"], ttl=TTL)


def test_heartbeats_list_live_members_and_a_silent_one_drops_out(pg: PostgresStore) -> None:
    """A member whose heartbeat stopped for longer than its ttl is no longer listed; each says its sources."""
    board = pg.lease_board
    board.heartbeat("b", host="h", version="1", ttl=0.2, sources=["gh"])

    assert {"a": frozenset(), "b": frozenset({"gh"})} == board.heartbeat(
        "a", host="h", version="1", ttl=TTL
    )
    time.sleep(0.3)
    assert {"a": frozenset({"gh", "gl"})} == board.heartbeat(
        "a", host="h", version="1", ttl=TTL, sources=["gl", "gh"]
    )
    assert [("a", True), ("b", False)] == sorted((m.id, m.alive) for m in board.members())


def test_leaving_releases_leases_claims_and_the_member_row(pg: PostgresStore) -> None:
    """A clean exit hands every lease over and frees the rows it had claimed."""
    board = pg.lease_board
    board.heartbeat(pg.claim_token, host="h", version="1", ttl=TTL)
    board.acquire(pg.claim_token, ["k", "sink:dash"], ttl=TTL)
    pg.commit_page("k", None, [("dash", make_event())])
    pg.claim("dash", limit=1, lease_seconds=600, now=FakeClock().now)

    board.leave(pg.claim_token)

    assert [] == board.members()
    assert {"k": 2, "sink:dash": 2} == board.acquire("b", ["k", "sink:dash"], ttl=TTL)
    assert 0 == board.claimed_elsewhere("dash", "b")


def test_claims_of_a_departed_member_are_freed_and_a_live_ones_kept(pg: PostgresStore) -> None:
    """Asked to free two members' claims, only the one whose heartbeat stopped loses them."""
    board = pg.lease_board
    pg.commit_page("k", None, [("dash", make_event(f"run-{n}", minute=n)) for n in range(2)])
    board.heartbeat("dead", host="h", version="1", ttl=0.2)
    board.heartbeat("live", host="h", version="1", ttl=TTL)
    far = "2999-01-01T00:00:00Z"
    with pg._db.transaction("test") as conn:
        conn.execute(
            "UPDATE deploy_fetcher.outbox SET claimed_by = CASE WHEN deployment_id = 'run-0'"
            " THEN 'dead' ELSE 'live' END, claim_until = %s",
            (far,),
        )
    time.sleep(0.3)

    departed = board.departed()
    freed = board.free_claims_of(["dead", "live"])

    assert ["dead"] == departed
    assert 1 == freed
    assert 1 == board.claimed_elsewhere("dash", "me")


# -- fencing ------------------------------------------------------------------------------------
def test_a_commit_under_the_live_lease_goes_through(pg: PostgresStore) -> None:
    """The holder's commit with its current token stores rows and cursor."""
    (token,) = pg.lease_board.acquire("a", ["k"], ttl=TTL).values()

    inserted = pg.commit_page("k", {"n": 1}, [("dash", make_event())], fence=Fence("k", "a", token))

    assert (1, {"n": 1}) == (inserted, pg.get_cursor("k"))


def test_a_commit_after_another_member_took_over_is_refused_whole(pg: PostgresStore) -> None:
    """A paused holder whose lease moved on commits nothing: no row, no cursor."""
    board = pg.lease_board
    (old,) = board.acquire("a", ["k"], ttl=0.2).values()
    time.sleep(0.3)
    board.acquire("b", ["k"], ttl=TTL)

    with pytest.raises(LeaseLost, match="another replica holds it now"):
        pg.commit_page("k", {"n": 1}, [("dash", make_event())], fence=Fence("k", "a", old))

    assert (None, 0) == (pg.get_cursor("k"), pg.pending_count("dash"))


def test_a_commit_after_the_lease_expired_is_refused_even_if_nobody_took_it(
    pg: PostgresStore,
) -> None:
    """An expired lease fences its holder out at once, before anyone else acquires it."""
    (token,) = pg.lease_board.acquire("a", ["k"], ttl=0.2).values()
    time.sleep(0.3)

    with pytest.raises(LeaseLost, match="expired"):
        pg.commit_page("k", {"n": 1}, [], fence=Fence("k", "a", token))

    assert pg.get_cursor("k") is None


def test_a_commit_under_an_old_token_of_the_same_member_is_refused(pg: PostgresStore) -> None:
    """A poll started before a lapse is fenced out even when its member holds the key again."""
    board = pg.lease_board
    (old,) = board.acquire("a", ["k"], ttl=0.2).values()
    time.sleep(0.3)
    (new,) = board.acquire("a", ["k"], ttl=TTL).values()

    with pytest.raises(LeaseLost):
        pg.commit_page("k", {"n": 1}, [], fence=Fence("k", "a", old))
    pg.commit_page("k", {"n": 2}, [], fence=Fence("k", "a", new))

    assert {"n": 2} == pg.get_cursor("k")


def test_a_takeover_during_a_commit_in_progress_gets_nothing_until_it_ends(
    pg: PostgresStore, pg_url: str
) -> None:
    """The fence check locks the lease row: an expired lease cannot be taken while its commit is open."""
    from deploy_fetcher.store.postgres._leases import check_fence

    board = pg.lease_board
    # The second store is opened first: opening it on a loaded machine took longer than the lease,
    # which then expired before the commit began instead of during it.
    other = PostgresStore(pg_url, pool_size=2)
    try:
        (token,) = board.acquire("a", ["k"], ttl=1.0).values()
        with pg._db.transaction("a commit held open") as conn:
            check_fence(conn, Fence("k", "a", token))
            time.sleep(1.1)  # the lease expires while the commit is still open
            during = other.lease_board.acquire("b", ["k"], ttl=TTL)
        after = other.lease_board.acquire("b", ["k"], ttl=TTL)
    finally:
        other.close()

    assert {} == during
    assert {"k": token + 1} == after


def test_renewals_and_acquisitions_of_the_same_leases_side_by_side_never_deadlock(
    pg_url: str,
) -> None:
    """One member renews its many leases while another keeps asking for them: no deadlock, no loss.

    The leases are created in reverse key order, so a renewal that locked rows as they lie on disk
    would take them in the opposite order to an acquisition walking its sorted keys.
    """
    keys = [f"gh/acme/svc-{n:02d}" for n in range(40)]
    holder, asker = (PostgresStore(pg_url, pool_size=2) for _ in range(2))
    errors: list[str] = []
    stop = threading.Event()

    def loop(step: Callable[[], object]) -> None:
        while not stop.is_set():
            try:
                step()
            except StoreError as exc:
                errors.append(str(exc))

    try:
        for key in reversed(keys):
            holder.lease_board.acquire("a", [key], ttl=TTL)
        threads = [
            threading.Thread(target=loop, args=(lambda: holder.lease_board.renew("a", ttl=TTL),)),
            threading.Thread(
                target=loop, args=(lambda: asker.lease_board.acquire("b", keys, ttl=TTL),)
            ),
        ]
        for thread in threads:
            thread.start()
        time.sleep(2.5)  # longer than PostgreSQL's deadlock_timeout (1 s): a cycle is found by then
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        held = holder.lease_board.renew("a", ttl=TTL)
    finally:
        holder.close()
        asker.close()

    assert [] == errors
    assert dict.fromkeys(keys, 1) == held


def test_a_released_lease_tells_the_next_holder_how_long_ago_its_target_was_polled(
    pg: PostgresStore,
) -> None:
    """Released with "polled 20 s ago", taken over: the next holder reads about 20 s; unsaid, nothing."""
    board = pg.lease_board
    board.acquire("a", ["k", "quiet"], ttl=TTL)

    board.release("a", ["k", "quiet"], polled_ago={"k": 20.0})
    board.acquire("b", ["k", "quiet"], ttl=TTL)
    ago = board.polled_ago(["k", "quiet"])

    assert ["k"] == list(ago)
    assert 20.0 <= ago["k"] < 30.0

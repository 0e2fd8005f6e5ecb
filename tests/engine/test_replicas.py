"""Replicas sharing the work: rendezvous hashing, and coordinators over a real PostgreSQL board."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from tests.support import wait_until

from deploy_fetcher.engine.health import Health
from deploy_fetcher.engine.replicas import Coordinator, owner_of
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.store.postgres import PostgresStore

KEYS = [f"gh/octo/repo-{n}" for n in range(300)]


# -- rendezvous hashing ----------------------------------------------------------------------------
def test_every_member_computes_the_same_owner_whatever_the_order() -> None:
    """The owner of a key depends on the set of members, not on how each replica lists them."""
    members = ["m-a", "m-b", "m-c"]

    assert [owner_of(k, members) for k in KEYS] == [owner_of(k, members[::-1]) for k in KEYS]


def test_keys_spread_over_members() -> None:
    """Three members each own a fair share of 300 keys (none gets less than a fifth)."""
    counts = Counter(owner_of(k, ["m-a", "m-b", "m-c"]) for k in KEYS)

    assert {"m-a", "m-b", "m-c"} == set(counts)
    assert min(counts.values()) > len(KEYS) / 5


def test_a_joining_member_takes_keys_only_for_itself() -> None:
    """When a member joins, the only keys that change owner are those that go to it."""
    before = {k: owner_of(k, ["m-a", "m-b", "m-c"]) for k in KEYS}
    after = {k: owner_of(k, ["m-a", "m-b", "m-c", "m-d"]) for k in KEYS}

    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved
    assert {"m-d"} == {after[k] for k in moved}


def test_a_leaving_member_hands_on_only_its_own_keys() -> None:
    """When a member leaves, keys of the others stay where they were."""
    before = {k: owner_of(k, ["m-a", "m-b", "m-c"]) for k in KEYS}
    after = {k: owner_of(k, ["m-a", "m-c"]) for k in KEYS}

    assert {"m-b"} == {before[k] for k in KEYS if before[k] != after[k]}


# -- coordinators ----------------------------------------------------------------------------------
class Replica:
    """One coordinator over its own store, driven tick by tick by the test."""

    def __init__(self, url: str, name: str, ttl: float = 30.0, *, listed: bool = True) -> None:
        self.store = PostgresStore(url, pool_size=2)
        self.metrics = Metrics()
        self.gained: list[str] = []
        self.released: list[str] = []
        self.acquired: list[str] = []
        self.polled_ago: dict[str, float | None] = {}
        self.coordinator = Coordinator(
            self.store.lease_board,
            member=name,
            ttl=ttl,
            metrics=self.metrics,
            health=Health(),
            on_gained=self.gained.extend,
            on_released=self.released.extend,
            on_acquired=self._acquired,
        )
        if listed:  # else its discovery of the source failed
            self.coordinator.set_targets("gh", KEYS[:30])
        self.coordinator.set_sinks(["dash"])

    def _acquired(self, keys: Mapping[str, float | None]) -> None:
        self.acquired.extend(keys)
        self.polled_ago.update(keys)

    def owned(self) -> set[str]:
        return {k for k in KEYS[:30] if self.coordinator.begin(k) is not None}

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def replicas(pg_url: str) -> Iterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for replica in made:
        replica.close()


def _settle(group: list[Replica], rounds: int = 3) -> None:
    for _ in range(rounds):
        for replica in group:
            replica.coordinator.tick()


def test_replicas_split_the_targets_without_overlap_and_leave_none_out(
    pg_url: str, replicas: list[Replica]
) -> None:
    """Three coordinators: every target is held by exactly one, and one of them delivers to the sink."""
    replicas += [Replica(pg_url, f"m-{n}") for n in range(3)]

    _settle(replicas)

    owned = [r.owned() for r in replicas]
    assert set(KEYS[:30]) == set().union(*owned)
    assert 30 == sum(len(o) for o in owned)
    assert all(owned)
    assert 1 == sum(r.coordinator.may_deliver("dash") for r in replicas)
    assert 3 == replicas[0].coordinator.status().members


def test_a_leaving_replica_hands_its_targets_and_sink_to_the_others(
    pg_url: str, replicas: list[Replica]
) -> None:
    """After a clean leave the remaining replicas hold everything within one round."""
    replicas += [Replica(pg_url, f"m-{n}") for n in range(3)]
    _settle(replicas)
    leaving = next(r for r in replicas if r.coordinator.may_deliver("dash"))
    rest = [r for r in replicas if r is not leaving]
    orphans = leaving.owned()
    for replica in rest:
        replica.acquired.clear()

    leaving.coordinator.stop(leave=True)
    _settle(rest, rounds=2)

    assert set(KEYS[:30]) == rest[0].owned() | rest[1].owned()
    assert not rest[0].owned() & rest[1].owned()
    assert 1 == sum(r.coordinator.may_deliver("dash") for r in rest)
    assert set() == leaving.owned()
    assert orphans == set(rest[0].acquired) | set(rest[1].acquired)


def test_a_joining_replica_takes_targets_only_once_the_holder_let_them_go(
    pg_url: str, replicas: list[Replica]
) -> None:
    """A newcomer gets its share: the old holder hands over at its next round, never both at once."""
    replicas += [Replica(pg_url, "m-0"), Replica(pg_url, "m-1")]
    _settle(replicas)
    newcomer = Replica(pg_url, "m-2")
    replicas.append(newcomer)

    newcomer.coordinator.tick()  # joins; its share is still held by the others
    assert set() == newcomer.owned()
    for replica in replicas[:2]:
        replica.coordinator.tick()  # they see it and let its share go
    newcomer.coordinator.tick()

    owned = [r.owned() for r in replicas]
    assert newcomer.owned()
    assert 30 == sum(len(o) for o in owned)
    assert set(KEYS[:30]) == set().union(*owned)
    assert sorted(newcomer.owned()) == sorted(
        k for k in KEYS[:30] if owner_of(k, ["m-0", "m-1", "m-2"]) == "m-2"
    )
    handed = sum(r.metrics.lease_handovers.labels("out")._value.get() for r in replicas[:2])
    assert len(newcomer.owned()) + int(newcomer.coordinator.may_deliver("dash")) <= handed


def test_a_replica_whose_discovery_failed_gets_none_of_that_sources_targets(
    pg_url: str, replicas: list[Replica]
) -> None:
    """One replica could not list the source: the two that could hold every target between them."""
    replicas += [
        Replica(pg_url, "m-0"),
        Replica(pg_url, "m-1"),
        Replica(pg_url, "m-2", listed=False),
    ]

    _settle(replicas)

    owned = [r.owned() for r in replicas]
    assert set(KEYS[:30]) == owned[0] | owned[1]
    assert 30 == len(owned[0]) + len(owned[1])
    assert set() == owned[2]
    assert 1 == sum(r.coordinator.may_deliver("dash") for r in replicas)


def test_during_a_rolling_upgrade_a_replica_that_reports_no_sources_leaves_no_target_unheld(
    pg_url: str, replicas: list[Replica]
) -> None:
    """A member of older code (no sources in its heartbeat) keeps its share; the new ones the rest."""
    old = PostgresStore(pg_url, pool_size=2)
    try:
        board = old.lease_board
        board.heartbeat("m-old", host="node-0", version="0.0.9", ttl=30)
        board.acquire("m-old", KEYS[:30], ttl=30)  # alone so far: everything is its own
        replicas += [Replica(pg_url, "m-0"), Replica(pg_url, "m-1")]
        everyone = ["m-0", "m-1", "m-old"]
        mine = [k for k in KEYS[:30] if owner_of(k, everyone) == "m-old"]
        for _ in range(3):
            # Older code: hash over every live member, whatever they listed; keep its own keys.
            board.heartbeat("m-old", host="node-0", version="0.0.9", ttl=30)
            held = board.renew("m-old", ttl=30)
            board.release("m-old", [k for k in held if k not in mine])
            _settle(replicas, rounds=1)
        owned = [r.owned() for r in replicas]
        held_by_old = set(board.renew("m-old", ttl=30))
    finally:
        old.close()

    assert set(mine) == held_by_old
    assert mine
    assert set(KEYS[:30]) - set(mine) == owned[0] | owned[1]
    assert 30 - len(mine) == len(owned[0]) + len(owned[1])


def test_a_joining_replica_polls_what_it_takes_an_interval_after_the_old_holder_did(
    pg_url: str, replicas: list[Replica]
) -> None:
    """The old holder says when it last polled each target it hands over; the newcomer hears it."""
    old = Replica(pg_url, "m-0")
    replicas.append(old)
    old.coordinator.tick()
    for key in KEYS[:30]:  # a round of polls
        assert old.coordinator.begin(key) is not None
        old.coordinator.end(key)
    newcomer = Replica(pg_url, "m-1")
    replicas.append(newcomer)

    newcomer.coordinator.tick()
    old.coordinator.tick()
    newcomer.coordinator.tick()

    assert newcomer.polled_ago
    assert all(ago is not None and 0 <= ago < 60 for ago in newcomer.polled_ago.values())


def test_a_poll_in_flight_keeps_its_target_until_it_ends(
    pg_url: str, replicas: list[Replica]
) -> None:
    """A target being polled is handed over only after the poll, so two replicas never poll it at once."""
    first = Replica(pg_url, "m-0")
    replicas.append(first)
    first.coordinator.tick()
    second = Replica(pg_url, "m-1")
    replicas.append(second)
    second.coordinator.tick()
    moving = next(k for k in KEYS[:30] if owner_of(k, ["m-0", "m-1"]) == "m-1")
    fence = first.coordinator.begin(moving)
    assert fence is not None

    first.coordinator.tick()
    second.coordinator.tick()
    assert second.coordinator.begin(moving) is None
    first.coordinator.end(moving)
    first.coordinator.tick()
    second.coordinator.tick()

    assert second.coordinator.begin(moving) is not None
    assert first.coordinator.begin(moving) is None


def test_a_dead_replicas_targets_are_taken_when_its_lease_expires_not_at_the_next_round(
    pg_url: str, replicas: list[Replica]
) -> None:
    """A survivor whose rounds are 10 s apart sees the member gone within a second of its expiry."""
    victim = Replica(pg_url, "m-victim", ttl=2.0)
    survivor = Replica(pg_url, "m-survivor", ttl=30.0)
    replicas += [victim, survivor]
    victim.coordinator.tick()  # alone: it takes every target
    survivor.coordinator.start()  # a round now, the next one 10 s later
    try:
        victim.coordinator.tick()  # its last heartbeat and renewal: it dies here
        died = time.monotonic()

        wait_until(lambda: len(survivor.owned()) == 30, timeout=15)
        taken_after = time.monotonic() - died
    finally:
        survivor.coordinator.stop()

    assert taken_after < 2.0 + 2.5, f"taken {taken_after:.1f}s after the last renewal (ttl 2s)"
    assert set(KEYS[:30]) == set(survivor.acquired)


def test_a_replica_that_cannot_renew_stops_polling_after_its_ttl(
    pg_url: str, replicas: list[Replica]
) -> None:
    """Without renewals (database gone, process paused) the local view drops every lease at ttl."""
    now = [0.0]
    replica = Replica(pg_url, "m-0", ttl=10.0)
    replica.coordinator._clock = lambda: now[0]
    replicas.append(replica)
    replica.coordinator.tick()
    assert replica.owned()

    now[0] = 9.9
    assert replica.owned()
    now[0] = 10.0
    assert set() == replica.owned()
    assert ["replica set: leases could not be renewed; polling and delivery stopped"] == (
        replica.coordinator.problems()
    )


def _claim_all_as(store: PostgresStore, owner: str) -> None:
    with store._db.transaction("test") as conn:
        conn.execute(
            "UPDATE deploy_fetcher.outbox SET claimed_by = %s, claim_until = '2999-01-01Z'",
            (owner,),
        )


def test_a_new_sink_holder_waits_for_rows_in_flight_elsewhere(
    pg_url: str, replicas: list[Replica]
) -> None:
    """A new sink holder sends nothing while another process still holds live claims on its rows."""
    from tests.store.factories import make_event

    replica = Replica(pg_url, "m-0")
    replicas.append(replica)
    replica.store.commit_page("k", None, [("dash", make_event())])
    _claim_all_as(replica.store, "sync-process")

    replica.coordinator.tick()
    waiting = replica.coordinator.may_deliver("dash")
    with replica.store._db.transaction("test") as conn:
        conn.execute("UPDATE deploy_fetcher.outbox SET claimed_by = NULL, claim_until = NULL")
    replica.coordinator.tick()

    assert (False, True) == (waiting, replica.coordinator.may_deliver("dash"))
    assert ["dash"] == replica.gained


def test_a_new_sink_holder_frees_the_claims_of_a_departed_replica_after_a_ttl(
    pg_url: str, replicas: list[Replica]
) -> None:
    """Rows claimed by a replica gone for a whole ttl are freed then, not after their claim's lease."""
    from tests.store.factories import make_event

    now = [0.0]
    replica = Replica(pg_url, "m-0", ttl=10.0)
    replica.coordinator._clock = lambda: now[0]
    replicas.append(replica)
    replica.store.commit_page("k", None, [("dash", make_event())])
    replica.store.lease_board.heartbeat("killed-holder", host="h", version="1", ttl=0.1)
    _claim_all_as(replica.store, "killed-holder")
    time.sleep(0.2)

    replica.coordinator.tick()
    first_seen_gone = replica.coordinator.may_deliver("dash")
    now[0] = 10.0
    replica.coordinator.tick()

    assert (False, True) == (first_seen_gone, replica.coordinator.may_deliver("dash"))
    assert 0 == replica.store.lease_board.claimed_elsewhere("dash", "m-0")


def test_after_a_database_outage_a_member_that_comes_back_keeps_its_claims(
    pg_url: str, replicas: list[Replica]
) -> None:
    """Every membership expires in an outage; the first member back must not free the others' claims.

    Those members are alive, and one may have sent a row it could not yet mark delivered: freed,
    that row would be sent a second time.
    """
    from tests.store.factories import make_event

    from deploy_fetcher.errors import StoreError

    now = [0.0]
    replica = Replica(pg_url, "m-0", ttl=10.0)
    replica.coordinator._clock = lambda: now[0]
    replicas.append(replica)
    board = replica.store.lease_board
    replica.store.commit_page("k", None, [("dash", make_event())])
    board.heartbeat("m-1", host="h", version="1", ttl=0.1)
    _claim_all_as(replica.store, "m-1")
    time.sleep(0.2)  # m-1's membership expired, as everyone's does in an outage

    replica.coordinator.tick()  # m-0 back first: m-1 looks gone
    real_heartbeat = board.heartbeat

    def unreachable(*_args: object, **_kw: object) -> list[str]:
        raise StoreError("state database: connection refused")

    board.heartbeat = unreachable  # type: ignore[method-assign]
    now[0] = 5.0
    replica.coordinator.tick()  # a second outage: what m-0 saw before proves nothing now
    board.heartbeat = real_heartbeat  # type: ignore[method-assign]
    now[0] = 11.0
    replica.coordinator.tick()
    kept_after_reconnecting = board.claimed_elsewhere("dash", "m-0")
    board.heartbeat("m-1", host="h", version="1", ttl=30)  # m-1 is back within its ttl
    now[0] = 30.0
    replica.coordinator.tick()

    assert 1 == kept_after_reconnecting
    assert 1 == board.claimed_elsewhere("dash", "m-0")
    assert not replica.coordinator.may_deliver("dash")


def test_a_burst_of_discoveries_takes_its_targets_without_renewing_once_per_source(
    pg_url: str, replicas: list[Replica]
) -> None:
    """Thousands of sources reporting their targets one by one cost a few rounds, not one renewal each."""
    from deploy_fetcher.store.postgres import LeaseBoard

    replica = Replica(pg_url, "m-0")
    replicas.append(replica)
    renewals: list[int] = []
    board = replica.coordinator.board
    assert isinstance(board, LeaseBoard)
    real_renew = board.renew

    def counting_renew(member: str, *, ttl: float) -> dict[str, int]:
        renewals.append(1)
        return real_renew(member, ttl=ttl)

    board.renew = counting_renew  # type: ignore[method-assign]
    replica.coordinator.start()
    try:
        for n in range(200):  # as discovery does: each source lists its targets in its own job
            replica.coordinator.set_targets(f"src-{n}", [f"src-{n}/repo"])
            time.sleep(0.01)
        wait_until(lambda: replica.coordinator.begin("src-199/repo") is not None, timeout=20)
    finally:
        replica.coordinator.stop(leave=True)

    assert len(renewals) <= 3


def test_a_runtimes_delivery_workers_deliver_only_while_the_replica_holds_the_sink(
    pg_url: str,
) -> None:
    """Two runtimes on one database: only the sink's lease holder's worker may deliver, each in turn."""
    from tests.engine.builders import ListProvider, ProgrammedSink, make_config

    from deploy_fetcher.config import StateConfig
    from deploy_fetcher.engine import Runtime

    def runtime() -> Runtime:
        config = make_config(state=StateConfig(backend="postgres", url=pg_url, pool_size=2))
        return Runtime(
            config,
            provider_resolver=lambda _name: ListProvider,
            sink_resolver=lambda _type: lambda c, _ctx: ProgrammedSink(c),
            coordinate=True,
        )

    first, second = runtime(), runtime()
    first.coordinator.member, second.coordinator.member = "m-0", "m-1"
    try:
        closed = [first.workers["dash"].gate(), second.workers["dash"].gate()]
        first.coordinator.tick()
        second.coordinator.tick()
        holder = first if first.coordinator.may_deliver("dash") else second
        other = second if holder is first else first
        open_now = [holder.workers["dash"].gate(), other.workers["dash"].gate()]
        holder.coordinator.stop(leave=True)
        other.coordinator.tick()
        handed = [holder.workers["dash"].gate(), other.workers["dash"].gate()]
    finally:
        first.close()
        second.close()

    assert [False, False] == closed
    assert [True, False] == open_now
    assert [False, True] == handed


def test_a_shutdown_flush_leaves_a_sink_another_replica_holds_at_once(
    pg_url: str, tmp_path: Path
) -> None:
    """Stopping, a replica without the sink's lease does not wait out its grace for rows it may not send."""
    from tests.store.factories import make_event
    from tests.support import write_config

    from deploy_fetcher.daemon import Daemon
    from deploy_fetcher.plugins import load_config

    path = write_config(
        tmp_path / "fetcher.yaml",
        {
            "state": {"backend": "postgres", "url": pg_url, "pool_size": 2},
            "server": {"enabled": False},
            "sources": [
                {"name": "gh", "provider": "github", "token": "t", "repos": ["acme/api"]},
            ],
            "sinks": [
                {
                    "name": "dash",
                    "type": "deployment-dashboard",
                    "url": "http://127.0.0.1:9/",
                    "api_key": "k",
                }
            ],
        },
    )
    config = load_config(path)
    holder = Replica(pg_url, "m-holder")
    daemon = Daemon(config, grace=3600)
    try:
        holder.coordinator.tick()
        assert holder.coordinator.may_deliver("dash")
        daemon.runtime.store.commit_page("k", None, [("dash", make_event())])
        daemon.runtime.start_delivery()
        flush = threading.Thread(target=daemon._flush, args=(time.monotonic() + 3600,), daemon=True)
        flush.start()
        flush.join(timeout=20)
        waited = flush.is_alive()
        pending = daemon.runtime.store.pending_count("dash")
    finally:
        daemon.runtime.stop_delivery(5)
        daemon.runtime.close()
        holder.close()

    assert not waited
    assert 1 == pending

"""Three `fetcher run` replicas over one PostgreSQL database share the work and survive each other.

The replicas run against the GitHub emulator (nine repositories, one target each) and the dashboard
emulator; each replica has its own token, so the emulator's log says who polled what. The tests of
this module share one set of replicas and run in order, each starting from three settled replicas.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.postgres import PostgresCluster
from tests.replicas.cluster import INTERVAL, REPOS, TTL, Cluster, now
from tests.support import wait_until

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.model import parse_timestamp


@pytest.fixture(scope="module")
def cluster(
    postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    with postgres_cluster.database("replicas") as url:
        made = Cluster(tmp_path_factory.mktemp("replicas"), url)
        try:
            made.start()
            made.settle()
            yield made
        finally:
            made.stop()


def test_three_replicas_poll_each_target_once_and_deliver_everything(cluster: Cluster) -> None:
    """Every repository is polled by exactly one replica, its lease holder, and every event arrives once.

    Rendezvous hashing spreads nine targets over three members, though not always onto all three.
    """
    cluster.all_delivered()
    since = now()
    time.sleep(4 * INTERVAL)
    cluster.deploy_everywhere()
    cluster.all_delivered()

    polls = cluster.polls(since)
    assert dict.fromkeys(REPOS, 1) == {repo: len(by) for repo, by in polls.items()}
    pollers = {token for by in polls.values() for token in by}
    assert len(pollers) >= 2
    holders = cluster.holders()
    for repo, by in polls.items():
        (token,) = by
        assert token == cluster.token_of(cluster.replica_by_pid(holders[f"gh/{repo}"]))
    assert 0 == cluster.duplicates()
    assert [] == cluster.out_of_order()


def test_a_backlog_reaches_the_dashboard_in_happened_at_order(cluster: Cluster) -> None:
    """Rows queued while the dashboard refused arrive oldest first: one replica at a time sends them.

    The backlog is larger than a claim batch, so replicas sending side by side would interleave.
    """
    cluster.settle()
    cluster.all_delivered()
    before = len(cluster.rows())
    cluster.dashboard.inject(
        Fault(kind="status", status=503, match="^/api/deployments$", method="POST", count=10**6)
    )
    for _ in range(4):
        cluster.deploy_everywhere()
    backlog = 4 * len(REPOS) * 2
    try:
        wait_until(lambda: cluster.pending() >= backlog, timeout=30, interval=0.2)
    finally:
        cluster.dashboard.clear_faults()
    # A slow dashboard: a batch takes seconds to send, time enough for a second sender to start;
    # new rows committed meanwhile wake every replica's delivery worker.
    cluster.dashboard.inject(
        Fault(kind="delay", delay=0.05, match="^/api/deployments$", method="POST", count=backlog)
    )
    cluster.deploy_everywhere()
    cluster.all_delivered()

    arrived = [parse_timestamp(at) for _deployment, _status, at in cluster.rows()[before:]]
    assert backlog + len(REPOS) * 2 == len(arrived)
    assert sorted(arrived) == arrived
    assert 0 == cluster.duplicates()


def test_a_replica_frozen_past_its_lease_commits_nothing_when_it_wakes(cluster: Cluster) -> None:
    """SIGSTOP mid-poll for longer than the lease, then SIGCONT: its commit is fenced out."""
    cluster.settle()
    victim = next(n for n in cluster.running() if cluster.targets_of(n))
    repo = cluster.targets_of(victim)[0]
    cluster.deploy(repo)
    # The victim's next poll of that repository hangs in the emulator for a while…
    hang = Fault(kind="delay", delay=3.0, match=f"^/repos/{repo}/deployments$", count=1)
    cluster.github.inject(hang)
    wait_until(lambda: hang.count <= 0, timeout=4 * INTERVAL, interval=0.02)
    # …and the victim freezes while it waits for the answer.
    cluster.signal(victim, signal.SIGSTOP)
    frozen_at = now()
    try:
        wait_until(
            lambda: any(
                token != cluster.token_of(victim) for token in cluster.polls(frozen_at + 0.1)[repo]
            ),
            timeout=4 * TTL,
        )
        cluster.all_delivered()
    finally:
        cluster.signal(victim, signal.SIGCONT)
    wait_until(
        lambda: any(e.get("event") == "poll.lease_lost" for e in cluster.log_events(victim)),
        timeout=4 * TTL,
    )

    lost = [e for e in cluster.log_events(victim) if e.get("event") == "poll.lease_lost"]
    assert f"gh/{repo}" in {f"{e['source']}/{e['target']}" for e in lost}
    assert all("the page was not committed" in e["error"] for e in lost)
    assert 0 == cluster.duplicates()
    assert [] == cluster.out_of_order()
    cluster.settle()


def test_a_killed_replicas_targets_are_polled_again_within_two_lease_ttls(
    cluster: Cluster,
) -> None:
    """SIGKILL of a replica: the others poll its repositories within two TTLs; nothing lost."""
    cluster.settle()
    before = cluster.duplicates()
    victim = cluster.sink_holder() if cluster.targets_of(cluster.sink_holder()) else 0
    orphans = cluster.targets_of(victim)
    assert orphans
    cluster.replicas[victim].kill()
    killed_at = now()
    cluster.deploy_everywhere()

    def taken_over() -> dict[str, float]:
        firsts: dict[str, float] = {}
        for request in cluster.github.requests_to("^/repos/"):
            repo = "/".join(request.path.split("/")[2:4])
            token = request.headers.get("authorization", "").removeprefix("token ")
            if repo in orphans and request.at > killed_at and token != cluster.token_of(victim):
                firsts.setdefault(repo, request.at - killed_at)
        return firsts if set(firsts) == set(orphans) else {}

    delays = wait_until(taken_over, timeout=6 * TTL, interval=0.1)
    cluster.all_delivered()

    assert max(delays.values()) <= 2 * TTL, delays
    assert cluster.duplicates() - before <= 1
    assert [] == cluster.out_of_order()
    cluster.start(victim)
    cluster.settle()


def test_a_rolling_restart_loses_nothing(cluster: Cluster) -> None:
    """Each replica in turn stops (SIGTERM) and starts again while deployments keep coming."""
    cluster.settle()
    before = cluster.duplicates()
    for n in range(3):
        cluster.deploy_everywhere()
        assert 0 == cluster.replicas[n].terminate(timeout=30)
        cluster.deploy_everywhere()
        cluster.start(n)
        cluster.settle()
    cluster.all_delivered()

    assert 0 == cluster.duplicates() - before
    assert [] == cluster.out_of_order()


def test_the_database_stopped_for_20s_stops_work_and_replicas_recover_by_themselves(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """With the database down replicas commit and deliver nothing and are not ready; then they heal."""
    if postgres_cluster.base is None:
        pytest.skip("needs the PostgreSQL server binaries to stop and start a server")
    from tests.postgres import find_bin_dir

    bin_dir = find_bin_dir()
    assert bin_dir is not None
    own = PostgresCluster.create(bin_dir)
    made = Cluster(tmp_path, own.create_database())
    try:
        made.start()
        made.settle()
        made.all_delivered()

        own.stop()
        stopped_at = time.monotonic()
        made.deploy_everywhere()
        wait_until(lambda: all(made.readiness(n)[0] == 503 for n in range(3)), timeout=2 * TTL)
        time.sleep(max(0.0, stopped_at + TTL + 1 - time.monotonic()))
        rows_then = len(made.rows())
        time.sleep(max(0.0, stopped_at + 20 - time.monotonic()))
        rows_after = len(made.rows())
        problems = [made.readiness(n)[1]["problems"] for n in range(3)]
        own.start()
        made.settle(timeout=60)
        made.all_delivered()
    finally:
        made.stop()
        own.destroy()

    assert rows_then == rows_after
    assert all(any("state database" in p or "replica set" in p for p in ps) for ps in problems)
    assert 0 == made.duplicates()  # no replica crashed, no POST timed out: nothing twice
    assert [] == made.out_of_order()

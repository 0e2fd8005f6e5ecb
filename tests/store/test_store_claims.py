"""Claims of processes that died on this host are freed when the store is next opened."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from tests.store.conftest import TEMPORARY_OUTBOX, Backend
from tests.store.factories import T0, FakeClock, make_event

from deploy_fetcher.store import StateStore
from deploy_fetcher.store._claims import is_orphaned, new_token

LEASE = 3600.0


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a process that runs for the duration of the test."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait(timeout=30)


def _owner_like_ours(pid: int) -> str:
    host_and_namespace = new_token().rsplit("-", 2)[0]
    return f"{host_and_namespace}-{pid}-0badcafe"


def _claim_all_as(backend: Backend, owners: list[str]) -> None:
    """Mark row i as claimed by owners[i] with a lease far in the future."""
    for row_id, owner in enumerate(owners, start=1):
        backend.execute(
            "UPDATE outbox SET claimed_by = ?, claim_until = '2999-01-01T00:00:00.000000Z'"
            " WHERE id = ?",
            (owner, row_id),
        )


def test_a_token_names_this_host_and_process() -> None:
    """A claim owner id starts with the hostname and carries the pid, for operators to read."""
    token = new_token()

    assert token.startswith(socket.gethostname() + "-")
    assert str(os.getpid()) == token.rsplit("-", 2)[1]


def test_only_provably_dead_owners_are_orphaned(dead_pid: int, live_pid: int) -> None:
    """Dead pid or our own pid under another token: orphaned; alive, elsewhere or malformed: not."""
    own = new_token()

    verdicts = [
        is_orphaned(_owner_like_ours(dead_pid), own),
        is_orphaned(_owner_like_ours(os.getpid()), own),
        is_orphaned(own, own),
        is_orphaned(_owner_like_ours(live_pid), own),
        is_orphaned(f"elsewhere-1-{dead_pid}-0badcafe", own),
        is_orphaned("garbage", own),
    ]

    assert [True, True, False, False, False, False] == verdicts


@pytest.mark.not_applicable("dashboard", reason=TEMPORARY_OUTBOX)
def test_opening_frees_rows_claimed_by_dead_local_processes(
    store: StateStore, backend: Backend, clock: FakeClock, dead_pid: int, live_pid: int
) -> None:
    """After a crash, a restarted process gets the dead one's rows at once; a live one's stay held."""
    store.commit_page(
        "gh/octo/api", None, [("dash", make_event(f"run-{m}", minute=m)) for m in range(4)]
    )
    _claim_all_as(
        backend,
        [
            _owner_like_ours(dead_pid),
            _owner_like_ours(live_pid),
            f"other-host-1-{dead_pid}-0badcafe",
        ],
    )

    restarted = backend.open(clock)
    try:
        rows = restarted.claim("dash", limit=10, lease_seconds=LEASE, now=T0)
    finally:
        restarted.close()

    assert ["run-0", "run-3"] == [row.event.deployment_id for row in rows]


@pytest.mark.not_applicable(
    "dashboard", reason="each store has an outbox of its own: no other store sees its claims"
)
def test_a_second_store_in_the_same_process_keeps_the_first_ones_claims(
    store: StateStore, backend: Backend, clock: FakeClock
) -> None:
    """Stores opened by one process share its claim owner: opening another frees nothing."""
    store.commit_page("gh/octo/api", None, [("dash", make_event())])
    store.claim("dash", limit=1, lease_seconds=LEASE, now=T0)

    second = backend.open(clock)
    try:
        assert [] == second.claim("dash", limit=1, lease_seconds=LEASE, now=T0)
        assert store.claim_token == second.claim_token
    finally:
        second.close()

"""Several processes and threads sharing one state file never claim the same row twice."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from tests.store.conftest import Backend, PostgresBackend
from tests.store.factories import T0, FakeClock, make_event

from deploy_fetcher.store import SqliteStore, StateStore

WORKER = Path(__file__).with_name("claim_worker.py")
ROWS = 1500


def _fill(store: StateStore, count: int) -> None:
    for start in range(0, count, 100):
        page = [("dash", make_event(f"run-{n}", minute=n)) for n in range(start, start + 100)]
        store.commit_page("gh/octo/api", {"n": start}, page)


@pytest.mark.not_applicable(
    "dashboard", reason="its outbox belongs to the one process that opened it, deleted at close"
)
def test_processes_claiming_concurrently_claim_every_row_exactly_once(
    store: StateStore, backend: Backend, db_path: Path, tmp_path: Path
) -> None:
    """Three processes draining one outbox at once: each row is claimed once, by exactly one."""
    _fill(store, ROWS)
    start = tmp_path / "go"
    env = dict(os.environ)
    state = str(db_path)
    if isinstance(backend, PostgresBackend):
        env["CLAIM_WORKER_URL"], state = backend.url, "postgres"
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), state, str(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    start.touch()
    results = [worker.communicate(timeout=60) for worker in workers]

    assert [0, 0, 0] == [worker.returncode for worker in workers], [err for _, err in results]
    claims = [json.loads(out) for out, _ in results]
    counts = Counter(row_id for ids in claims for row_id in ids)
    expected_ids = {row.id for row in store.list_rows(limit=ROWS)}
    assert expected_ids == set(counts)
    assert {1} == set(counts.values())
    assert all(claims), "every worker should have won some claims"


def test_threads_sharing_one_store_claim_every_row_exactly_once(
    store: StateStore, clock: FakeClock
) -> None:
    """Threads of one process share the store object, each on its own connection."""
    _fill(store, 400)
    claimed: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def drain(mine: list[int]) -> None:
        try:
            for _ in range(400):
                rows = store.claim("dash", limit=3, lease_seconds=600, now=T0)
                if not rows:
                    return
                mine += [row.id for row in rows]
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(mine,)) for mine in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    counts = Counter(row_id for ids in claimed for row_id in ids)
    assert [] == errors
    assert 400 == len(counts)
    assert {1} == set(counts.values())


def _claim_in_child(store: SqliteStore, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    rows = store.claim("dash", limit=1, lease_seconds=600, now=T0)
    results.put((store.claim_token, [row.id for row in rows]))


def test_a_forked_child_uses_its_own_connection_and_claim_token(
    sqlite_store: SqliteStore,
) -> None:
    """A store inherited through fork() keeps working in the child, claiming under its own name."""
    store = sqlite_store
    _fill(store, 100)
    store.claim("dash", limit=1, lease_seconds=600, now=T0)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_claim_in_child, args=(store, results))
    child.start()
    token, ids = results.get(timeout=30)
    child.join(timeout=30)

    assert 0 == child.exitcode
    assert 1 == len(ids)
    assert store.claim_token != token
    assert 98 == len(store.claim("dash", limit=200, lease_seconds=600, now=T0))


def test_a_finished_threads_connection_is_closed(sqlite_store: SqliteStore) -> None:
    """Connections do not pile up when short-lived threads use the store: only the opener's is left."""
    store = sqlite_store

    def read() -> None:
        store.get_cursor("gh/octo/api")

    for _ in range(20):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join(timeout=30)
    gc.collect()

    assert 1 == len(store._db._all)

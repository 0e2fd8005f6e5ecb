"""A separate process for test_store_concurrency: claim every row it can, print the ids as JSON.

Usage: ``python claim_worker.py STATE START_FLAG``, STATE being a SQLite file or, when it is
``postgres``, the database named by ``CLAIM_WORKER_URL``. The worker opens the store, waits for the
start flag so all workers begin together, then claims in small batches until nothing is left.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from deploy_fetcher.store import SqliteStore, StateStore

#: Every loop here ends by this deadline, whatever happens.
DEADLINE_SECONDS = 30.0


def main() -> None:
    """Claim until the outbox has nothing left to claim."""
    state, start = sys.argv[1], Path(sys.argv[2])
    deadline = time.monotonic() + DEADLINE_SECONDS
    store: StateStore
    if state == "postgres":
        from deploy_fetcher.store.postgres import PostgresStore

        store = PostgresStore(os.environ["CLAIM_WORKER_URL"], pool_size=2)
    else:
        store = SqliteStore(Path(state))
    while not start.exists():
        if time.monotonic() > deadline:
            sys.exit("never told to start")
        time.sleep(0.002)
    claimed: list[int] = []
    while time.monotonic() < deadline:
        rows = store.claim("dash", limit=5, lease_seconds=600, now=datetime.now(UTC))
        if not rows:
            break
        claimed += [row.id for row in rows]
        time.sleep(0.001)  # a delivery worker sends between claims, leaving the lock to others
    store.close()
    print(json.dumps(claimed))


if __name__ == "__main__":
    main()

"""A separate process for test_store_concurrency: claim every row it can, print the ids as JSON.

Usage: ``python claim_worker.py STATE_FILE START_FLAG``. The worker opens the store, waits for the
start flag so all workers begin together, then claims in small batches until nothing is left.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from deploy_fetcher.store import SqliteStore

#: Every loop here ends by this deadline, whatever happens.
DEADLINE_SECONDS = 30.0


def main() -> None:
    """Claim until the outbox has nothing left to claim."""
    path, start = Path(sys.argv[1]), Path(sys.argv[2])
    deadline = time.monotonic() + DEADLINE_SECONDS
    store = SqliteStore(path)
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

"""How fast the SQLite state store queues and drains events, and whether its memory stays flat.

Usage: ``python benchmarks/store_bench.py [--events 100000] [--page 100] [--batch 100] [--dir DIR]``
or ``python benchmarks/store_bench.py --postgres URL [--events N]`` (an empty database).

Commits ``--events`` events in pages of ``--page`` (each page with its cursor, as the poller does),
then claims and marks delivered in batches of ``--batch`` (as a delivery worker does), then prunes
everything. Prints events/s per phase, the file size, and the peak RSS after each phase; a flat
peak RSS across phases shows nothing loads the outbox into memory. Each event is a deployment of
its own, so the lifecycle ledger's size after the commits is its cost per that many deployments
(one sink): its table and its prune index, from SQLite's ``dbstat``. With ``--postgres``, only the
commits run, into ``PostgresStore``, and the ledger's size is PostgreSQL's (table, key and index).
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from deploy_fetcher.model import DeployEvent, Status
from deploy_fetcher.store import SqliteStore

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def event(n: int) -> DeployEvent:
    """A realistic event: every contract field set, a few metadata keys."""
    return DeployEvent(
        deployment_id=f"octo/api/actions/runs/{1_000_000 + n}",
        service="api",
        environment=("dev", "staging", "prod")[n % 3],
        status=Status.SUCCESS if n % 2 else Status.IN_PROGRESS,
        happened_at=T0 + timedelta(seconds=n),
        version=f"v1.{n // 100}.{n % 100}",
        run_url=f"https://github.com/octo/api/actions/runs/{1_000_000 + n}",
        run_number=n,
        actor="octocat",
        ref="refs/heads/main",
        sha=f"{n:040x}",
        provider="github",
        source="gh",
        metadata={"repo": "octo/api", "repo_name": "api", "branch": "main", "workflow": "deploy"},
    )


def report(phase: str, count: int, seconds: float, path: Path) -> None:
    """One line per phase."""
    rate = count / seconds if seconds else float("inf")
    size = path.stat().st_size / (1024 * 1024)
    print(
        f"{phase:<10} {count:>8} rows in {seconds:6.2f}s = {rate:>9,.0f} rows/s"
        f"   file {size:6.1f} MiB   peak RSS {peak_rss_mib():6.1f} MiB"
    )


def ledger_report(path: Path) -> None:
    """The lifecycle ledger's entries and bytes (table and index pages), per deployment."""
    conn = sqlite3.connect(path)
    try:
        entries = conn.execute("SELECT count(*) FROM lifecycle").fetchone()[0]
        sizes = dict(
            conn.execute(
                "SELECT name, sum(pgsize) FROM dbstat"
                " WHERE name IN ('lifecycle', 'lifecycle_age', 'outbox') GROUP BY name"
            ).fetchall()
        )
    finally:
        conn.close()
    ledger = sizes.get("lifecycle", 0) + sizes.get("lifecycle_age", 0)
    per = ledger / entries if entries else 0.0
    print(
        f"ledger     {entries:>8} entries: table {sizes.get('lifecycle', 0) / 2**20:5.1f} MiB"
        f" + index {sizes.get('lifecycle_age', 0) / 2**20:5.1f} MiB = {per:5.0f} bytes each"
        f"   (outbox table {sizes.get('outbox', 0) / 2**20:5.1f} MiB)"
    )


def run_postgres(url: str, events: int, page: int) -> None:
    """Commit ``events`` events (as many deployments) into PostgreSQL; the ledger's size."""
    import psycopg

    from deploy_fetcher.store.postgres import PostgresStore

    store = PostgresStore(url, clock=lambda: T0)
    try:
        started = time.perf_counter()
        for first in range(0, events, page):
            rows = [("dash", event(n)) for n in range(first, min(first + page, events))]
            store.commit_page("gh/octo/api", {"since": first}, rows)
        spent = time.perf_counter() - started
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT count(*), pg_table_size('deploy_fetcher.lifecycle'),"
            " pg_indexes_size('deploy_fetcher.lifecycle'),"
            " pg_total_relation_size('deploy_fetcher.outbox') FROM deploy_fetcher.lifecycle"
        ).fetchone()
    entries, table, indexes, outbox = found or (0, 0, 0, 0)
    print(f"commit   {events:>8} rows in {spent:6.2f}s = {events / spent:>9,.0f} rows/s")
    print(
        f"ledger   {entries:>8} entries: table {table / 2**20:5.1f} MiB + indexes"
        f" {indexes / 2**20:5.1f} MiB = {(table + indexes) / max(entries, 1):5.0f} bytes each"
        f"   (outbox with indexes {outbox / 2**20:5.1f} MiB)"
    )


def run(directory: Path, events: int, page: int, batch: int) -> None:
    """Queue, drain and prune ``events`` events in a fresh state file under ``directory``."""
    path = directory / "bench.db"
    store = SqliteStore(path, clock=lambda: T0)
    print(f"start      peak RSS {peak_rss_mib():6.1f} MiB")
    try:
        spent = 0.0
        for first in range(0, events, page):
            # Building events is the adapters' cost, not the store's: only commit_page is timed.
            rows = [("dash", event(n)) for n in range(first, min(first + page, events))]
            started = time.perf_counter()
            store.commit_page("gh/octo/api", {"since": first}, rows)
            spent += time.perf_counter() - started
        report("commit", events, spent, path)
        ledger_report(path)

        started = time.perf_counter()
        drained = 0
        now = T0 + timedelta(days=1)
        while claimed := store.claim("dash", limit=batch, lease_seconds=300, now=now):
            for row in claimed:
                store.mark_delivered(row.id, now=now)
            drained += len(claimed)
        report("deliver", drained, time.perf_counter() - started, path)

        started = time.perf_counter()
        pruned = store.prune_delivered(older_than=now + timedelta(seconds=1))
        report("prune", pruned, time.perf_counter() - started, path)
        ledger_report(path)
    finally:
        store.close()


def main() -> None:
    """Parse arguments and run in a temporary directory unless one is given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None, help="where to create the state file")
    parser.add_argument("--postgres", default=None, help="an empty PostgreSQL database's URL")
    args = parser.parse_args()
    if args.postgres is not None:
        run_postgres(args.postgres, args.events, args.page)
        return
    if args.dir is not None:
        run(args.dir, args.events, args.page, args.batch)
        return
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        run(Path(tmp), args.events, args.page, args.batch)


if __name__ == "__main__":
    main()

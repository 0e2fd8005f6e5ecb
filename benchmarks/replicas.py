"""Several replicas: N sources on 1 and on 3 `fetcher run` replicas sharing one PostgreSQL state.

For each set-up (one replica, then three, each on a fresh database and fresh emulators) the sources
are split over the three CI emulators as in ``scale.py``; after the warm-up (every source polled once,
its history delivered) one measured window of ``--window`` seconds gives, per replica: polls, CPU
share, RSS; and for all: requests to the CI emulators per minute (three replicas must cost what one
does: no target polled twice). Then, with three replicas, the one holding the most targets is
killed (SIGKILL) and the time until every one of its targets has been polled by another is taken
from the survivors' ``fetcher_last_success_timestamp_seconds``. Last, in-process: events/s through
the PostgreSQL outbox (commit pages of 100, then claim and mark delivered in batches of 50, as the
poller and a delivery worker do), beside the SQLite file for comparison.

The database is a throwaway PostgreSQL cluster started for the run (the server binaries the tests
use), or the server named by ``FETCHER_TEST_POSTGRES_URL``.

    .venv/bin/python benchmarks/replicas.py                  # 3 000 sources, 60 s interval
    .venv/bin/python benchmarks/replicas.py --sources 300 --interval 20 --window 40   # a quick look
    .venv/bin/python benchmarks/replicas.py --setups 3 --no-outbox   # three replicas and the kill only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import scale  # noqa: E402
from store_bench import event  # noqa: E402
from tests.postgres import ENV_URL, PostgresCluster, _wait_ready, find_bin_dir  # noqa: E402

from deploy_fetcher.store import SqliteStore, StateStore  # noqa: E402
from deploy_fetcher.store.postgres import PostgresStore  # noqa: E402

TTL = 15.0


def start_replica(
    workdir: Path, name: str, worlds: scale.Worlds, url: str, interval: float
) -> scale.Daemon:
    port = scale._free_port()  # noqa: SLF001
    config = workdir / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"backend": "postgres", "url": "${STATE_URL}", "lease_ttl": f"{TTL:g}s"},
                "server": {"port": port},
                "log": {"level": "info", "format": "json"},
                "defaults": {"interval": f"{interval:g}s", "lookback": "1d"},
                "sinks": [
                    {
                        "name": "dashboard",
                        "type": "deployment-dashboard",
                        "url": worlds.dashboard.url(),
                        "api_key": scale.API_KEY,
                    }
                ],
                "sources": worlds.sources,
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy_fetcher.cli", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            env={**os.environ, "STATE_URL": url},
        )
    daemon = scale.Daemon(proc, port, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"replica {name} exited: {log.read_text()[-2000:]}")
        try:
            daemon.metrics()
        except OSError:
            time.sleep(0.5)
        else:
            return daemon
    raise SystemExit(f"replica {name} did not come up within 180 s")


_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def series(daemon: scale.Daemon, name: str) -> dict[str, float]:
    """One metric's samples by target key (or sink, or source), summed over other labels.

    Parsing the whole exposition of thousands of sources with prometheus_client takes seconds of
    this process's GIL, which the emulators serving the replicas share; a regex over the raw text
    takes milliseconds.
    """
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for metric, labels, number in _SAMPLE.findall(text):
        if metric != name:
            continue
        found = dict(_LABEL.findall(labels))
        source, target = found.get("source", found.get("sink", "")), found.get("target")
        key = source if target in {None, "", source} else f"{source}/{target}"
        out[key] = out.get(key, 0.0) + float(number)
    return out


def gauge(daemon: scale.Daemon, name: str) -> float:
    """A metric without labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/metrics", timeout=30) as r:
        text = r.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


#: Source names start with their provider's prefix (see ``scale.py``).
_PROVIDERS = {"gh": "github", "gl": "gitlab", "ado": "azure-devops"}


def outcomes(daemon: scale.Daemon) -> dict[tuple[str, str], float]:
    """Polls so far by provider and outcome (``fetcher_poll_cycles_total``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out: dict[tuple[str, str], float] = {}
    for metric, labels, number in _SAMPLE.findall(text):
        if metric != "fetcher_poll_cycles_total":
            continue
        found = dict(_LABEL.findall(labels))
        provider = _PROVIDERS.get(found.get("source", "").split("-", 1)[0], "other")
        key = (provider, found.get("outcome", ""))
        out[key] = out.get(key, 0.0) + float(number)
    return out


def by_provider(
    worlds: scale.Worlds,
    logs: dict[str, int],
    daemons: list[scale.Daemon],
    before: list[dict[tuple[str, str], float]],
    minutes: float,
) -> dict[str, Any]:
    """Per provider over the window: requests (304s and rate-limited among them) and polls.

    Polls are counted per replica and per outcome, so a poll that ends without a request (a
    credential backing off, a cache answering) shows beside the requests it did not make.
    """
    after = [outcomes(d) for d in daemons]
    out: dict[str, Any] = {}
    for provider, emulator in worlds.ci.items():
        figures = emulator.figures(logs[provider], emulator.log_length(), minutes).values()
        polls: dict[str, float] = {}
        per_replica = []
        for done, now in zip(before, after, strict=True):
            mine = 0.0
            for (name, outcome), count in now.items():
                if name == provider:
                    polls[outcome] = polls.get(outcome, 0.0) + count - done.get((name, outcome), 0)
                    mine += count - done.get((name, outcome), 0)
            per_replica.append(round(mine / minutes))
        requests = sum(f["requests"] for f in figures)
        total = sum(polls.values())
        out[provider] = {
            "requests_per_minute": round(requests / minutes),
            "not_modified_per_minute": round(sum(f["not_modified"] for f in figures) / minutes),
            "rate_limited_per_minute": round(sum(f["rate_limited"] for f in figures) / minutes),
            "polls_per_minute": round(total / minutes),
            "polls_per_minute_per_replica": per_replica,
            "polls_per_minute_by_outcome": {
                k: round(v / minutes) for k, v in sorted(polls.items())
            },
            "requests_per_poll": round(requests / total, 2) if total else None,
        }
    return out


def _entries(daemon: scale.Daemon, since: float) -> Iterator[dict[str, Any]]:
    """The JSON log lines of ``daemon`` written after ``since`` (Unix time), each with its ``at``."""
    for line in daemon.log.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
            at = datetime.fromisoformat(str(entry["timestamp"])).timestamp()
        except (ValueError, KeyError):
            continue
        if at >= since:
            entry["at"] = at
            yield entry


def log_events(daemon: scale.Daemon, since: float, names: set[str]) -> list[dict[str, Any]]:
    """The log lines named in ``names`` written after ``since``."""
    return [entry for entry in _entries(daemon, since) if entry.get("event") in names]


def complaints(daemon: scale.Daemon, since: float) -> dict[str, int]:
    """Warning and error log lines written after ``since``, by event."""
    counts: Counter[str] = Counter(
        str(entry.get("event", "?"))
        for entry in _entries(daemon, since)
        if entry.get("level") in {"warning", "error"}
    )
    return dict(sorted(counts.items()))


def polled_sources(daemons: list[scale.Daemon]) -> set[str]:
    """Target keys polled at least once (one target per source here)."""
    out: set[str] = set()
    for daemon in daemons:
        out |= {k for k, v in series(daemon, "fetcher_poll_cycles_total").items() if v > 0}
    return out


def polls(daemon: scale.Daemon) -> float:
    return sum(series(daemon, "fetcher_poll_cycles_total").values())


def depth(daemon: scale.Daemon) -> float:
    return series(daemon, "fetcher_outbox_depth").get("dashboard", 1.0)


def last_success(daemon: scale.Daemon) -> dict[str, float]:
    return series(daemon, "fetcher_last_success_timestamp_seconds")


def setup(
    count: int, sources: int, *, interval: float, window: float, url: str, workdir: Path
) -> dict[str, Any]:
    mix = scale.parse_mix("github=1,gitlab=1,azure-devops=1")
    worlds = scale.build_worlds(scale.split_sources(sources, mix), seed=1)
    daemons = [start_replica(workdir, f"r{n}", worlds, url, interval) for n in range(count)]
    result: dict[str, Any] = {"replicas": count}
    try:
        started = time.monotonic()
        while len(polled_sources(daemons)) < sources or any(depth(d) > 0 for d in daemons):
            if time.monotonic() - started > 900:
                raise SystemExit("warm-up took longer than 15 minutes")
            time.sleep(5)
        # The replicas start one after the other: wait until they agree on the membership and
        # hold every target, then one interval more, so the window sees no handover and every
        # holder has polled its targets once (its conditional-request caches are warm).
        while sum(gauge(d, "fetcher_owned_targets") for d in daemons) != sources or any(
            gauge(d, "fetcher_replicas") != count for d in daemons
        ):
            if time.monotonic() - started > 900:
                raise SystemExit("the replicas did not settle within 15 minutes")
            time.sleep(2)
        time.sleep(interval + 10)
        result["warm_up_s"] = round(time.monotonic() - started)
        before = [(d.cpu_seconds(), polls(d)) for d in daemons]
        outcomes_before = [outcomes(d) for d in daemons]
        logs = {name: e.log_length() for name, e in worlds.ci.items()}
        load = os.getloadavg()[0]
        wall = time.time()
        t0 = time.monotonic()
        time.sleep(window)
        seconds = time.monotonic() - t0
        requests = sum(e.log_length() for e in worlds.ci.values()) - sum(logs.values())
        result["load_average"] = [round(load, 1), round(os.getloadavg()[0], 1)]
        result["by_provider"] = by_provider(worlds, logs, daemons, outcomes_before, seconds / 60)
        result["window_s"] = round(seconds)
        result["ci_requests_per_minute"] = round(requests * 60 / seconds)
        result["per_replica"] = [
            {
                "polls_per_minute": round((polls(d) - done) * 60 / seconds),
                "cpu_share_of_one_core": round((d.cpu_seconds() - cpu) / seconds, 3),
                "rss_mib": round(d.status("VmRSS") / 1024, 1),
                "peak_rss_mib": round(d.status("VmHWM") / 1024, 1),
                "warnings_in_window": complaints(d, wall),
            }
            for d, (cpu, done) in zip(daemons, before, strict=True)
        ]
        if count > 1:
            result["failover"] = failover(daemons, url)
    finally:
        for daemon in daemons:
            if daemon.proc.poll() is None:
                daemon.proc.terminate()
                daemon.proc.wait(60)
        worlds.stop()
    return result


def failover(daemons: list[scale.Daemon], url: str) -> dict[str, Any]:
    """Kill the replica holding the most targets; time until the others polled all of them."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT key, holder FROM deploy_fetcher.leases WHERE expires_at > clock_timestamp()"
            " AND key NOT LIKE 'sink:%'"
        ).fetchall()
    by_pid: dict[int, list[str]] = {}
    for key, holder in rows:
        by_pid.setdefault(int(str(holder).rsplit("-", 2)[1]), []).append(str(key))
    victim = max(daemons, key=lambda d: len(by_pid.get(d.proc.pid, [])))
    orphans = set(by_pid.get(victim.proc.pid, []))
    survivors = [d for d in daemons if d is not victim]
    victim.proc.kill()
    victim.proc.wait(30)
    killed = time.time()
    taken: dict[str, float] = {}
    while set(taken) != orphans and time.time() - killed < 600:
        for survivor in survivors:
            for key, at in last_success(survivor).items():
                if key in orphans and at > killed:
                    taken.setdefault(key, time.time() - killed)
        time.sleep(2)
    delays = sorted(taken.values())

    def quantile(q: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(q * len(delays)))], 1) if delays else None

    by_provider: dict[str, list[float]] = {}
    for key, delay in taken.items():
        by_provider.setdefault(_PROVIDERS.get(key.split("-", 1)[0], "other"), []).append(delay)
    # When the survivors saw the victim gone and took its leases (their log's own times).
    acquired = [
        {
            "after_s": round(entry["at"] - killed, 1),
            "count": entry.get("count"),
            "taken_over": entry.get("taken_over"),
        }
        for survivor in survivors
        for entry in log_events(survivor, killed, {"replicas.acquired"})
    ]
    return {
        "targets_of_the_killed_replica": len(orphans),
        "all_polled_again_after_s": round(delays[-1], 1) if len(delays) == len(orphans) else None,
        "polled_again": len(delays),
        "within_two_lease_ttls": sum(1 for d in delays if d <= 2 * TTL),
        "median_s": quantile(0.5),
        "p90_s": quantile(0.9),
        "p99_s": quantile(0.99),
        "max_s_by_provider": {k: round(max(v), 1) for k, v in sorted(by_provider.items())},
        "acquisitions": sorted(acquired, key=lambda a: a["after_s"]),
        "load_average": round(os.getloadavg()[0], 1),
        "survivors_warnings": [complaints(d, killed) for d in survivors],
        "lease_ttl_s": TTL,
    }


def outbox(store: StateStore, events: int) -> dict[str, float]:
    """Events/s committed in pages of 100, then claimed and delivered in batches of 50."""
    started = time.perf_counter()
    for start in range(0, events, 100):
        page = [("dashboard", event(n)) for n in range(start, min(events, start + 100))]
        store.commit_page("bench/target", {"n": start}, page)
    committed = time.perf_counter() - started
    started = time.perf_counter()
    delivered = 0
    now = datetime.now(UTC)
    while rows := store.claim("dashboard", limit=50, lease_seconds=600, now=now):
        for row in rows:
            store.mark_delivered(row.id, now=now)
        delivered += len(rows)
    drained = time.perf_counter() - started
    return {
        "commit_events_per_s": round(events / committed),
        "deliver_events_per_s": round(delivered / drained),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=120.0, help="seconds measured per set-up")
    parser.add_argument("--events", type=int, default=20_000, help="events for the outbox figures")
    parser.add_argument(
        "--setups",
        default="1,3",
        help="replica counts to measure, comma-separated (3: the failover)",
    )
    parser.add_argument("--no-outbox", action="store_true", help="leave out the outbox figures")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    given = os.environ.get(ENV_URL)
    cluster = PostgresCluster(admin_url=given) if given else None
    if cluster is None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit(f"no PostgreSQL: install the server binaries or set {ENV_URL}")
        cluster = PostgresCluster.create(bin_dir)
    _wait_ready(cluster.admin_url)
    result: dict[str, Any] = {
        "machine": scale.machine(),
        "sources": args.sources,
        "interval_s": args.interval,
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for count in (int(n) for n in args.setups.split(",")):
                with cluster.database(f"bench{count}") as url:
                    result[f"{count}_replica{'s' if count > 1 else ''}"] = setup(
                        count,
                        args.sources,
                        interval=args.interval,
                        window=args.window,
                        url=url,
                        workdir=Path(tmp),
                    )
                    print(json.dumps(result, indent=2), flush=True)
            if not args.no_outbox:
                with cluster.database("outbox") as url:
                    store = PostgresStore(url)
                    try:
                        result["postgres_outbox"] = outbox(store, args.events)
                    finally:
                        store.close()
                sqlite = SqliteStore(Path(tmp) / "outbox.db")
                try:
                    result["sqlite_outbox"] = outbox(sqlite, args.events)
                finally:
                    sqlite.close()
    finally:
        if not given:
            cluster.destroy()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Delivery lanes: POSTs per second to the dashboard with 1 and N lanes, fast and slow; order kept.

For each delay (the dashboard emulator answering at once on loopback, or after ``--delay`` seconds)
and each number of lanes, in a fresh process: the scripted provider queues events of many services
into a SQLite outbox, then one sink's delivery worker drains it to the Deployment Dashboard emulator
(a process of its own). Printed per run: POSTs per second, the CPU-seconds this process spent per POST
(the fetcher's side only; the emulator runs apart), and whether every service's events reached the
dashboard in ``happened_at`` order (the guarantee lanes keep). Also printed: the emulator's CPU per
POST (read from ``/proc``, Linux only; it shares the machine's cores with the fetcher, so the two
together bound what loopback can reach), how many answers each store transaction recorded (the lanes'
group commit), and the load average around the run.

    .venv/bin/python benchmarks/delivery_lanes.py                       # lanes 1 4 8 16, 0 and 20 ms
    .venv/bin/python benchmarks/delivery_lanes.py --lanes 1 8 --delays 0.02 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

API_KEY = "bench-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float | None:
    """CPU-seconds (user + system) another process used so far; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _dashboard(delay: float) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy_fetcher.emulators.dashboard",
            "--port",
            str(port),
            "--api-key",
            API_KEY,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/matrix", timeout=1)  # noqa: S310 - local URL
            break
        except OSError:
            time.sleep(0.05)
    if delay > 0:
        fault = {
            "kind": "delay",
            "delay": delay,
            "count": 10**9,
            "match": "^/api/deployments$",
            "method": "POST",
        }
        request = urllib.request.Request(  # noqa: S310 - local URL
            url + "/_emulator/faults",
            data=json.dumps(fault).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).read()  # noqa: S310
    return proc, url


def _config(tmp: str, events: int, services: int, lanes: int, url: str) -> Any:
    import yaml

    from deploy_fetcher.plugins import load_config

    path = Path(tmp) / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state": {"path": str(Path(tmp) / "state.db")},
                "server": {"enabled": False},
                "sources": [
                    {
                        "name": "bench",
                        "provider": "scripted",
                        "generate": {"count": events, "services": services},
                        "page_size": 500,
                    }
                ],
                "sinks": [
                    {
                        "name": "dashboard",
                        "type": "deployment-dashboard",
                        "url": url,
                        "api_key": API_KEY,
                        "lanes": lanes,
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    return load_config(path, environ={})


def _in_order(url: str) -> tuple[int, bool]:
    """Rows the dashboard holds, and whether each service's arrived in ``happened_at`` order."""
    with urllib.request.urlopen(url + "/api/deployments", timeout=60) as answer:  # noqa: S310
        rows = json.load(answer)["items"]
    last: dict[str, str] = {}
    ordered = True
    for row in sorted(rows, key=lambda r: r["id"]):
        if row["happened_at"] < last.get(row["service"], ""):
            ordered = False
        last[row["service"]] = row["happened_at"]
    return len(rows), ordered


def run_one(events: int, services: int, lanes: int, delay: float) -> dict[str, Any]:
    """One measurement in this process (each is run in a fresh subprocess)."""
    from deploy_fetcher._logging import configure_logging
    from deploy_fetcher.engine import Runtime

    configure_logging("warning", "json")
    proc, url = _dashboard(delay)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runtime = Runtime(_config(tmp, events, services, lanes, url))
            result = runtime.poller.run_target(runtime.providers["bench"], "bench")
            if result.outcome != "ok":
                raise SystemExit(f"the scripted poll failed: {result}")
            load_before = os.getloadavg()[0]
            emulator_cpu = _process_cpu(proc.pid)
            cpu, started = _cpu(), time.perf_counter()
            runtime.start_delivery()
            while runtime.store.pending_count("dashboard"):
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            cpu = _cpu() - cpu
            emulator_after = _process_cpu(proc.pid)
            load_after = os.getloadavg()[0]
            # Absent before the lanes' group commit: the script also measures older versions.
            commits = getattr(runtime.workers["dashboard"], "commits", None)
            runtime.stop_delivery(5)
            runtime.close()
        rows, ordered = _in_order(url)
    finally:
        proc.terminate()
        proc.wait(10)
    return {
        "delay_s": delay,
        "lanes": lanes,
        "events": events,
        "services": services,
        "posts_per_s": round(events / seconds, 1),
        "cpu_ms_per_post": round(1000 * cpu / events, 3),
        "emulator_cpu_ms_per_post": None
        if emulator_cpu is None or emulator_after is None
        else round(1000 * (emulator_after - emulator_cpu) / events, 3),
        "answers_per_transaction": None
        if commits is None
        else round(commits.items / max(commits.transactions, 1), 2),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "rows_at_dashboard": rows,
        "each_service_in_order": ordered,
    }


def main() -> None:
    """Run every (delay, lanes) in a fresh process; print a table and JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 0.02])
    parser.add_argument("--events", type=int, default=20_000, help="events at 0 ms")
    parser.add_argument(
        "--slow-events", type=int, default=2_000, help="events when the dashboard is delayed"
    )
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", nargs=4, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        events, services, lanes, delay = args.one
        print(json.dumps(run_one(int(events), int(services), int(lanes), delay)))
        return
    results = []
    for delay in args.delays:
        events = args.events if delay == 0 else args.slow_events
        for lanes in args.lanes:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(events),
                    str(args.services),
                    str(lanes),
                    str(delay),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(row)
            print(
                f"delay {delay * 1000:>4.0f} ms  lanes {lanes:>2}  {row['posts_per_s']:>8.1f} POST/s  "
                f"{row['cpu_ms_per_post']:>6.3f} ms CPU/POST "
                f"(emulator {row['emulator_cpu_ms_per_post']})  "
                f"{row['answers_per_transaction']} answers/commit  "
                f"rows {row['rows_at_dashboard']}  "
                f"in order per service: {row['each_service_in_order']}  "
                f"load {row['load_average'][0]:.1f}-{row['load_average'][1]:.1f}",
                file=sys.stderr,
                flush=True,
            )
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

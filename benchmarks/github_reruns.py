"""What seeing late re-runs costs in workflow-runs mode, counted by the emulator.

A re-run keeps its run's creation time, so the listing by ``created`` (reaching ``rerun_window``
back) never shows the re-run of an older run. The adapter also reads, per repository and cycle,
``GET …/actions/runs?status=in_progress`` and ``?status=waiting`` with ``If-None-Match``: a re-run
started days later is listed there while it runs or waits. This script measures, on the
benchmark's five repositories in workflow-runs mode:

* the first poll and 100 idle cycles (the two active lists answer ``304``: free);
* cycles while ordinary runs are in progress (the active lists change: charged);
* a re-run of a run created three days before (``rerun_window`` is one day): whether it is seen,
  and what the cycles that follow it cost;
* a re-run that starts and ends between two polls (the limit that remains: not seen).

Every request goes through PyGithub over real HTTP to the emulator on 127.0.0.1, which charges as
GitHub does (``304`` free). Run: ``python benchmarks/github_reruns.py`` (``--json`` for JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from github_requests import START, Run

from deploy_fetcher.emulators.github import GitHubEmulator, Scenario

REPO = "bench/svc-0"


def _active_lists(emulator: GitHubEmulator) -> dict[str, int]:
    """Requests to the repository run list filtered by status, and how many were charged."""
    active = [r for r in emulator.log if r.path.endswith("/actions/runs") and "status=" in r.query]
    return {"requests": len(active), "charged": sum(1 for r in active if r.status != 304)}


def _measure(run: Run, action: Any) -> dict[str, Any]:
    figures = run.measure(action)
    return {
        "charged": figures["charged"],
        "requests": figures["requests"],
        "not_modified": figures["not_modified"],
        "new_events": figures["new_events"],
        "active_lists": _active_lists(run.emulator),
    }


def measure() -> dict[str, Any]:
    emulator = GitHubEmulator(scenario=Scenario.benchmark(), start=START)
    emulator.start()
    try:
        run = Run(emulator, mode="workflow_runs", lookback="7d")
        old = min(emulator.repo(REPO).runs.values(), key=lambda r: r.created_at)
        results: dict[str, Any] = {"first_poll": _measure(run, run.cycle)}

        def idle() -> None:
            for _ in range(100):
                emulator.advance(60)
                run.cycle()

        results["idle_100_cycles"] = _measure(run, idle)
        emulator.advance(2 * 86400)  # the old run is now three days older than anything listed
        run.cycle()
        workflow = emulator.repo(REPO).workflows[old.workflow_id]
        busy = [emulator.add_run(REPO, workflow, at=emulator.now(), sha="b" * 40) for _ in range(3)]

        def running() -> None:
            for item in busy:
                emulator.set_run(REPO, item.id, status="in_progress")
            for _ in range(10):
                emulator.advance(60)
                run.cycle()
            for item in busy:
                emulator.set_run(REPO, item.id, status="completed", conclusion="success")
            emulator.advance(60)
            run.cycle()

        results["10_cycles_with_3_runs_in_progress"] = _measure(run, running)
        attempt = emulator.rerun(REPO, old.id)
        key = f"gh-run-{old.id}-{attempt}"

        def late_rerun() -> None:
            emulator.advance(10)
            emulator.set_run(REPO, old.id, status="in_progress")
            for _ in range(3):
                emulator.advance(60)
                run.cycle()
            emulator.set_run(REPO, old.id, status="completed", conclusion="success")
            emulator.advance(60)
            run.cycle()

        results["late_rerun_seen_running"] = _measure(run, late_rerun)
        results["late_rerun_seen_running"]["statuses"] = sorted(
            status for dep, status, _ in run.events if dep == key
        )
        attempt = emulator.rerun(REPO, old.id)
        key = f"gh-run-{old.id}-{attempt}"

        def unseen_rerun() -> None:
            emulator.set_run(REPO, old.id, status="in_progress")
            emulator.advance(30)
            emulator.set_run(REPO, old.id, status="completed", conclusion="success")
            emulator.advance(30)
            run.cycle()

        results["late_rerun_between_two_polls"] = _measure(run, unseen_rerun)
        results["late_rerun_between_two_polls"]["statuses"] = sorted(
            status for dep, status, _ in run.events if dep == key
        )
    finally:
        emulator.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    results = measure()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("GitHub workflow-runs mode — late re-runs (emulator, PyGithub over HTTP)")
        for name, row in results.items():
            extra = f"  statuses={row['statuses']}" if "statuses" in row else ""
            print(
                f"{name:36} charged={row['charged']:4}  requests={row['requests']:4}  "
                f"304={row['not_modified']:4}  events+={row['new_events']:4}  "
                f"active lists: {row['active_lists']['requests']} "
                f"({row['active_lists']['charged']} charged){extra}"
            )
    seen = results["late_rerun_seen_running"]["statuses"]
    # The idle cycles' run lists cost 50 once (their window widens); the active-run lists never.
    idle_active = results["idle_100_cycles"]["active_lists"]["charged"]
    return 0 if idle_active == 0 and "success" in seen else 1


if __name__ == "__main__":
    sys.exit(main())

"""Quota-charged GitHub requests of the adapter, counted by the emulator.

Shapes (the GitHub adapter issue's acceptance):

(a) the first poll of 5 repositories × 10 deploy workflows × 4 environments with 2 deployments per
    service and environment (400 deployments, 1 200 status events), and the same window read by
    ``fetcher sync`` (backfill);
(b) 100 idle cycles of those 5 repositories;
(c) one new Actions deployment with three statuses, (c1) all appearing between two cycles and
    (c2) one per cycle.

Every request goes through PyGithub over real HTTP to the emulator on 127.0.0.1, which counts what
it costs exactly as GitHub does: ``304 Not Modified`` answers are free, everything else is charged
(REST to ``core``, GraphQL to ``graphql``).

Run: ``python benchmarks/github_requests.py`` (add ``--json`` for machine-readable output).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.emulators.github import GitHubEmulator, Scenario
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import Cursor, ProviderContext
from deploy_fetcher.providers.github import GitHubConfig, GitHubProvider

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
REFERENCE_FIRST_BACKFILL = 230


def endpoint(path: str) -> str:
    """Group a path by what it asks for (``deployments``, ``statuses``, ``runs``, ``graphql`` …)."""
    parts = path.removeprefix("/api/v3").strip("/").split("/")
    if parts[0] in ("graphql", "api"):
        return "graphql"
    if parts[0] != "repos":
        return "/".join(parts[:1] + parts[2:3])
    rest = parts[3:]
    if rest[:2] == ["actions", "runs"]:
        return "actions/runs" if len(rest) <= 3 else f"actions/runs/{rest[3]}"
    if rest and rest[0] == "deployments":
        return "deployments/statuses" if rest[-1] == "statuses" else "deployments"
    return rest[0] if rest else "repo"


class Run:
    """A provider on an emulator, with stored cursors like the engine keeps them."""

    def __init__(self, emulator: GitHubEmulator, **config: Any) -> None:
        self.emulator = emulator
        source = {
            "name": "bench",
            "provider": "github",
            "token": "emulator-token",
            "base_url": emulator.url(),
            "repos": ["bench/*"],
        } | config
        context = ProviderContext(metrics=Metrics(), defaults=DefaultsConfig(), clock=emulator.now)
        self.provider = GitHubProvider(GitHubConfig.model_validate(source), context)
        self.targets = list(self.provider.targets())
        self.cursors: dict[str, Cursor] = {}
        self.events: set[tuple[str, str, str]] = set()

    def cycle(self) -> None:
        """Poll every repository once from its stored cursor."""
        for target in self.targets:
            for page in self.provider.poll(target, self.cursors.get(target)):
                self.events |= {e.dedup_key for e in page.events}
                if page.cursor is not None:
                    self.cursors[target] = page.cursor

    def measure(self, action: Any) -> dict[str, Any]:
        """Run ``action`` and return what it cost."""
        self.emulator.reset_log()
        before = len(self.events)
        action()
        charged = self.emulator.charged()
        return {
            "charged": len(charged),
            "requests": len(self.emulator.log),
            "not_modified": sum(1 for r in self.emulator.log if r.status == 304),
            "by_endpoint": dict(sorted(Counter(endpoint(c.path) for c in charged).items())),
            "new_events": len(self.events) - before,
        }


def scenario_a_b(**config: Any) -> dict[str, Any]:
    emulator = GitHubEmulator(scenario=Scenario.benchmark(), start=START)
    emulator.start()
    try:
        run = Run(emulator, **config)
        first = run.measure(run.cycle)

        def idle() -> None:
            for _ in range(100):
                run.cycle()
                emulator.advance(60)

        idle_cost = run.measure(idle)
        sync = Run(emulator, **config)
        since, until = START - timedelta(days=1), emulator.now()

        def backfill() -> None:
            for target in sync.targets:
                for page in sync.provider.backfill(target, since, until):
                    sync.events |= {e.dedup_key for e in page.events}

        sync_cost = sync.measure(backfill)
    finally:
        emulator.stop()
    return {"first_poll": first, "sync_backfill": sync_cost, "idle_100_cycles": idle_cost}


def scenario_c(*, one_per_cycle: bool) -> dict[str, Any]:
    emulator = GitHubEmulator(scenario=Scenario.benchmark(), start=START)
    emulator.start()
    try:
        run = Run(emulator)
        run.cycle()
        repo = "bench/svc-0"
        workflow = next(iter(emulator.repo(repo).workflows.values()))
        sha = "c" * 40

        def new_deployment() -> None:
            at = emulator.now()
            actions = emulator.add_run(repo, workflow, at=at, sha=sha, status="in_progress")
            deployment = emulator.add_deployment(repo, "prod", sha=sha, run=actions, at=at)
            for step, state in enumerate(("queued", "in_progress", "success")):
                emulator.add_status(repo, deployment.id, state, at=at + timedelta(seconds=step))
                if state == "success":
                    emulator.set_run(repo, actions.id, status="completed", conclusion="success")
                if one_per_cycle:
                    emulator.advance(60)
                    run.cycle()
            if not one_per_cycle:
                emulator.advance(60)
                run.cycle()

        return run.measure(new_deployment)
    finally:
        emulator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "default": scenario_a_b(),
        "rest_only": scenario_a_b(graphql=False),
        "rest_only_no_parents": scenario_a_b(graphql=False, parents=False),
        "c1_three_statuses_in_one_cycle": scenario_c(one_per_cycle=False),
        "c2_one_status_per_cycle": scenario_c(one_per_cycle=True),
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("GitHub adapter — quota-charged requests (emulator, PyGithub over HTTP)")
        print(f"reference fetcher, first backfill of shape (a): ~{REFERENCE_FIRST_BACKFILL}")
        for name, figures in results.items():
            rows = figures.items() if "first_poll" in figures else [("", figures)]
            for label, row in rows:
                title = f"{name} {label}".strip()
                print(
                    f"{title:45} charged={row['charged']:4}  requests={row['requests']:4}  "
                    f"304={row['not_modified']:4}  events+={row['new_events']:5}  {row['by_endpoint']}"
                )
    default = results["default"]
    ok = (
        default["idle_100_cycles"]["charged"] == 0
        and default["first_poll"]["charged"] < REFERENCE_FIRST_BACKFILL
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Azure DevOps requests of the adapter, counted by the emulator.

Shape (the Azure DevOps adapter issue's acceptance): 10 pipelines × 3 environments with 5 finished
runs per pipeline over the last day (150 deployments, 450 transitions), and 10 classic release
definitions through the same 3 environments with 5 releases each. For each mode:

* the first poll (no cursor, lookback 2 days) and the same window read by ``fetcher sync``
  (backfill);
* 100 idle cycles afterwards (the emulator's clock moves 60 s per cycle, nothing happens).

Every request goes over real HTTP to the emulator on 127.0.0.1. Azure DevOps charges every call
against the user's TSTU budget (there are no free conditional requests), so every request counted
here is quota-charged.

Run: ``python benchmarks/azure_devops_requests.py`` (add ``--json`` for machine-readable output).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator, Scenario
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import Cursor, ProviderContext
from deploy_fetcher.providers.azure_devops import AzureDevOpsConfig, AzureDevOpsProvider

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TOKEN = "bench-token"  # noqa: S105 - accepted by the local emulator only
MODES = ("environments", "stages", "releases")
IDLE_CYCLES = 100


def _kind(path: str) -> str:
    """A short name for an endpoint, for the per-endpoint breakdown."""
    if path.endswith("/timeline"):
        return "timeline"
    for name in (
        "environmentdeploymentrecords",
        "environments",
        "build/builds",
        "build/definitions",
        "release/deployments",
        "projects",
    ):
        if name in path:
            return name
    return path


def _provider(emulator: AzureDevOpsEmulator, mode: str) -> AzureDevOpsProvider:
    config = AzureDevOpsConfig.model_validate(
        {
            "name": "bench",
            "provider": "azure-devops",
            "organization_url": emulator.organization_url,
            "release_url": emulator.release_url,
            "projects": ["shop"],
            "pat": TOKEN,
            "mode": mode,
        }
    )
    context = ProviderContext(
        metrics=Metrics(),
        defaults=DefaultsConfig(lookback=timedelta(days=2)),
        clock=emulator.now,
    )
    return AzureDevOpsProvider(config, context)


def _poll(provider: AzureDevOpsProvider, cursor: Cursor | None) -> tuple[int, Cursor | None]:
    events = 0
    for page in provider.poll("shop", cursor):
        events += len(page.events)
        if page.cursor is not None:
            cursor = page.cursor
    return events, cursor


def measure(mode: str) -> dict[str, Any]:
    """The request counts of one mode."""
    scenario = Scenario.bench(start=START, pipelines=10, environments=3, runs_per_pipeline=5)
    with AzureDevOpsEmulator(token=TOKEN, scenario=scenario, start=START) as emulator:
        provider = _provider(emulator, mode)
        try:
            events, cursor = _poll(provider, None)
            first = emulator.requests_to()
            emulator.reset_log()
            backfilled = sum(
                len(page.events)
                for page in _provider(emulator, mode).backfill(
                    "shop", START - timedelta(days=2), START
                )
            )
            backfill = emulator.requests_to()
            emulator.reset_log()
            idle_events = 0
            for _ in range(IDLE_CYCLES):
                emulator.advance(60)
                count, cursor = _poll(provider, cursor)
                idle_events += count
            idle = emulator.requests_to()
            charged = emulator.charged()
        finally:
            provider.close()
            provider.context.shared.close()
    return {
        "mode": mode,
        "first_poll_requests": len(first),
        "first_poll_events": events,
        "first_poll_by_endpoint": dict(Counter(_kind(r.path) for r in first)),
        "backfill_requests": len(backfill),
        "backfill_events": backfilled,
        "idle_cycles": IDLE_CYCLES,
        "idle_requests": len(idle),
        "idle_requests_per_cycle": len(idle) / IDLE_CYCLES,
        "idle_events": idle_events,
        "idle_by_endpoint": dict(Counter(_kind(r.path) for r in idle)),
        "idle_quota_charged": charged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = [measure(mode) for mode in MODES]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("Azure DevOps adapter, 10 pipelines x 3 environments, 5 runs (or releases) each")
    print(
        f"{'mode':<14}{'first poll':>12}{'events':>8}{'backfill':>10}{'100 idle':>10}{'/cycle':>8}"
    )
    for r in results:
        print(
            f"{r['mode']:<14}{r['first_poll_requests']:>12}{r['first_poll_events']:>8}"
            f"{r['backfill_requests']:>10}{r['idle_requests']:>10}{r['idle_requests_per_cycle']:>8.1f}"
        )
    print()
    for r in results:
        print(
            f"{r['mode']}: first poll {r['first_poll_by_endpoint']}; idle {r['idle_by_endpoint']}"
        )
    print("Every request is quota-charged (Azure DevOps has no free conditional requests).")


if __name__ == "__main__":
    main()

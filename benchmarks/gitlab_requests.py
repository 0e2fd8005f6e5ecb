"""Requests the GitLab adapter sends, counted by the emulator, for the shapes the issue names.

The ``benchmark`` scenario holds 20 projects (group ``bench``) × 3 environments (dev, staging,
production) × 20 finished deployments each: 1 200 deployments, 3 600 dated transitions. Measured:

* discovery of ``bench/*`` (once per ``discovery_interval`` in the daemon);
* the first poll of every project (no cursor: ``now - lookback``), which is the first backfill;
* an explicit backfill (``fetcher sync --since``) over the same 7 days;
* 100 idle cycles of all 20 projects (nothing changed; the overlap window is empty).

Run with ``page_size`` 100 (the adapter's default) and 20 (GitLab's default) to show how paging
scales. Every request goes through python-gitlab over real HTTP; "charged" counts the requests
GitLab would count against the rate limit (every authenticated API call).

    .venv/bin/python benchmarks/gitlab_requests.py [--per-page 100 20] [--idle-cycles 100]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.gitlab import GitLabProvider, GitLabSourceConfig

TOKEN = "bench-token"  # noqa: S105 - the emulator's throwaway token
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def provider_for(server: GitLabEmulator, per_page: int) -> GitLabProvider:
    config = GitLabSourceConfig.model_validate(
        {
            "name": "bench",
            "provider": "gitlab",
            "url": server.url(),
            "token": TOKEN,
            "projects": ["bench/*"],
            "page_size": per_page,
        }
    )
    context = ProviderContext(
        metrics=Metrics(),
        defaults=DefaultsConfig(lookback=timedelta(days=7), overlap=timedelta(minutes=5)),
        clock=lambda: server.now,
    )
    return GitLabProvider(config, context)


def measure(server: GitLabEmulator, action: Any) -> tuple[int, int, int, float]:
    """(requests, charged, events, seconds) of one action."""
    server.reset_log()
    started = time.perf_counter()
    events = action()
    return len(server.log), len(server.charged()), events, time.perf_counter() - started


def run(per_page: int, idle_cycles: int) -> list[tuple[str, int, int, int, float]]:
    rows = []
    with GitLabEmulator(token=TOKEN, scenario="benchmark", start=START, rate_limit=10**9) as server:
        provider = provider_for(server, per_page)
        targets: list[str] = []

        def discover() -> int:
            targets.extend(provider.targets())
            return 0

        rows.append(("discovery of bench/*", *measure(server, discover)))
        cursors: dict[str, Any] = {}

        def first_poll() -> int:
            count = 0
            for target in targets:
                for page in provider.poll(target, None):
                    count += len(page.events)
                    cursors[target] = page.cursor or cursors.get(target)
            return count

        rows.append((f"first poll of {len(targets)} projects", *measure(server, first_poll)))

        def backfill() -> int:
            since = server.now - timedelta(days=7)
            return sum(
                len(page.events)
                for target in targets
                for page in provider.backfill(target, since, server.now)
            )

        rows.append(("backfill (sync --since 7d)", *measure(server, backfill)))
        server.advance(600)  # past the overlap window: nothing left to re-read

        def idle() -> int:
            count = 0
            for _ in range(idle_cycles):
                for target in targets:
                    for page in provider.poll(target, cursors[target]):
                        count += len(page.events)
                        cursors[target] = page.cursor or cursors[target]
            return count

        rows.append((f"{idle_cycles} idle cycles × {len(targets)}", *measure(server, idle)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-page", type=int, nargs="+", default=[100, 20])
    parser.add_argument("--idle-cycles", type=int, default=100)
    args = parser.parse_args()
    header = f"{'per_page':>8}  {'shape':<30} {'requests':>8} {'charged':>8} {'events':>7} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    for per_page in args.per_page:
        for shape, requests, charged, events, seconds in run(per_page, args.idle_cycles):
            print(
                f"{per_page:>8}  {shape:<30} {requests:>8} {charged:>8} {events:>7} {seconds:>8.2f}"
            )


if __name__ == "__main__":
    main()

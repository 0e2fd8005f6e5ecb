"""``fetcher sync``: a one-off backfill of a time window, delivered before the command returns.

It goes through the same outbox as the daemon (rows are claimed, so a daemon running at the same time
never sends them twice); the sources' cursors are left alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from typing import Any

from deploy_fetcher.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    load,
    parse_when,
    print_table,
)
from deploy_fetcher.config import FetcherConfig, parse_duration
from deploy_fetcher.model import utc_now

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the subcommand."""
    sync = commands.add_parser(
        "sync",
        help="backfill a time window now",
        description="Read every deployment event in [--since, --until) and deliver it.",
    )
    sync.add_argument("--config", help="YAML file (default: $FETCHER_CONFIG)")
    sync.add_argument("--since", required=True, help="date, timestamp or duration ago (7d)")
    sync.add_argument("--until", help="date, timestamp or duration ago (default: now)")
    sync.add_argument(
        "--source", action="append", default=None, help="only this source (repeatable)"
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="print the events as JSON lines; send and store nothing",
    )
    sync.add_argument(
        "--max-wait",
        default="10m",
        help="how long to wait for delivery before giving up (the outbox keeps the rest)",
    )
    sync.set_defaults(handler=_sync)


def _sources(config: FetcherConfig, wanted: list[str] | None) -> list[str]:
    enabled = [s.name for s in config.sources if s.enabled]
    if not wanted:
        return enabled
    unknown = [n for n in wanted if n not in enabled]
    if unknown:
        raise UsageError(
            f"no enabled source named {', '.join(unknown)} (have: {', '.join(enabled)})"
        )
    return wanted


def _sync(args: argparse.Namespace) -> int:
    config = load(args.config)
    until = parse_when(args.until) if args.until else utc_now()
    since = parse_when(args.since)
    if since >= until:
        raise UsageError(f"--since ({since:%Y-%m-%dT%H:%M:%SZ}) must be before --until")
    try:
        max_wait = parse_duration(args.max_wait).total_seconds()
    except ValueError as exc:
        raise UsageError(f"--max-wait: {exc}") from None
    names = _sources(config, args.source)
    if args.dry_run:
        return _dry_run(config, names, since, until)
    return _backfill(config, names, since, until, max_wait)


def _dry_run(config: FetcherConfig, names: list[str], since: Any, until: Any) -> int:
    from deploy_fetcher.engine.poller import preview
    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.plugins import load_provider, load_sink
    from deploy_fetcher.providers import ProviderContext
    from deploy_fetcher.sinks import SinkContext

    metrics = Metrics()
    context = ProviderContext(metrics=metrics, defaults=config.defaults)
    stdout_cls = load_sink("stdout")
    stdout = stdout_cls(
        stdout_cls.config_model(name="dry-run", type="stdout"),
        SinkContext(metrics=metrics, user_agent="deploy-fetcher"),
    )
    count = 0
    try:
        for name in names:
            source = config.source(name)
            provider = load_provider(source.provider)(source, context)
            for target in provider.targets():
                for event in preview(config, provider, target, since, until):
                    stdout.send(event)
                    count += 1
    finally:
        context.shared.close()
    print(f"{count} events (dry run: nothing stored or sent)", file=sys.stderr)
    return EXIT_OK


def _backfill(
    config: FetcherConfig, names: list[str], since: Any, until: Any, max_wait: float
) -> int:
    from deploy_fetcher.engine import Runtime

    runtime = Runtime(config, sources=names)
    results = []
    with ExitStack() as stack:
        stack.callback(runtime.close)
        runtime.start_delivery()
        stack.callback(runtime.stop_delivery, 5.0)
        progress = _progress(stack)
        for name, provider in runtime.providers.items():
            for target in provider.targets():
                task = progress(f"{name}/{target}") if progress else None
                results.append(
                    runtime.poller.backfill_target(
                        provider, target, since, until, progress=task or (lambda _n: None)
                    )
                )
        fed = sorted(runtime.workers)
        deadline = time.monotonic() + max_wait
        while time.monotonic() < deadline:
            pending = sum(runtime.store.pending_count(s) for s in fed)
            if pending == 0 or all(s in runtime.health.paused_sinks for s in fed):
                break
            runtime.wake(fed)
            time.sleep(0.2)
        pending_by_sink = {s: runtime.store.pending_count(s) for s in fed}
        print_table(
            ["target", "outcome", "events", "queued", "error"],
            [(r.key, r.outcome, r.events, r.queued, r.error) for r in results],
        )
        print_table(
            ["sink", "delivered", "dead-lettered", "still queued", "note"],
            [
                (
                    s,
                    runtime.workers[s].delivered,
                    runtime.workers[s].dead,
                    pending_by_sink[s],
                    runtime.health.paused_sinks.get(s, ""),
                )
                for s in fed
            ],
        )
    failed = any(r.outcome != "ok" for r in results)
    dead = any(w.dead for w in runtime.workers.values())
    pending = sum(pending_by_sink.values())
    if pending:
        print(
            f"fetcher: {pending} events still queued; a running daemon or the next sync delivers them",
            file=sys.stderr,
        )
    return EXIT_FAILED if failed or dead or pending else EXIT_OK


def _progress(stack: ExitStack) -> Any:
    """A rich progress display on a terminal; None otherwise (plain output stays parseable)."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed} events"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    stack.enter_context(progress)

    def add(description: str) -> Any:
        task = progress.add_task(description, total=None)
        return lambda n: progress.advance(task, n)

    return add

"""``fetcher check``: validate the configuration and, unless ``--offline``, the credentials."""

from __future__ import annotations

import argparse
from typing import Any

from deploy_fetcher.cli._common import EXIT_FAILED, EXIT_OK, load, print_table

SHOWN_TARGETS = 5

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the subcommand."""
    check = commands.add_parser(
        "check",
        help="validate the configuration (exit 2 when it is wrong) and test credentials",
    )
    check.add_argument("--config", help="YAML file (default: $FETCHER_CONFIG)")
    check.add_argument(
        "--offline", action="store_true", help="validate only; make no network request"
    )
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.plugins import load_provider, load_sink
    from deploy_fetcher.providers import ProviderContext
    from deploy_fetcher.sinks import SinkContext

    config = load(args.config, log_level="warning")
    sources = [s for s in config.sources if s.enabled]
    sinks = [s for s in config.sinks if s.enabled]
    # Building the plugins proves every section they read is coherent, without any request.
    metrics = Metrics()
    context = ProviderContext(metrics=metrics, defaults=config.defaults)
    providers = [(s, load_provider(s.provider)(s, context)) for s in sources]
    sink_objects = [
        (c, load_sink(c.type)(c, SinkContext(metrics=metrics, user_agent="deploy-fetcher")))
        for c in sinks
    ]
    print(f"configuration ok: {len(sources)} sources, {len(sinks)} sinks")
    if args.offline:
        return EXIT_OK
    rows: list[tuple[str, str, str]] = []
    failed = False
    try:
        for source, provider in providers:
            try:
                targets = list(provider.targets())
            except Exception as exc:
                failed = True
                rows.append((f"source {source.name}", "FAILED", str(exc)))
                continue
            shown = ", ".join(targets[:SHOWN_TARGETS])
            if len(targets) > SHOWN_TARGETS:
                shown += f" (+{len(targets) - SHOWN_TARGETS} more)"
            rows.append((f"source {source.name}", "ok", f"{len(targets)} targets: {shown}"))
        for sink_config, sink in sink_objects:
            result = sink.check()
            state = (
                "ok" if result.ok and result.verified else "unverified" if result.ok else "FAILED"
            )
            failed = failed or not result.ok
            rows.append((f"sink {sink_config.name}", state, result.message))
    finally:
        for _, sink in sink_objects:
            sink.close()
        context.shared.close()
    print_table(["what", "result", "detail"], rows)
    return EXIT_FAILED if failed else EXIT_OK

"""``fetcher check``: validate the configuration and, unless ``--offline``, try every credential.

Online, every enabled source lists its targets (for wildcards that is the credential's first
request) and each target is read once through the provider's :meth:`~Provider.check` hook (the
credential, the target's visibility and the mode's endpoint at once); every enabled sink runs its
own :meth:`~Sink.check`. Nothing is stored and nothing is sent. Exit 1 names every failure.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from deploy_fetcher.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    config_option,
    describe,
    emit,
    load,
    output_option,
    plural,
    print_json,
)

__all__ = ["register"]

#: Targets read at the same time.
PARALLEL = 4


def register(commands: Any) -> None:
    """Add the subcommand."""
    check = commands.add_parser(
        "check",
        parents=[config_option(), output_option()],
        help="validate the configuration (exit 2 when it is wrong) and try every credential",
        description=(
            "Validate the configuration; then list each source's targets and read each target"
            " once, and check each sink's URL and credentials. Exit 0 when everything works,"
            " 1 naming each failure, 2 for a bad configuration."
        ),
    )
    check.add_argument(
        "--offline", action="store_true", help="validate only; make no network request"
    )
    check.add_argument(
        "--source",
        action="append",
        metavar="NAME",
        help="check only this source (repeatable); the others' secrets need not be set",
    )
    check.add_argument(
        "--limit",
        type=int,
        default=100,
        metavar="N",
        help="read at most N targets per source (default 100); the rest are counted, not read",
    )
    check.set_defaults(handler=_check)


@dataclass(frozen=True)
class _Row:
    what: str
    result: str  # ok | WARNING | FAILED | unverified
    detail: str


def _source_rows(provider: Any, name: str, limit: int) -> list[_Row]:
    """List the targets, then read each (``limit`` at most), in parallel."""
    try:
        targets = list(provider.targets())
    except Exception as exc:
        return [_Row(f"source {name}", "FAILED", f"listing targets: {describe(exc)}")]
    if not targets:
        return [_Row(f"source {name}", "WARNING", "0 targets: this source will read nothing")]
    rows = [_Row(f"source {name}", "ok", plural(len(targets), "target"))]
    checked = targets[:limit]

    def one(target: str) -> list[_Row]:
        try:
            items = provider.check(target)
        except Exception as exc:
            return [_Row(f"source {name} target {target}", "FAILED", describe(exc))]
        return [
            _Row(
                f"source {name} {item.what}",
                {True: "ok", False: "FAILED", None: "WARNING"}[item.ok],
                item.detail,
            )
            for item in items
        ]

    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="check") as pool:
        for found in pool.map(one, checked):
            rows += found
    if len(targets) > limit:
        rows.append(
            _Row(
                f"source {name}",
                "WARNING",
                f"{len(targets) - limit} more targets not read (raise --limit)",
            )
        )
    return rows


def _online(providers: list[tuple[str, Any]], sinks: list[Any], limit: int) -> list[_Row]:
    rows: list[_Row] = []
    for name, provider in providers:
        rows += _source_rows(provider, name, limit)
    for sink in sinks:
        try:
            result = sink.check()
        except Exception as exc:
            rows.append(_Row(f"sink {sink.config.name}", "FAILED", describe(exc)))
            continue
        state = "ok" if result.ok and result.verified else "unverified" if result.ok else "FAILED"
        rows.append(_Row(f"sink {sink.config.name}", state, result.message))
    return rows


def _check(args: argparse.Namespace) -> int:
    from deploy_fetcher.engine.runtime import USER_AGENT
    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.plugins import load_provider, load_sink
    from deploy_fetcher.providers import ProviderContext
    from deploy_fetcher.sinks import SinkContext

    config = load(args.config, log_level="warning", sources=args.source, log_warnings=False)
    sources = [s for s in config.sources if s.enabled]
    sink_configs = [s for s in config.sinks if s.enabled]
    warnings = [_Row(w.path, "WARNING", w.message) for w in config.warnings]
    if not sources:
        warnings.append(_Row("sources", "WARNING", "no enabled source: nothing will be read"))
    if not sink_configs:
        warnings.append(_Row("sinks", "WARNING", "no enabled sink: nothing will be delivered"))
    # Building the plugins proves every section they read is coherent, without any request.
    metrics = Metrics()
    context = ProviderContext(metrics=metrics, defaults=config.defaults)
    providers = [(s.name, load_provider(s.provider)(s, context)) for s in sources]
    sink_context = SinkContext(metrics=metrics, user_agent=USER_AGENT)
    sinks = [load_sink(c.type)(c, sink_context) for c in sink_configs]
    summary = (
        f"configuration ok: {plural(len(sources), 'source')}, {plural(len(sink_configs), 'sink')}"
    )
    rows = list(warnings)
    try:
        if not args.offline:
            rows += _online(providers, sinks, args.limit)
    finally:
        for _, provider in providers:
            provider.close()
        for sink in sinks:
            sink.close()
        context.shared.close()
    failures = [row for row in rows if row.result == "FAILED"]
    if args.output == "json":
        print_json(
            {
                "configuration": "ok",
                "sources": len(sources),
                "sinks": len(sink_configs),
                "checks": [vars(row) for row in rows],
                "ok": not failures,
            }
        )
    else:
        print(summary)
        if rows:
            emit(args, [vars(row) for row in rows], columns=["what", "result", "detail"])
    for row in failures:
        print(f"fetcher: {row.what}: {row.detail}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK

"""``fetcher outbox``: list, retry and purge queued and dead-lettered events."""

from __future__ import annotations

import argparse
from typing import Any

from deploy_fetcher.cli._common import EXIT_OK, UsageError, config_option, load, print_table
from deploy_fetcher.config import FetcherConfig
from deploy_fetcher.errors import StoreError
from deploy_fetcher.model import format_rfc3339
from deploy_fetcher.store import StateStore, open_store

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the subcommands."""
    outbox = commands.add_parser("outbox", help="inspect, retry or purge queued and dead events")
    sub = outbox.add_subparsers(dest="action", metavar="ACTION", required=True)

    lst = sub.add_parser(
        "list", parents=[config_option()], help="rows, newest first (dead letters by default)"
    )
    lst.add_argument("--sink")
    lst.add_argument("--state", choices=["pending", "delivered", "dead", "all"], default="dead")
    lst.add_argument("--limit", type=int, default=50)
    lst.set_defaults(handler=_list)

    stats = sub.add_parser("stats", parents=[config_option()], help="counts per sink")
    stats.set_defaults(handler=_stats)

    retry = sub.add_parser("retry", parents=[config_option()], help="queue dead letters again")
    retry.add_argument("ids", nargs="*", type=int)
    retry.add_argument("--sink")
    retry.add_argument("--all", action="store_true", help="every dead letter (of --sink)")
    retry.set_defaults(handler=_retry)

    purge = sub.add_parser(
        "purge",
        parents=[config_option()],
        help="delete dead letters for good (and pending rows of a sink no longer configured)",
    )
    purge.add_argument("ids", nargs="*", type=int)
    purge.add_argument("--sink")
    purge.add_argument("--all", action="store_true", help="every dead letter (of --sink)")
    purge.set_defaults(handler=_purge)


def _open(config: FetcherConfig) -> StateStore:
    """The store holding the outbox, refused when the outbox is private to the running daemon."""
    if config.state.backend == "dashboard":
        msg = (
            "with state.backend dashboard the outbox is a temporary file inside the running"
            " daemon, which no other process can read; see the daemon's /metrics and logs"
        )
        raise StoreError(msg)
    return open_store(config)


def _list(args: argparse.Namespace) -> int:
    config = load(args.config, log_level="warning")
    store = _open(config)
    try:
        rows = store.list_rows(
            sink=args.sink, state=None if args.state == "all" else args.state, limit=args.limit
        )
    finally:
        store.close()
    print_table(
        ["id", "sink", "state", "deployment_id", "status", "happened_at", "attempts", "last error"],
        [
            (
                r.id,
                r.sink,
                r.state,
                r.event.deployment_id,
                r.event.status.value,
                format_rfc3339(r.event.happened_at),
                r.attempts,
                (r.last_error or "").replace("\n", " ")[:200],
            )
            for r in rows
        ],
    )
    return EXIT_OK


def _stats(args: argparse.Namespace) -> int:
    config = load(args.config, log_level="warning")
    store = _open(config)
    try:
        stats = store.stats()
    finally:
        store.close()
    print_table(
        ["sink", "pending", "delivered", "dead", "oldest pending"],
        [
            (
                s.sink,
                s.pending,
                s.delivered,
                s.dead,
                format_rfc3339(s.oldest_pending_at) if s.oldest_pending_at else "",
            )
            for s in stats
        ],
    )
    return EXIT_OK


def _selection(args: argparse.Namespace) -> dict[str, Any]:
    if not (args.ids or args.all):
        raise UsageError(f"outbox {args.action} needs row ids or --all")
    return {"sink": args.sink, "ids": args.ids or None}


def _retry(args: argparse.Namespace) -> int:
    selection = _selection(args)
    config = load(args.config, log_level="warning")
    store = _open(config)
    try:
        count = store.retry_dead(**selection)
    finally:
        store.close()
    print(f"{count} dead letters queued again")
    return EXIT_OK


def _purge(args: argparse.Namespace) -> int:
    selection = _selection(args)
    config = load(args.config, log_level="warning")
    store = _open(config)
    removed = args.sink is not None and args.sink not in {sink.name for sink in config.sinks}
    try:
        count = store.purge(state="dead", **selection)
        if removed:
            # Nothing will ever deliver the pending rows of a sink no longer configured.
            count += store.purge(state="pending", **selection)
    finally:
        store.close()
    if removed:
        print(f"{count} rows of {args.sink} (not configured: pending and dead) purged")
    else:
        print(f"{count} dead letters purged")
    return EXIT_OK

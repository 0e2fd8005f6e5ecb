"""``fetcher outbox``: list, retry, purge and flush queued and dead-lettered events."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from deploy_fetcher.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    config_option,
    confirm,
    duration_arg,
    emit,
    load_for_state,
    open_existing_store,
    output_option,
    plural,
    print_json,
)
from deploy_fetcher.config import FetcherConfig
from deploy_fetcher.errors import StoreError
from deploy_fetcher.store import StateStore

__all__ = ["register"]

SINK_HELP = "only the rows of this sink (its name in the configuration)"


def register(commands: Any) -> None:
    """Add the subcommands."""
    outbox = commands.add_parser(
        "outbox", help="inspect, retry, purge or flush queued and dead-lettered events"
    )
    sub = outbox.add_subparsers(dest="action", metavar="ACTION", required=True)
    parents = [config_option(), output_option()]

    lst = sub.add_parser(
        "list", parents=parents, help="rows, newest first (dead letters by default)"
    )
    lst.add_argument("--sink", metavar="NAME", help=SINK_HELP)
    lst.add_argument(
        "--state",
        choices=["pending", "delivered", "dead", "all"],
        default="dead",
        help="which rows: pending, delivered, dead (the default) or all",
    )
    lst.add_argument(
        "--limit", type=int, default=50, metavar="N", help="at most N rows (default 50)"
    )
    lst.set_defaults(handler=_list)

    stats = sub.add_parser(
        "stats", parents=parents, help="counts per sink: pending, delivered, dead"
    )
    stats.set_defaults(handler=_stats)

    retry = sub.add_parser("retry", parents=parents, help="queue dead letters again")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="row ids from `outbox list`")
    retry.add_argument("--sink", metavar="NAME", help=SINK_HELP)
    retry.add_argument("--all", action="store_true", help="every dead letter (of --sink)")
    retry.set_defaults(handler=_retry)

    purge = sub.add_parser(
        "purge",
        parents=parents,
        help="delete dead letters for good (with --sink --all, also the queued rows of a sink"
        " no longer configured)",
    )
    purge.add_argument("ids", nargs="*", type=int, metavar="ID", help="row ids from `outbox list`")
    purge.add_argument("--sink", metavar="NAME", help=SINK_HELP)
    purge.add_argument(
        "--all", action="store_true", help="every dead letter (of --sink); asks first"
    )
    purge.add_argument(
        "--yes", "-y", action="store_true", help="do not ask for confirmation (for scripts)"
    )
    purge.set_defaults(handler=_purge)

    flush = sub.add_parser(
        "flush",
        parents=parents,
        help="deliver what is queued now, skipping the backoff (after an outage)",
        description=(
            "Make every queued row due now and deliver it from this process (rows a running"
            " daemon is sending are left to it), then print what happened per sink."
        ),
    )
    flush.add_argument("--sink", metavar="NAME", action="append", help=SINK_HELP + " (repeatable)")
    flush.add_argument(
        "--max-wait",
        type=duration_arg,
        default=600.0,
        metavar="DURATION",
        help="stop delivering after this long, e.g. 10m (default 10m); the rest stays queued",
    )
    flush.set_defaults(handler=_flush)


def _open(config: FetcherConfig) -> StateStore:
    """The store holding the outbox, refused when the outbox is private to the running daemon."""
    if config.state.backend == "dashboard":
        msg = (
            "with state.backend dashboard the outbox is a temporary file inside the running"
            " daemon, which no other process can read; see the daemon's /metrics and logs"
        )
        raise StoreError(msg)
    store: StateStore = open_existing_store(config)
    return store


def _list(args: argparse.Namespace) -> int:
    config = load_for_state(args.config)
    store = _open(config)
    try:
        rows = store.list_rows(
            sink=args.sink, state=None if args.state == "all" else args.state, limit=args.limit
        )
    finally:
        store.close()
    emit(
        args,
        [
            {
                "id": r.id,
                "sink": r.sink,
                "state": r.state,
                "deployment_id": r.event.deployment_id,
                "status": r.event.status.value,
                "happened_at": r.event.happened_at,
                "attempts": r.attempts,
                "last_error": (r.last_error or "").replace("\n", " ")[:200],
            }
            for r in rows
        ],
        columns=[
            "id",
            "sink",
            "state",
            "deployment_id",
            "status",
            "happened_at",
            "attempts",
            "last_error",
        ],
    )
    return EXIT_OK


def _stats(args: argparse.Namespace) -> int:
    config = load_for_state(args.config)
    store = _open(config)
    try:
        stats = store.stats()
    finally:
        store.close()
    emit(
        args,
        [
            {
                "sink": s.sink,
                "pending": s.pending,
                "delivered": s.delivered,
                "dead": s.dead,
                "oldest_pending": s.oldest_pending_at,
            }
            for s in stats
        ],
        columns=["sink", "pending", "delivered", "dead", "oldest_pending"],
    )
    return EXIT_OK


def _by_id(
    action: Callable[..., int], ids: Sequence[int], sink: str | None
) -> tuple[list[int], list[int]]:
    """Apply ``action`` row by row: which ids it changed and which were not dead letters."""
    done: list[int] = []
    missing: list[int] = []
    for row_id in dict.fromkeys(ids):
        (done if action(sink=sink, ids=[row_id]) else missing).append(row_id)
    return done, missing


def _dead_letters(
    args: argparse.Namespace, verb: str, action: Callable[[StateStore], Callable[..., int]]
) -> int:
    if not (args.ids or args.all):
        raise UsageError(f"outbox {args.action} needs row ids or --all")
    if args.ids and args.all:
        raise UsageError(f"outbox {args.action}: give row ids or --all, not both")
    config = load_for_state(args.config)
    store = _open(config)
    missing: list[int] = []
    try:
        if args.all:
            count = action(store)(sink=args.sink, ids=None)
        else:
            done, missing = _by_id(action(store), args.ids, args.sink)
            count = len(done)
    finally:
        store.close()
    if args.output == "json":
        print_json({verb.replace(" ", "_"): count, "not_dead_letters": missing})
    else:
        print(f"{plural(count, 'dead letter')} {verb}")
    if missing:
        where = f" of sink {args.sink!r}" if args.sink else ""
        print(
            f"fetcher: not dead letters{where}: {', '.join(map(str, missing))}"
            " (see `fetcher outbox list`)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _retry(args: argparse.Namespace) -> int:
    return _dead_letters(args, "queued again", lambda store: store.retry_dead)


def _purge(args: argparse.Namespace) -> int:
    if args.all and args.sink is not None:
        config = load_for_state(args.config)
        if args.sink not in {sink.name for sink in config.sinks}:
            return _purge_unconfigured(args, config)
    if args.all:
        which = f"of sink {args.sink!r}" if args.sink else "of every sink"
        confirm(f"Delete every dead letter {which} for good?", assume_yes=args.yes)

    def purge(store: StateStore) -> Callable[..., int]:
        return lambda **kw: store.purge(state="dead", **kw)

    return _dead_letters(args, "purged", purge)


def _purge_unconfigured(args: argparse.Namespace, config: FetcherConfig) -> int:
    """Every row of a sink no longer in the configuration: nothing will ever deliver them."""
    confirm(
        f"Delete every queued and dead row of sink {args.sink!r} (not configured) for good?",
        assume_yes=args.yes,
    )
    store = _open(config)
    try:
        count = sum(store.purge(state=state, sink=args.sink) for state in ("pending", "dead"))
    finally:
        store.close()
    if args.output == "json":
        print_json({"purged": count, "sink": args.sink, "configured": False})
    else:
        print(f"{plural(count, 'row')} of {args.sink} (not configured: queued and dead) purged")
    return EXIT_OK


def _flush(args: argparse.Namespace) -> int:
    from deploy_fetcher.cli._deliver import drain, summary_rows
    from deploy_fetcher.engine import Runtime
    from deploy_fetcher.model import utc_now

    config = load_for_state(args.config)
    enabled = [s.name for s in config.sinks if s.enabled]
    unknown = sorted(set(args.sink or ()) - set(enabled))
    if unknown:
        raise UsageError(
            f"no enabled sink named {', '.join(unknown)} (have: {', '.join(enabled) or 'none'})"
        )
    store = _open(config)
    wanted = list(args.sink or enabled)
    made_due = sum(store.make_due(sink=name, now=utc_now()) for name in wanted)
    runtime = Runtime(config, store=store, sources=[])
    try:
        for name in set(runtime.workers) - set(wanted):
            del runtime.workers[name]
        runtime.start_delivery()
        pending = drain(runtime, wanted, args.max_wait)
        runtime.stop_delivery(5.0)
        rows = summary_rows(runtime, wanted, pending)
    finally:
        runtime.close()
    if args.output == "json":
        print_json({"made_due": made_due, "sinks": rows})
    else:
        were = "was" if made_due == 1 else "were"
        print(f"{plural(made_due, 'row')} {were} waiting out a backoff; delivering now")
        emit(args, rows, columns=["sink", "delivered", "dead_lettered", "still_queued", "note"])
    return EXIT_FAILED if any(r["dead_lettered"] or r["still_queued"] for r in rows) else EXIT_OK

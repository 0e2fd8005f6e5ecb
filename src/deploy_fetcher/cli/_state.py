"""``fetcher state``: list, show and reset the sources' cursors; replicas; move into PostgreSQL."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from deploy_fetcher.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    config_option,
    confirm,
    emit,
    load_for_state,
    open_existing_store,
    output_option,
    plural,
    print_json,
)
from deploy_fetcher.engine.health import OUTCOME_PREFIX, parse_outcome
from deploy_fetcher.store import CursorRecord, StateStore

__all__ = ["cursor_mark", "register"]

KEY_HELP = (
    "a cursor key as `state list` prints it: source/target (github/octo/api), or a source's name"
    " alone, which means every cursor of that source"
)


def register(commands: Any) -> None:
    """Add the subcommands."""
    state = commands.add_parser("state", help="inspect or reset the sources' cursors")
    sub = state.add_subparsers(dest="action", metavar="ACTION", required=True)
    parents = [config_option(), output_option()]
    sub.add_parser(
        "list",
        parents=parents,
        help="every stored cursor: its high-water mark, when it moved, the last poll's outcome",
    ).set_defaults(handler=_list)
    show = sub.add_parser(
        "show", parents=parents, help="cursors as JSON (one key, or every key of a source)"
    )
    show.add_argument("key", help=KEY_HELP)
    show.set_defaults(handler=_show)
    reset = sub.add_parser(
        "reset",
        parents=parents,
        help="forget cursors: the next poll starts again at now - lookback",
    )
    reset.add_argument("keys", nargs="*", metavar="KEY", help=KEY_HELP)
    reset.add_argument("--source", metavar="NAME", help="reset every target of this source")
    reset.add_argument("--all", action="store_true", help="reset every cursor (asks first)")
    reset.add_argument(
        "--yes", "-y", action="store_true", help="do not ask for confirmation (for scripts)"
    )
    reset.set_defaults(handler=_reset)
    members = sub.add_parser(
        "members",
        parents=parents,
        help="the replicas sharing a PostgreSQL state, and what each holds"
        " (exit 1 with another state backend)",
    )
    members.add_argument(
        "--leases", action="store_true", help="also list every lease: target or sink, holder, token"
    )
    members.set_defaults(handler=_members)
    migrate = sub.add_parser(
        "migrate",
        parents=[config_option()],
        help="copy the SQLite state file (state.path) into an empty PostgreSQL database",
        description=(
            "Copy cursors, the outbox (pending, delivered and dead rows) and the promotion ledger"
            " of the SQLite file at state.path into an empty PostgreSQL database, and check the"
            " counts. Stop every fetcher using the file first. The password may be left out of"
            " the URL and given in PGPASSWORD or ~/.pgpass instead (it never appears in output)."
        ),
    )
    migrate.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the target database: postgresql://user[:password]@host[:port]/dbname",
    )
    migrate.set_defaults(handler=_migrate)


def cursor_mark(cursor: Any) -> str:
    """The high-water mark of a cursor, where its shape has one (``mark``, or an ``offset``).

    Cursors are the adapters' own JSON; the common shape keeps a ``mark`` at the top or one level
    down (Azure DevOps' stage runs), the scripted replay an ``offset``.
    """
    if not isinstance(cursor, dict):
        return ""
    for key in ("mark", "offset"):
        if isinstance(cursor.get(key), str | int) and not isinstance(cursor.get(key), bool):
            return str(cursor[key])
    for value in cursor.values():
        if isinstance(value, dict) and isinstance(value.get("mark"), str):
            return str(value["mark"])
    return ""


def _matching(records: list[CursorRecord], key: str) -> list[CursorRecord]:
    """The record stored under ``key``, or every record of source ``key``."""
    exact = [r for r in records if r.key == key]
    if exact and "/" in key:
        return exact
    return [r for r in records if r.key == key or r.key.startswith(f"{key}/")]


def _row(store: StateStore, record: CursorRecord) -> dict[str, Any]:
    outcome = parse_outcome(store.get_value(OUTCOME_PREFIX + record.key))
    return {
        "key": record.key,
        "mark": cursor_mark(record.cursor),
        "updated": record.updated_at,
        "last_outcome": outcome.get("outcome") or "",
        "since": outcome.get("since") or "",
        "error": (outcome.get("error") or "").replace("\n", " ")[:120],
    }


def _list(args: argparse.Namespace) -> int:
    config = load_for_state(args.config)
    store = open_existing_store(config)
    try:
        rows = [_row(store, record) for record in store.list_cursors()]
    finally:
        store.close()
    emit(args, rows, columns=["key", "mark", "updated", "last_outcome", "since", "error"])
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    config = load_for_state(args.config)
    store = open_existing_store(config)
    try:
        found = _matching(store.list_cursors(), args.key)
    finally:
        store.close()
    if not found:
        print(
            f"fetcher: no cursor stored under {args.key!r} (see `fetcher state list`)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if len(found) == 1 and found[0].key == args.key:
        print_json(found[0].cursor)
    else:
        print_json({record.key: record.cursor for record in found})
    return EXIT_OK


def _selected(args: argparse.Namespace, records: list[CursorRecord]) -> tuple[list[str], list[str]]:
    """The keys ``state reset`` names (deduplicated), and the names that matched nothing."""
    keys: list[str] = []
    missing: list[str] = []
    for name in [*args.keys, *([args.source] if args.source else [])]:
        matched = _matching(records, name)
        keys += [r.key for r in matched]
        if not matched:
            missing.append(name)
    if args.all:
        keys += [record.key for record in records]
    return list(dict.fromkeys(keys)), missing


def _reset(args: argparse.Namespace) -> int:
    if not (args.keys or args.source or args.all):
        raise UsageError("state reset needs KEY..., --source NAME or --all")
    if args.all:
        confirm(
            "Reset every cursor (every source re-reads its lookback window)?", assume_yes=args.yes
        )
    config = load_for_state(args.config)
    store = open_existing_store(config)
    try:
        keys, missing = _selected(args, store.list_cursors())
        done = [key for key in keys if store.reset_cursor(key)]
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps({"reset": done, "missing": missing}))
    else:
        for key in done:
            print(f"reset {key}")
    if missing:
        print(f"fetcher: no cursor stored under {', '.join(sorted(missing))}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _members(args: argparse.Namespace) -> int:
    from deploy_fetcher.model import utc_now

    config = load_for_state(args.config)
    if config.state.backend != "postgres":
        print(
            f"fetcher: state members needs state.backend postgres (with backend"
            f" {config.state.backend} one process does all the work)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    store = open_existing_store(config)
    try:
        board = store.lease_board
        members = board.members()
        leases = board.leases() if args.leases else []
    finally:
        store.close()
    now = utc_now()

    def ago(when: datetime) -> str:
        return f"{max(0.0, (now - when).total_seconds()):.0f}s ago"

    member_rows = [
        {
            "member": m.id,
            "host": m.host,
            "version": m.version,
            "started": m.started_at,
            "heartbeat": ago(m.heartbeat_at),
            "state": "alive" if m.alive else "gone",
            "leases": m.leases,
        }
        for m in members
    ]
    lease_rows = [
        {
            "key": lease.key,
            "holder": lease.holder,
            "token": lease.token,
            "expires": f"in {(lease.expires_at - now).total_seconds():.0f}s"
            if lease.alive
            else "expired",
        }
        for lease in leases
    ]
    if getattr(args, "output", "table") == "json":
        print_json({"members": member_rows, "leases": lease_rows} if args.leases else member_rows)
        return EXIT_OK
    emit(args, member_rows, columns=list(_MEMBER_COLUMNS))
    if args.leases:
        print()
        emit(args, lease_rows, columns=["key", "holder", "token", "expires"])
    return EXIT_OK


_MEMBER_COLUMNS = ("member", "host", "version", "started", "heartbeat", "state", "leases")


def _migrate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from deploy_fetcher._logging import register_secret
    from deploy_fetcher.config import StateConfig

    try:
        target = StateConfig(backend="postgres", url=args.to).url
    except ValidationError:
        # The error would quote the value, and a URL carries its password: say only what is wrong.
        raise UsageError(
            "--to: not a PostgreSQL URL (postgresql://user:password@host:5432/dbname)"
        ) from None
    assert target is not None  # noqa: S101 - backend postgres requires it
    url = target.get_secret_value()
    register_secret(url)
    config = load_for_state(args.config)
    if config.state.backend != "sqlite":
        raise UsageError(
            f"state migrate copies the SQLite file of state.path; state.backend is {config.state.backend}"
        )
    path = config.state.path.expanduser()
    if not path.is_file():
        raise UsageError(f"no state file at {path} (state.path)")
    try:
        from deploy_fetcher.store.postgres import copy_sqlite_to_postgres
    except ImportError as exc:
        raise UsageError(
            f"state migrate needs psycopg 3 and psycopg-pool ({exc.name} is missing):"
            " pip install 'deploy-fetcher[postgres]'"
        ) from None
    from deploy_fetcher.runlock import RunLock

    # Held for the copy: a daemon running on the file refuses it, and none can start meanwhile.
    with RunLock(path):
        report, label = copy_sqlite_to_postgres(path, url)
    states = ", ".join(
        f"{report.outbox.get(state, 0)} {state}" for state in ("pending", "delivered", "dead")
    )
    print(f"copied {path} into {label}:")
    print(f"  {plural(report.cursors, 'cursor')}")
    print(f"  {plural(report.rows, 'outbox row')} ({states})")
    ledger = plural(report.successes, "promotion ledger entry", "promotion ledger entries")
    lifecycle = plural(report.lifecycle, "lifecycle ledger entry", "lifecycle ledger entries")
    print(f"  {ledger}, {lifecycle}, {plural(report.values, 'stored value')}")
    print("counts verified in the database before commit.")
    print("next: set state.backend: postgres and state.url, then start the fetcher.")
    return EXIT_OK

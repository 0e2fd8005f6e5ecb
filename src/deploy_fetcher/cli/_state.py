"""``fetcher state``: list, show and reset the sources' cursors; move the state into PostgreSQL."""

from __future__ import annotations

import argparse
import json
from typing import Any

from deploy_fetcher.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    config_option,
    load,
    print_table,
)
from deploy_fetcher.model import format_rfc3339
from deploy_fetcher.store import open_store

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the subcommands."""
    state = commands.add_parser("state", help="inspect or reset the sources' cursors")
    sub = state.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", parents=[config_option()], help="every stored cursor").set_defaults(
        handler=_list
    )
    show = sub.add_parser("show", parents=[config_option()], help="one cursor as JSON")
    show.add_argument("key", help="source or source/target, as `state list` prints it")
    show.set_defaults(handler=_show)
    reset = sub.add_parser(
        "reset",
        parents=[config_option()],
        help="forget cursors: the next poll starts again at now - lookback",
    )
    reset.add_argument("keys", nargs="*", help="keys to reset")
    reset.add_argument("--source", help="reset every target of this source")
    reset.add_argument("--all", action="store_true", help="reset every cursor")
    reset.set_defaults(handler=_reset)
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


def _list(args: argparse.Namespace) -> int:
    config = load(args.config, log_level="warning")
    store = open_store(config)
    try:
        records = store.list_cursors()
    finally:
        store.close()
    print_table(
        ["key", "updated", "size"],
        [(r.key, format_rfc3339(r.updated_at), len(json.dumps(r.cursor))) for r in records],
    )
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    config = load(args.config, log_level="warning")
    store = open_store(config)
    try:
        cursor = store.get_cursor(args.key)
    finally:
        store.close()
    if cursor is None:
        print(f"fetcher: no cursor stored under {args.key!r} (see `fetcher state list`)")
        return EXIT_FAILED
    print(json.dumps(cursor, indent=2, sort_keys=True))
    return EXIT_OK


def _reset(args: argparse.Namespace) -> int:
    if not (args.keys or args.source or args.all):
        raise UsageError("state reset needs KEY..., --source NAME or --all")
    config = load(args.config, log_level="warning")
    store = open_store(config)
    try:
        keys = list(args.keys)
        if args.all or args.source:
            keys += [
                record.key
                for record in store.list_cursors()
                if args.all or record.key == args.source or record.key.startswith(f"{args.source}/")
            ]
        done = [key for key in dict.fromkeys(keys) if store.reset_cursor(key)]
    finally:
        store.close()
    for key in done:
        print(f"reset {key}")
    missing = set(args.keys) - set(done)
    if missing:
        print(f"fetcher: no cursor stored under {', '.join(sorted(missing))}")
        return EXIT_FAILED
    return EXIT_OK


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
    config = load(args.config, log_level="warning")
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
    report, label = copy_sqlite_to_postgres(path, url)
    states = ", ".join(
        f"{report.outbox.get(state, 0)} {state}" for state in ("pending", "delivered", "dead")
    )
    print(f"copied {path} into {label}:")
    print(f"  {report.cursors} cursors")
    print(f"  {report.rows} outbox rows ({states})")
    print(f"  {report.successes} promotion ledger entries, {report.values} stored values")
    print("counts verified in the database before commit.")
    print("next: set state.backend: postgres and state.url, then start the fetcher.")
    return EXIT_OK

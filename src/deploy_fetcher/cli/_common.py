"""Helpers shared by the CLI commands: options, loading config, the store, times, output, prompts."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from deploy_fetcher._logging import configure_logging, register_secrets_in
from deploy_fetcher._plural import plural
from deploy_fetcher.config import FetcherConfig, parse_duration
from deploy_fetcher.errors import StoreError
from deploy_fetcher.model import format_rfc3339, parse_timestamp, utc_now
from deploy_fetcher.plugins import load_config

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "config_option",
    "confirm",
    "describe",
    "duration_arg",
    "emit",
    "load",
    "load_for_state",
    "open_existing_store",
    "output_option",
    "parse_when",
    "plural",
    "print_json",
    "print_table",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

CONFIG_HELP = "the YAML configuration file (default: $FETCHER_CONFIG)"
OUTPUT_HELP = "table (aligned columns, the default) or json (one document on stdout, for scripts)"


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--output`` before the subcommand (``fetcher --config f.yaml state list``)."""
    parser.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
    parser.add_argument("--output", choices=("table", "json"), default="table", help=OUTPUT_HELP)


def config_option() -> argparse.ArgumentParser:
    """A parent parser adding ``--config`` to a (sub)command, so it may also come after it.

    ``SUPPRESS`` keeps a value given before the subcommand when none is given after it.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return parent


def output_option() -> argparse.ArgumentParser:
    """A parent parser adding ``--output table|json`` to a subcommand (also accepted before it)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--output", choices=("table", "json"), default=argparse.SUPPRESS, help=OUTPUT_HELP
    )
    return parent


class UsageError(Exception):
    """A bad command-line value: printed as one line, exit 2."""


def duration_arg(value: str) -> float:
    """An argparse ``type``: a duration (``20s``, ``1m30s``) or a bare number of seconds, in seconds."""
    text = value.strip()
    try:
        number: float | None = float(text)
    except ValueError:
        number = None
    try:
        return parse_duration(text if number is None else number).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def load(
    path: str | None,
    *,
    log_level: str | None = None,
    sources: Sequence[str] | None = None,
    log_warnings: bool = True,
) -> FetcherConfig:
    """Load and validate the configuration, register its secrets for redaction, set up logging.

    ``sources`` keeps only those sources (the others' secrets need not be set). What the loader
    accepted but wants changed (a deprecated key) is logged once here, unless the command shows it
    itself (``log_warnings=False``: ``fetcher check``).
    """
    config = load_config(Path(path) if path else None, environ=os.environ, sources=sources)
    register_secrets_in(config)
    configure_logging(log_level or config.log.level, config.log.format)
    if log_warnings:
        log = structlog.get_logger("deploy_fetcher.config")
        for warning in config.warnings:
            log.warning(
                "config.warning", file=warning.file, path=warning.path, problem=warning.message
            )
    return config


def load_for_state(path: str | None) -> FetcherConfig:
    """The configuration for commands that work on the state and the sinks only.

    ``state`` and ``outbox`` never read a CI system: the sources are left out before interpolation,
    so an operator inspecting the state needs none of the sources' secrets in the environment.
    """
    return load(path, log_level="warning", sources=())


def open_existing_store(config: FetcherConfig) -> Any:
    """The configured store, refused when its file does not exist yet.

    Commands that inspect or edit state never create a state file: an empty new file next to the
    wrong working directory would only hide that the path points somewhere else.
    """
    from deploy_fetcher.store import open_store

    state = config.state
    if state.backend == "sqlite":
        path = state.path.expanduser()
        if not path.exists():
            msg = (
                f"no state file at {path}: nothing has run with this configuration yet, or"
                " state.path points elsewhere (a relative path is resolved against the"
                " configuration file's directory)"
            )
            raise StoreError(msg)
    return open_store(config)


def log_state_location(config: FetcherConfig) -> None:
    """Say where the state lives, absolute, once at start (which file a command writes matters)."""
    state = config.state
    where = str(state.path) if state.backend == "sqlite" else state.backend
    structlog.get_logger("deploy_fetcher.cli").info(
        "fetcher.state", backend=state.backend, path=where
    )


def parse_when(value: str, *, now: datetime | None = None) -> datetime:
    """A date (``2026-01-01``), an RFC 3339 time (seconds optional), or a duration ago (``7d``).

    A time without an offset is read as UTC, like everything else the fetcher prints.
    """
    now = now or utc_now()
    text = value.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    if len(text) == len("2026-01-01"):  # a bare date means midnight UTC
        text += "T00:00:00Z"
    try:
        return parse_timestamp(text)
    except ValueError:
        pass
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        naive = None
    if naive is not None and naive.tzinfo is None:
        return parse_timestamp(naive.isoformat() + "+00:00")
    raise UsageError(
        f"not a date, time or duration: {value!r} (e.g. 2026-01-01, 2026-01-01T12:00Z, 7d)"
    )


def confirm(question: str, *, assume_yes: bool) -> None:
    """Ask before something that cannot be undone; ``--yes`` answers for scripts.

    Without a terminal to ask on and without ``--yes``, the command is refused (exit 2): a script
    must say it means it.
    """
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} — refused without --yes (no terminal to ask on)")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in {"y", "yes"}:
        raise UsageError("not confirmed; nothing changed")


def describe(exc: BaseException) -> str:
    """An exception as one line for the operator; a pydantic error as ``field: message; …``.

    ``str()`` of a pydantic ValidationError is several lines naming the model, the input and a
    ``https://errors.pydantic.dev/…`` link: noise on a terminal, and the input may be a secret.
    """
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or exc.title}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
    return str(exc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_rfc3339(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def print_json(document: Any) -> None:
    """One JSON document on stdout (datetimes as RFC 3339), for ``--output json``."""
    print(json.dumps(document, indent=2, default=_jsonable, ensure_ascii=False))


def emit(
    args: argparse.Namespace,
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """Rows as a table, or as a JSON list of objects under ``--output json``."""
    if getattr(args, "output", "table") == "json":
        print_json(list(rows))
        return
    headers = list(columns or (rows[0].keys() if rows else []))
    print_table(headers, [[_cell(row.get(h)) for h in headers] for row in rows])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_rfc3339(value)
    return str(value)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(value: object) -> str:
    r"""A cell's text with control characters shown as escapes (``\x1b``), never obeyed.

    Cells carry text from CI servers (actors, refs, error bodies): an escape sequence in them must
    not repaint the operator's terminal.
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table on stdout (rich when stdout is a terminal).

    Cells are literal text: rich markup in them (``[/x]``, ``[bold]``) is printed, not interpreted.
    """
    if not headers:
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(*(plain(h) for h in headers))
        for row in rows:
            table.add_row(*(Text(plain(cell)) for cell in row))
        Console().print(table)
        return
    cells = [list(map(plain, headers)), *[[plain(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

"""Helpers shared by the CLI commands: loading config, parsing times, printing tables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from deploy_fetcher._logging import configure_logging, register_secrets_in
from deploy_fetcher.config import FetcherConfig, parse_duration
from deploy_fetcher.model import parse_timestamp, utc_now
from deploy_fetcher.plugins import load_config

__all__ = ["UsageError", "config_option", "load", "parse_when", "print_table"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def config_option() -> argparse.ArgumentParser:
    """A parent parser adding ``--config`` to a (sub)command, so it may come after the action."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", help="YAML file (default: $FETCHER_CONFIG)")
    return parent


class UsageError(Exception):
    """A bad command-line value: printed as one line, exit 2."""


def load(path: str | None, *, log_level: str | None = None) -> FetcherConfig:
    """Load and validate the configuration, register its secrets for redaction, set up logging."""
    config = load_config(Path(path) if path else None, environ=os.environ)
    register_secrets_in(config)
    configure_logging(log_level or config.log.level, config.log.format)
    return config


def parse_when(value: str, *, now: datetime | None = None) -> datetime:
    """A date (``2026-01-01``), a timestamp, or a duration ago (``7d``, ``12h``)."""
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
        raise UsageError(
            f"not a date, timestamp or duration: {value!r} (e.g. 2026-01-01, 2026-01-01T12:00:00Z, 7d)"
        ) from None


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table on stdout (rich when stdout is a terminal)."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers)
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        Console().print(table)
        return
    cells = [list(map(str, headers)), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

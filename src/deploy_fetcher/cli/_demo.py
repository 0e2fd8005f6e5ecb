"""``fetcher demo``: the offline demo against the bundled emulators (no credentials needed)."""

from __future__ import annotations

import argparse
from typing import Any

from deploy_fetcher.cli._common import UsageError
from deploy_fetcher.config import parse_duration

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the subcommand."""
    demo = commands.add_parser(
        "demo",
        help="run the real daemon against bundled GitHub/GitLab/Azure DevOps and dashboard emulators",
    )
    demo.add_argument("--duration", help="stop after this long (e.g. 30s); default: until Ctrl-C")
    demo.add_argument("--plain", action="store_true", help="print plain lines even on a terminal")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from deploy_fetcher.demo import run_demo

    duration = None
    if args.duration:
        try:
            duration = parse_duration(args.duration).total_seconds()
        except ValueError as exc:
            raise UsageError(f"--duration: {exc}") from None
    return run_demo(duration, interactive=False if args.plain else None)

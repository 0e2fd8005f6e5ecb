"""``fetcher config schema``: the JSON Schema editors validate ``fetcher.yaml`` with."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from deploy_fetcher.cli._common import EXIT_OK

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the subcommands."""
    config = commands.add_parser("config", help="tools for the configuration file")
    sub = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the configuration (for editors; see docs/configuration.md)",
        description=(
            "Print the JSON Schema of the configuration file for the providers and sinks installed"
            " here (docs/fetcher.schema.json is the same for the bundled ones)."
        ),
    )
    schema.set_defaults(handler=_schema)


def _schema(_args: argparse.Namespace) -> int:
    from deploy_fetcher.config import render_schema
    from deploy_fetcher.plugins import config_schema

    sys.stdout.write(render_schema(config_schema()))
    return EXIT_OK

"""The ``fetcher`` command line.

Exit codes: 0 success; 1 the command ran but something failed (dead letters after a sync, a failed
check, an unhealthy daemon); 2 bad usage or a bad configuration (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from deploy_fetcher._version import __version__
from deploy_fetcher.cli import _check, _demo, _outbox, _run, _state, _sync
from deploy_fetcher.cli._common import EXIT_FAILED, EXIT_USAGE, UsageError
from deploy_fetcher.errors import ConfigError, FetcherError, PluginError
from deploy_fetcher.redaction import RedactingWriter

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fetcher",
        description="Pull deployment activity out of CI systems and forward it to dashboards.",
    )
    parser.add_argument("--version", action="version", version=f"deploy-fetcher {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (_run, _sync, _check, _state, _outbox, _demo):
        module.register(commands)
    return parser


@contextmanager
def _redacted_output() -> Iterator[None]:
    """Every line the command writes, on either stream, has the registered secrets masked."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingWriter(saved[0]), RedactingWriter(saved[1])
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = saved


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fetcher`` console script."""
    with _redacted_output():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (ConfigError, PluginError, UsageError) as exc:
        print(f"fetcher: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FetcherError as exc:
        print(f"fetcher: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return code

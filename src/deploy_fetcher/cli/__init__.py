"""The ``fetcher`` command line.

Exit codes: 0 success; 1 the command ran but something failed (dead letters after a sync, a failed
check, an unhealthy daemon, an unknown row id or key); 2 bad usage or a bad configuration (one line
on stderr per problem, no traceback).

``--config`` and ``--output`` are accepted before the subcommand and after it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pydantic import ValidationError

from deploy_fetcher._version import __version__
from deploy_fetcher.cli import (
    _check,
    _completion,
    _config,
    _demo,
    _explain,
    _outbox,
    _run,
    _state,
    _sync,
)
from deploy_fetcher.cli._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    UsageError,
    add_global_options,
    describe,
)
from deploy_fetcher.errors import ConfigError, FetcherError, PluginError
from deploy_fetcher.redaction import RedactingWriter

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fetcher",
        description="Pull deployment activity out of CI systems and forward it to dashboards.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"deploy-fetcher {__version__}",
        help="print the version and exit",
    )
    add_global_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (_run, _sync, _check, _explain, _state, _outbox, _config, _completion, _demo):
        module.register(commands)
    parser.set_defaults(root_parser=parser)  # `fetcher completion` walks the whole tree
    return parser


@contextmanager
def _redacted_output() -> Iterator[None]:
    """Every line the command writes, on either stream, has the registered secrets masked."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingWriter(saved[0]), RedactingWriter(saved[1])
    try:
        yield
    finally:
        wrapped = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = saved
        for stream in wrapped:
            stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fetcher`` console script."""
    try:
        with _redacted_output():
            return _main(argv)
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """The reader closed the pipe (``fetcher … | head``): stop quietly, as ``SIGPIPE`` would.

    Python flushes stdout once more at exit; pointing it at /dev/null keeps that flush from
    raising (and printing) the same error again. The exit code is a shell's for SIGPIPE, 141.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout already closed or not a file
        pass
    finally:
        os.close(devnull)
    return 128 + signal.SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (ConfigError, PluginError, UsageError) as exc:
        # One problem a line, each with the same prefix (a bad config names all of them).
        for line in str(exc).splitlines() or [""]:
            print(f"fetcher: {line}", file=sys.stderr)
        return EXIT_USAGE
    except FetcherError as exc:
        print(f"fetcher: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ValidationError as exc:  # a value a model refused outside the configuration's loader
        print(f"fetcher: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return code

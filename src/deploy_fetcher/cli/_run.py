"""``fetcher run`` (the daemon) and ``fetcher healthcheck`` (the container's probe)."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from typing import Any

import structlog

from deploy_fetcher.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    config_option,
    duration_arg,
    load,
    load_for_state,
)

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the subcommands."""
    run = commands.add_parser(
        "run", parents=[config_option()], help="run the daemon in the foreground"
    )
    run.add_argument(
        "--grace",
        type=duration_arg,
        default=20.0,
        metavar="DURATION",
        help="how long to keep delivering after SIGTERM, e.g. 20s (default 20s)",
    )
    run.set_defaults(handler=_run)

    health = commands.add_parser(
        "healthcheck",
        parents=[config_option()],
        help="probe a running daemon's /readyz (or /healthz with --live); exit 0 when healthy",
    )
    health.add_argument(
        "--url",
        default=None,
        help="the URL to probe (default http://127.0.0.1:PORT/readyz, or /healthz with --live)",
    )
    health.add_argument(
        "--port",
        type=int,
        default=None,
        help="the daemon's server port (default: server.port of --config when given, else"
        " $FETCHER_SERVER__PORT, else 8080)",
    )
    health.add_argument(
        "--live",
        action="store_true",
        help="probe /healthz (liveness: is the scheduler alive?) instead of /readyz",
    )
    health.add_argument(
        "--timeout",
        type=duration_arg,
        default=5.0,
        metavar="DURATION",
        help="give up on the probe after this long, e.g. 5s (default 5s)",
    )
    health.set_defaults(handler=_healthcheck)


def _run(args: argparse.Namespace) -> int:
    from deploy_fetcher.daemon import Daemon
    from deploy_fetcher.runlock import RunLock

    config = load(args.config)
    lock = RunLock(config.state.path.expanduser()) if config.state.backend == "sqlite" else None
    if lock is not None:
        lock.acquire()  # held until the daemon stopped, or the process ends, however it ends
    daemon = Daemon(config, grace=args.grace)
    try:
        code = daemon.run_forever()
    finally:
        if lock is not None:
            lock.release()
    stuck = daemon.scheduler.jobs_in_flight
    if stuck:
        # A poll stuck in a slow CI request outlived the grace period. Python would wait for its
        # thread at exit (and the supervisor would SIGKILL us); its page was not committed, so
        # nothing is lost by leaving now.
        structlog.get_logger(__name__).warning("fetcher.exit_with_poll_in_flight", jobs=stuck)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _probe_url(args: argparse.Namespace) -> str:
    """What to probe: ``--url``; else the daemon's server, from ``--port``, ``--config``, the env.

    A configuration is read only when ``--config`` is given (its sources are left out: a probe
    needs no CI credential); ``server.host`` is probed unless it listens on every address.
    """
    if args.url:
        return str(args.url)
    host, port = "127.0.0.1", os.environ.get("FETCHER_SERVER__PORT", "8080")
    if args.config:
        server = load_for_state(args.config).server
        if not server.enabled:
            msg = f"server.enabled is false in {args.config}: the daemon serves no health endpoint"
            raise UsageError(msg)
        host = server.host if server.host not in ("0.0.0.0", "::", "") else host  # noqa: S104
        port = str(server.port)
    if args.port is not None:
        port = str(args.port)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/{'healthz' if args.live else 'readyz'}"


def _healthcheck(args: argparse.Namespace) -> int:
    url = _probe_url(args)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310 - local probe
            ok = response.status == 200  # noqa: PLR2004
            body = response.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        ok, body = False, f"{url}: HTTP {exc.code}: {exc.read(4096).decode(errors='replace')}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        ok, body = False, f"{url}: {reason}"
    print(body.strip(), file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED

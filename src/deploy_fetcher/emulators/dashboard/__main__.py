"""Run the dashboard emulator in the foreground: ``python -m deploy_fetcher.emulators.dashboard``."""

from __future__ import annotations

import argparse

from deploy_fetcher.emulators._server import serve_forever
from deploy_fetcher.emulators.dashboard._emulator import DashboardEmulator


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy_fetcher.emulators.dashboard",
        description="A local Deployment Dashboard (ingest, matrix, fetcher state, control stream).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", required=True, help="the X-Api-Key ingest accepts")
    parser.add_argument("--control-api-key", help="the X-Control-API-Key (default: --api-key)")
    parser.add_argument(
        "--run-number-type",
        choices=["integer", "string"],
        default="integer",
        help="integer as in seed 001; string like newer dashboards",
    )
    parser.add_argument(
        "--status-set",
        choices=["three", "eight"],
        default="eight",
        help="three (in-progress, success, failure) as in seed 001; eight like newer dashboards",
    )
    parser.add_argument("--ping-interval", type=float, default=15.0, help="seconds between pings")
    args = parser.parse_args(argv)
    emulator = DashboardEmulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        control_api_key=args.control_api_key,
        run_number_type=args.run_number_type,
        status_set=args.status_set,
        ping_interval=args.ping_interval,
    )
    serve_forever(emulator, banner="Deployment Dashboard emulator")


if __name__ == "__main__":
    main()

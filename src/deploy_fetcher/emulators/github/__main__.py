"""``python -m deploy_fetcher.emulators.github --host 127.0.0.1 --port 0 --token T --scenario demo``."""

from __future__ import annotations

import argparse

from deploy_fetcher.emulators._server import serve_forever
from deploy_fetcher.emulators.github.server import GitHubEmulator


def main(argv: list[str] | None = None) -> None:
    """Serve the GitHub emulator in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m deploy_fetcher.emulators.github")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="emulator-token", help="the personal token it accepts")
    parser.add_argument("--scenario", default="demo", choices=["demo", "benchmark", "empty"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    emulator = GitHubEmulator(
        args.host, args.port, token=args.token, scenario=args.scenario, seed=args.seed
    )
    serve_forever(emulator, banner=f"GitHub emulator ({args.scenario})")


if __name__ == "__main__":
    main()

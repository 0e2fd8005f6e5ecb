"""``python -m deploy_fetcher.emulators.gitlab``: serve an emulated GitLab until Ctrl-C.

With ``--speed 1`` (the default) the emulator's clock follows the wall clock, so the demo scenario
keeps producing pipelines; ``--speed 0`` freezes it (only ``POST /_emulator/advance`` moves it).
"""

from __future__ import annotations

import argparse
import threading
import time

from deploy_fetcher.emulators._server import serve_forever
from deploy_fetcher.emulators.gitlab.scenario import SCENARIOS
from deploy_fetcher.emulators.gitlab.server import GitLabEmulator


def _follow_clock(emulator: GitLabEmulator, speed: float, stop: threading.Event) -> None:
    last = time.monotonic()
    while not stop.wait(1.0):
        now = time.monotonic()
        emulator.advance((now - last) * speed)
        last = now


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m deploy_fetcher.emulators.gitlab")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="emulator-token")
    parser.add_argument("--scenario", default="demo", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", default="", help="path prefix, e.g. /gitlab (self-managed)")
    parser.add_argument(
        "--rate-limit", type=int, default=2000, help="requests per minute per token"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="emulated seconds per real second")
    args = parser.parse_args(argv)
    emulator = GitLabEmulator(
        args.host,
        args.port,
        token=args.token,
        scenario=args.scenario,
        seed=args.seed,
        prefix=args.prefix,
        rate_limit=args.rate_limit,
    )
    stop = threading.Event()
    if args.speed > 0:
        threading.Thread(
            target=_follow_clock, args=(emulator, args.speed, stop), daemon=True
        ).start()
    try:
        serve_forever(emulator, banner=f"GitLab emulator (scenario {args.scenario})")
    finally:
        stop.set()


if __name__ == "__main__":
    main()

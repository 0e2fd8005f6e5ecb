"""Keep the bundled CI emulators' clocks moving during the compose trial.

An emulator's clock only moves when it is told to (``POST /_emulator/advance``), and moving it is
what makes new deployments start and running ones finish. ``fetcher demo`` does this itself; under
docker compose this small loop does it, advancing each emulator by the real time that passed, so
the fetcher keeps seeing fresh activity. Standard library only: it runs in the fetcher image.

    python advance_clocks.py --every 30 http://github:9001 http://gitlab:9002
"""

# A standalone script mounted into a container, not a module of a package; it reports on stderr.
# ruff: noqa: INP001, T201

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from types import FrameType

ADVANCE_PATH = "/_emulator/advance"
REQUEST_TIMEOUT = 5.0


def advance(base_url: str, seconds: float) -> None:
    """Move one emulator's clock forward by ``seconds`` (OSError when it cannot be reached)."""
    body = json.dumps({"seconds": seconds}).encode()
    request = urllib.request.Request(  # noqa: S310 - the URLs are the compose services' own
        base_url.rstrip("/") + ADVANCE_PATH,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:  # noqa: S310
        response.read()


def run(
    urls: Sequence[str],
    *,
    every: float,
    stop: threading.Event,
    rounds: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Advance every emulator by the time elapsed since the last round until ``stop`` is set.

    Returns the number of rounds done (at most ``rounds`` when given). An emulator that does not
    answer is reported once per outage and advanced by the whole missed time when it is back, so no
    emulator falls behind.
    """
    last = dict.fromkeys(urls, clock())
    failing: set[str] = set()
    done = 0
    while not stop.wait(every):
        now = clock()
        for url in urls:
            try:
                advance(url, now - last[url])
            except (OSError, urllib.error.URLError) as exc:
                if url not in failing:
                    print(f"advance_clocks: {url} did not answer: {exc}", file=sys.stderr)
                    failing.add(url)
                continue
            if url in failing:
                print(f"advance_clocks: {url} answers again", file=sys.stderr)
                failing.discard(url)
            last[url] = now
        done += 1
        if rounds is not None and done >= rounds:
            break
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and advance the clocks until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", help="base URLs of the emulators")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between rounds")
    args = parser.parse_args(argv)
    if args.every <= 0:
        parser.error("--every must be positive")
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"advance_clocks: advancing {len(args.urls)} emulators every {args.every:g}s", flush=True)
    run(args.urls, every=args.every, stop=stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())

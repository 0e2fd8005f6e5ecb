"""The whole-request deadline's watchdog: woken only when needed, yet never late, and never hoarding."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from deploy_fetcher import netlimits
from deploy_fetcher.netlimits import attach_socket, deadline


def _blocked_read_under(seconds: float, result: list[float]) -> None:
    """Block on a socket nobody writes to, under a deadline of ``seconds``; record when it ended."""
    here, there = socket.socketpair()
    started = time.monotonic()
    try:
        with deadline(seconds) as watch:
            attach_socket(here)
            here.settimeout(20)
            with contextlib.suppress(OSError):  # cut by the deadline: shut down, or reset
                here.recv(1)
            result.append(time.monotonic() - started if watch.expired else -1.0)
    finally:
        here.close()
        there.close()


def test_a_short_deadline_behind_a_long_one_still_cuts_its_request() -> None:
    """A 0.3 s deadline started while a 60 s one is watched ends its blocked read, not after 60 s."""
    ended: list[float] = []
    with deadline(60):
        reader = threading.Thread(target=_blocked_read_under, args=(0.3, ended))
        reader.start()
        reader.join(20)
    assert (1, True) == (len(ended), 0.3 <= ended[0] < 10)


def test_finished_deadlines_do_not_pile_up_in_the_watchdog() -> None:
    """A thousand ended requests behind a long one in flight leave the watchdog little to hold."""
    release = threading.Event()
    holding = threading.Event()

    def long_request() -> None:
        with deadline(60):
            holding.set()
            release.wait(20)

    holder = threading.Thread(target=long_request)
    holder.start()
    try:
        assert holding.wait(10)
        for _ in range(1000):
            with deadline(120):
                pass
        watched = len(netlimits._WATCHDOG._heap)  # what the watchdog holds
    finally:
        release.set()
        holder.join(20)
    assert watched < 100  # the long request, and finished ones since the last sweep

"""One ``fetcher run`` per SQLite state file: an exclusive lock that names its holder.

Two daemons on one state file lose nothing (claims keep them from sending a row twice), but each
polls every source, so API quota is spent twice and every rate limit comes twice as soon. The lock is
a file next to the state file (``<state>.run.lock``) held with ``flock`` for the life of the process:
the kernel releases it when the process ends, however it ends, so a crash never leaves a stale lock.
The file holds who took it (pid, host, since when), for the message the next one prints.

``fetcher sync``, ``state`` and ``outbox`` do not take it: they are meant to run beside the daemon.
A PostgreSQL state is shared by design (replicas divide the targets between them): no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Self

from deploy_fetcher.errors import StoreError
from deploy_fetcher.model import format_rfc3339, utc_now

__all__ = ["RunLock"]


class RunLock:
    """The lock of ``fetcher run`` on ``state_path``; :meth:`acquire` raises StoreError when held."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.path = state_path.with_name(state_path.name + ".run.lock")
        self._fd: int | None = None

    def acquire(self) -> Self:
        """Take the lock, or raise StoreError naming the process that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            msg = (
                f"cannot take the run lock of the state file {self.state_path} "
                f"({self.path}): {exc.strerror or exc}"
            )
            raise StoreError(msg) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 512).decode("utf-8", errors="replace").strip() or "unknown"
            os.close(fd)
            msg = (
                f"the state file {self.state_path} is in use by another fetcher run ({holder}); "
                "stop that one first, or give this one its own state.path"
            )
            raise StoreError(msg) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {format_rfc3339(utc_now())}"
        os.write(fd, holder.encode() + b"\n")
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (the file stays: removing it would race the next taker)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()

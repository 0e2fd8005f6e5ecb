"""Who holds a claim on an outbox row, and whether that holder is provably gone.

A claim names its owner ``<hostname>-<pid namespace>-<pid>-<random>``: readable for an operator
looking at the file, and unique even when a pid is reused. A lease bounds how long a crashed owner can
hold its rows, but leases are long (a whole batch of slow sends), so a daemon restarted after SIGKILL
would wait minutes for rows its predecessor claimed. Where we can tell for sure, we do better: an
owner in our own host and pid namespace whose pid no longer runs, or is now our own, holds nothing.

The pid namespace is part of the identity because containers sharing a hostname (``hostNetwork``,
``--uts=host``) each count pids from 1: a pid missing here may be alive next door.
"""

from __future__ import annotations

import os
import secrets
import socket
from functools import cache
from pathlib import Path

__all__ = ["is_orphaned", "new_token", "process_token"]

_tokens: dict[int, str] = {}


@cache
def _pid_namespace() -> str:
    """The inode of this process's pid namespace on Linux, "0" where there is no such thing."""
    try:
        return str(Path("/proc/self/ns/pid").stat().st_ino)
    except OSError:
        return "0"


def new_token() -> str:
    """A claim owner id for this process."""
    return f"{socket.gethostname()}-{_pid_namespace()}-{os.getpid()}-{secrets.token_hex(4)}"


def process_token() -> str:
    """This process's claim owner id, shared by every store it opens; a fresh one after fork().

    Per process, not per store object: otherwise a second store opened by the same process would
    take the first one's claims for those of a dead predecessor with the same pid.
    """
    pid = os.getpid()
    token = _tokens.get(pid)
    if token is None:
        token = _tokens.setdefault(pid, new_token())
    return token


def is_orphaned(owner: str, own_token: str) -> bool:
    """Whether ``owner`` is certainly dead: same host and namespace, and its pid is gone or ours.

    Anything uncertain (another host or namespace, a malformed id, a pid that is alive, possibly
    reused by an unrelated process) counts as alive: the lease frees those rows in time.
    """
    head, _, _random = owner.rpartition("-")
    head, _, pid_text = head.rpartition("-")
    host, _, namespace = head.rpartition("-")
    if owner == own_token or not pid_text.isdigit():
        return False
    if (host, namespace) != (socket.gethostname(), _pid_namespace()):
        return False
    pid = int(pid_text)
    return pid == os.getpid() or not _runs(pid)


def _runs(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending anything)."""
    if pid <= 0:
        return True  # not a process id we can ask about: assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. PermissionError: it runs, under another user
    return True

"""Appending events to a JSON Lines file."""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Any, ClassVar

from deploy_fetcher.config import SinkConfig, settings_of
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks._base import CheckResult, Delivered, Delivery, Retry, Sink, SinkContext
from deploy_fetcher.sinks._document import document, dumps
from deploy_fetcher.sinks.jsonl.config import JsonlConfig
from deploy_fetcher.sinks.jsonl.rotation import needs_rotation, rotate

__all__ = ["JsonlSink"]

#: Append, create if absent, never through a symbolic link.
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
#: New files are the owner's alone.
_MODE = 0o600


class JsonlSink(Sink):
    """One line per event; a failed write (disk full, permissions) is retried, never lost.

    A lock file next to the log (``<path>.lock``) serialises rotation and appends between processes
    (the daemon and a ``fetcher sync`` writing the same file).

    Both are created readable by the owner only (0600: events name services, people and commits)
    and never through a symbolic link (``O_NOFOLLOW``): a link planted at the path in a shared
    directory would otherwise make the daemon append to, or create, any file it may write.
    """

    name: ClassVar[str] = "jsonl"
    config_model: ClassVar[type[SinkConfig]] = JsonlConfig

    def __init__(self, config: SinkConfig, context: SinkContext) -> None:
        super().__init__(config, context)
        self.settings = settings_of(config, JsonlConfig)
        self.path = self.settings.path
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def wire(self, event: DeployEvent) -> dict[str, Any]:
        """The line's document (the configured ``fields``)."""
        return document(event, self.settings.fields)

    def send(self, event: DeployEvent) -> Delivery:
        """Append one line (and fsync it), rotating first when the file is full."""
        line = dumps(self.wire(event)) + b"\n"
        try:
            self._append(line)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return Retry(reason=f"cannot write {self.path}: it is a symbolic link (refused)")
            return Retry(reason=f"cannot write {self.path}: {exc.strerror or exc}")
        return Delivered()

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self._lock_path, _OPEN_FLAGS, _MODE)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            size = self.path.lstat().st_size if self.path.exists() else 0
            if needs_rotation(size, len(line), self.settings.max_bytes):
                rotate(self.path, self.settings.backups)
            fd = os.open(self.path, _OPEN_FLAGS, _MODE)
            try:
                _write_whole_line(fd, line, fsync=self.settings.fsync)
            finally:
                os.close(fd)
        finally:
            os.close(lock)

    def check(self) -> CheckResult:  # noqa: PLR0911 - one answer per kind of path
        """The file, or the directory it will be created in, must be writable."""
        if self.path.is_symlink():
            return CheckResult(ok=False, message=f"{self.path} is a symbolic link (refused)")
        if self.path.exists():
            if self.path.is_dir():
                return CheckResult(ok=False, message=f"{self.path} is a directory, not a file")
            if os.access(self.path, os.W_OK):
                return CheckResult(ok=True, message=f"{self.path} is writable")
            return CheckResult(ok=False, message=f"{self.path} is not writable")
        ancestor = self.path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            return CheckResult(
                ok=False, message=f"cannot create {self.path}: {ancestor} is not a directory"
            )
        if os.access(ancestor, os.W_OK | os.X_OK):
            return CheckResult(ok=True, message=f"{self.path} can be created")
        return CheckResult(
            ok=False, message=f"cannot create {self.path}: {ancestor} is not writable"
        )


def _write_whole_line(fd: int, line: bytes, *, fsync: bool) -> None:
    """Append ``line`` whole or not at all (the caller holds the lock, so the end is ours).

    A disk that fills up half-way leaves a fragment without its newline; the retry would append the
    whole line after it and both would be lost to a reader. So the file is cut back to where it
    ended before raising, and a retried line starts on a line of its own.
    """
    start = os.fstat(fd).st_size
    try:
        written = 0
        while written < len(line):
            written += os.write(fd, line[written:])
        if fsync:
            os.fsync(fd)
    except OSError:
        os.ftruncate(fd, start)
        raise

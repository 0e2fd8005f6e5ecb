"""Size-based rotation in the ``RotatingFileHandler`` style: ``f`` → ``f.1`` → ``f.2`` and so on."""

from __future__ import annotations

from pathlib import Path

__all__ = ["backup_path", "needs_rotation", "rotate"]


def backup_path(path: Path, index: int) -> Path:
    """The ``index``-th rotated file (1 is the newest)."""
    return path.with_name(f"{path.name}.{index}")


def needs_rotation(current_size: int, incoming: int, max_bytes: int) -> bool:
    """Whether ``incoming`` more bytes would take a non-empty file past ``max_bytes`` (0: never)."""
    return max_bytes > 0 and current_size > 0 and current_size + incoming > max_bytes


def rotate(path: Path, backups: int) -> None:
    """Shift the backups up by one, dropping the oldest, and move the live file to ``.1``."""
    if backups == 0:
        path.unlink(missing_ok=True)
        return
    backup_path(path, backups).unlink(missing_ok=True)
    for index in range(backups - 1, 0, -1):
        source = backup_path(path, index)
        if source.exists():
            source.replace(backup_path(path, index + 1))
    if path.exists():
        path.replace(backup_path(path, 1))

"""Counts with their nouns, as a person writes them: ``1 cursor``, ``2 cursors``.

Shared by every module that puts a count into a message (the CLI, the store's errors), so none of
them prints ``1 cursors``.
"""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 target``, ``2 targets``: a count with its noun.

    ``many`` is the plural where adding ``s`` is wrong (``delivery``, ``deliveries``).
    """
    return f"{count} {noun}" if count == 1 else f"{count} {many or noun + 's'}"

"""How a delivery's answer is recorded on its row: the part of the outbox both SQL stores share.

A row is settled by one ``UPDATE`` of the pending row that also drops its claim; what differs
between the answers is only the ``SET`` clause, and between the stores only the placeholder (``?``
for SQLite, ``%s`` for psycopg) and how a time is written. Both stores take these methods from
:class:`SettlesRows` and provide :meth:`SettlesRows._finish` and :meth:`SettlesRows._time`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Final

__all__ = ["SettlesRows"]

#: The ``SET`` clause of each answer; ``{p}`` is the store's placeholder.
_DELIVERED: Final = "state = 'delivered', delivered_at = {p}"
_RETRY: Final = "attempts = attempts + 1, next_attempt_at = {p}, last_error = {p}"
_DEAD: Final = "state = 'dead', attempts = attempts + 1, last_error = {p}, dead_at = {p}"


class SettlesRows:
    """``mark_delivered``, ``mark_retry`` and ``dead_letter`` of a SQL outbox."""

    #: The store's parameter placeholder.
    PLACEHOLDER: ClassVar[str]

    def _finish(self, row_id: int, action: str, assignments: str, params: tuple[Any, ...]) -> None:
        """Settle one pending row with ``assignments`` and drop its claim (the store's SQL)."""
        raise NotImplementedError

    def _time(self, value: datetime) -> Any:
        """A time as the store writes it."""
        raise NotImplementedError

    def mark_delivered(self, row_id: int, *, now: datetime) -> None:
        """The row reached its sink; it stays as a dedup ledger entry until pruned."""
        self._finish(
            row_id,
            "marking a row delivered",
            _DELIVERED.format(p=self.PLACEHOLDER),
            (self._time(now),),
        )

    def mark_retry(self, row_id: int, *, next_attempt_at: datetime, error: str) -> None:
        """Count a failed attempt, release the claim, and make the row due again at ``next_attempt_at``."""
        self._finish(
            row_id,
            "scheduling a retry",
            _RETRY.format(p=self.PLACEHOLDER),
            (self._time(next_attempt_at), error),
        )

    def dead_letter(self, row_id: int, *, reason: str, now: datetime) -> None:
        """Move the row to the dead letters with the reason; the attempt that failed is counted."""
        self._finish(
            row_id,
            "dead-lettering a row",
            _DEAD.format(p=self.PLACEHOLDER),
            (reason, self._time(now)),
        )

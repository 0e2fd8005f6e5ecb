"""How deliveries' answers are recorded on their rows: the part of the outbox both SQL stores share.

A row is settled by an ``UPDATE`` of the pending row that also drops its claim; what differs
between the answers is only the ``SET`` clause, and between the stores only the placeholder (``?``
for SQLite, ``%s`` for psycopg) and how a time is written. Both stores take these methods from
:class:`SettlesRows` and provide :meth:`SettlesRows._finish` and :meth:`SettlesRows._time`.

:meth:`SettlesRows.settle` records many answers in one transaction: the delivery lanes of a sink
hand theirs to one committer (:mod:`deploy_fetcher.engine._group_commit`), so N lanes cost one
commit per round instead of N that queue for the write lock. ``mark_delivered``, ``mark_retry`` and
``dead_letter`` are the same thing for one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, Literal

import structlog

__all__ = ["Settlement", "SettlesRows"]

_log = structlog.get_logger(__name__)

Answer = Literal["delivered", "retry", "dead"]

#: The ``SET`` clause of each answer; ``{p}`` is the store's placeholder.
_DELIVERED: Final = "state = 'delivered', delivered_at = {p}"
_RETRY: Final = "attempts = attempts + 1, next_attempt_at = {p}, last_error = {p}"
_DEAD: Final = "state = 'dead', attempts = attempts + 1, last_error = {p}, dead_at = {p}"


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one delivery's answer does to its row: delivered, due again later, or dead-lettered.

    ``at`` is when it was delivered or dead-lettered, or when a retry falls due; ``error`` is the
    retry's error or the dead letter's reason.
    """

    row_id: int
    answer: Answer
    at: datetime
    error: str | None = None

    @classmethod
    def delivered(cls, row_id: int, *, now: datetime) -> Settlement:
        """The row reached its sink; it stays as a dedup ledger entry until pruned."""
        return cls(row_id, "delivered", now)

    @classmethod
    def retry(cls, row_id: int, *, next_attempt_at: datetime, error: str) -> Settlement:
        """A failed attempt: counted, and the row is due again at ``next_attempt_at``."""
        return cls(row_id, "retry", next_attempt_at, error)

    @classmethod
    def dead(cls, row_id: int, *, reason: str, now: datetime) -> Settlement:
        """The row goes to the dead letters with ``reason``; the attempt that failed is counted."""
        return cls(row_id, "dead", now, reason)


class SettlesRows:
    """``settle``, and ``mark_delivered``, ``mark_retry`` and ``dead_letter`` of a SQL outbox."""

    #: The store's parameter placeholder.
    PLACEHOLDER: ClassVar[str]

    def _finish(
        self, action: str, statements: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]
    ) -> int:
        """Run each ``(assignments, parameter rows)`` in one transaction; how many rows changed.

        Each is ``UPDATE outbox SET <assignments>, <claim dropped> WHERE id = <last parameter> AND
        state = 'pending'`` once per parameter row (the store's SQL).
        """
        raise NotImplementedError

    def _time(self, value: datetime) -> Any:
        """A time as the store writes it."""
        raise NotImplementedError

    def settle(self, settlements: Sequence[Settlement]) -> int:
        """Record every answer in one transaction (all or none); how many rows were still pending.

        A row no longer pending is left alone: a lease ran out and another process settled it
        meanwhile, or an operator purged it; neither is worth an error.
        """
        if not settlements:
            return 0
        p = self.PLACEHOLDER
        delivered: list[tuple[Any, ...]] = []
        retried: list[tuple[Any, ...]] = []
        dead: list[tuple[Any, ...]] = []
        for item in sorted(settlements, key=lambda s: s.row_id):  # one lock order for everyone
            if item.answer == "delivered":
                delivered.append((self._time(item.at), item.row_id))
            elif item.answer == "retry":
                retried.append((self._time(item.at), item.error or "", item.row_id))
            else:
                dead.append((item.error or "", self._time(item.at), item.row_id))
        statements = [
            (_DELIVERED.format(p=p), delivered),
            (_RETRY.format(p=p), retried),
            (_DEAD.format(p=p), dead),
        ]
        action = _action(settlements)
        changed = self._finish(action, [(sql, rows) for sql, rows in statements if rows])
        if changed < len(settlements):
            _log.debug("store.rows_not_pending", rows=len(settlements) - changed, action=action)
        return changed

    def mark_delivered(self, row_id: int, *, now: datetime) -> None:
        """The row reached its sink; it stays as a dedup ledger entry until pruned."""
        self.settle([Settlement.delivered(row_id, now=now)])

    def mark_retry(self, row_id: int, *, next_attempt_at: datetime, error: str) -> None:
        """Count a failed attempt, release the claim, and make the row due again at ``next_attempt_at``."""
        self.settle([Settlement.retry(row_id, next_attempt_at=next_attempt_at, error=error)])

    def dead_letter(self, row_id: int, *, reason: str, now: datetime) -> None:
        """Move the row to the dead letters with the reason; the attempt that failed is counted."""
        self.settle([Settlement.dead(row_id, reason=reason, now=now)])


_ACTIONS: Final[dict[Answer, str]] = {
    "delivered": "marking a row delivered",
    "retry": "scheduling a retry",
    "dead": "dead-lettering a row",
}


def _action(settlements: Sequence[Settlement]) -> str:
    """What a store error says was being done: the one answer's words, or a count."""
    if len(settlements) == 1:
        return _ACTIONS[settlements[0].answer]
    return f"recording the answers of {len(settlements)} deliveries"

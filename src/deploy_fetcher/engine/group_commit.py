"""Group commit: the answers of a sink's delivery lanes recorded together, one transaction at a time.

Every lane must see its answer recorded before it sends its next row: that is what keeps the
duplicate window at one POST per lane (an accepted POST whose answer a crash lost is sent again,
and no more than that one). Committing each answer alone makes N lanes queue N transactions for
one write lock, and in SQLite a connection that finds the lock taken sleeps (1, 2, 5, 10 ms …)
before it looks again. Here the lanes never contend: the first lane with an answer commits it,
and every answer that arrives while that transaction runs waits for the next one, which takes them
all. A lone lane pays one commit per answer and waits for nobody; with many lanes the
transactions carry as many answers as lanes answered meanwhile.

This is the write-ahead log's group commit (PostgreSQL's ``commit_delay``, without the delay): no
timer, no thread of its own, and no answer waits longer than the transaction in progress plus its
own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from deploy_fetcher.errors import StoreError

__all__ = ["GroupCommit"]

T = TypeVar("T")


@dataclass(eq=False)
class _Waiting(Generic[T]):
    """One answer and what became of its transaction."""

    item: T
    done: bool = False
    error: BaseException | None = field(default=None)


class GroupCommit(Generic[T]):
    """Records items through ``write`` (one call per transaction), batching concurrent callers.

    ``write`` takes every item queued since the previous transaction began, and either records
    them all or raises; :meth:`record` returns only once its item's transaction committed, and
    raises what that transaction raised (each caller its own copy of a StoreError).
    """

    def __init__(self, write: Callable[[Sequence[T]], object]) -> None:
        self._write = write
        self._changed = threading.Condition(threading.Lock())
        self._queue: list[_Waiting[T]] = []
        self._writing = False
        #: Transactions run and items recorded (for the benchmark's figures and the tests).
        self.transactions = 0
        self.items = 0

    def record(self, item: T) -> None:
        """Return once ``item`` is committed; raise when its transaction failed."""
        mine = _Waiting(item)
        wrote = False
        with self._changed:
            self._queue.append(mine)
            while not mine.done:
                if self._writing:
                    self._changed.wait()
                    continue
                # Nobody writes: this caller commits everything queued, its own item among it.
                batch, self._queue = self._queue, []
                self._writing = wrote = True
                self._changed.release()
                error: BaseException | None = None
                try:
                    self._write([waiting.item for waiting in batch])
                except BaseException as exc:  # handed to every caller of the batch below
                    error = exc
                finally:
                    self._changed.acquire()
                    self._writing = False
                if error is None:
                    self.transactions += 1
                    self.items += len(batch)
                for waiting in batch:
                    waiting.done, waiting.error = True, error
                self._changed.notify_all()
        error = mine.error
        if error is None:
            return
        if isinstance(error, StoreError):
            raise StoreError(str(error)) from error
        if wrote:
            raise error
        msg = f"the transaction that held this answer failed: {type(error).__name__}"
        raise RuntimeError(msg) from error

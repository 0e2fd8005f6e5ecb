"""The ``dashboard`` state backend: cursors kept in the Deployment Dashboard, the outbox in a temp file.

For operators who run the fetcher without a volume. The dashboard offers one opaque string of at most
8 KiB per fetcher (its state slot); the outbox cannot live there, so it lives in a SQLite file in a
temporary directory that disappears with the process. Delivery stays at-least-once because of one
rule, kept by this class:

    A target's cursor is written to the dashboard only once every row its page queued (for every
    sink) has been delivered or dead-lettered, and so has every row of that target's earlier pages.

So whatever the dashboard holds never covers an undelivered event: after a crash the temporary
outbox is gone, the fetcher starts from the dashboard's cursors, and the poll reads the lost events
again. The price of the mode: events delivered after the last write to the dashboard are sent again
after a crash (writes follow deliveries within about ``flush_interval``), dead letters, the
promotion ledger and the lifecycle ledger do not survive a restart (after one, a deployment's
events are judged by their own pages until it queues again), and ``fetcher sync`` cannot know what
the daemon sent.

Inside the process nothing changes for the engine: pages are committed to the local outbox with their
cursor as usual (the next poll continues from there), and each commit is remembered with the ids of
the rows it left pending: per target, the oldest unsettled commit and, merged into one, everything
committed after it (so a long outage of a sink costs two entries, not one per poll). A background thread writes the cursors of settled commits, all targets in
one JSON document, coalescing bursts of deliveries into one ``PUT``. A document larger than the
slot's limit is refused (the dashboard keeps the previous one) and reported as a store problem.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

import structlog

from deploy_fetcher.errors import StoreError
from deploy_fetcher.model import DeployEvent, format_rfc3339, parse_timestamp, utc_now
from deploy_fetcher.store import (
    CursorRecord,
    Fence,
    OutboxRow,
    OutboxStats,
    RowState,
    Settlement,
    SqliteStore,
)

__all__ = [
    "DOCUMENT_VERSION",
    "SLOT_MAX_BYTES",
    "DashboardStore",
    "SlotError",
    "StateSlot",
    "decode_document",
    "encode_document",
]

_log = structlog.get_logger(__name__)

#: The dashboard's limit on a state slot (UTF-8 bytes of the stored string).
SLOT_MAX_BYTES: Final = 8192
#: Written into every document, so a slot holding anything else is recognised and left alone.
DOCUMENT_VERSION: Final = 1
#: How often settled commits are looked for even when nothing woke the writer.
_TICK_SECONDS: Final = 5.0


class SlotError(StoreError):
    """Reading or writing the state slot failed; ``permanent`` for a refusal rather than an outage."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class StateSlot(Protocol):
    """Where the cursor document is kept: one opaque string (the dashboard's state slot)."""

    description: str
    """Names the slot in messages (never carries a secret)."""

    def load(self) -> str | None:
        """The stored string, or None when nothing was stored yet; raises SlotError."""
        ...

    def save(self, state: str) -> None:
        """Replace the stored string; raises SlotError."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def encode_document(cursors: dict[str, dict[str, Any]], saved_at: datetime) -> str:
    """The slot's string: every target's cursor, compact, keys sorted (equal cursors, equal text)."""
    document = {"v": DOCUMENT_VERSION, "saved_at": format_rfc3339(saved_at), "cursors": cursors}
    return json.dumps(document, separators=(",", ":"), sort_keys=True, allow_nan=False)


def decode_document(text: str) -> tuple[dict[str, dict[str, Any]], datetime | None]:
    """The cursors and save time of a slot's string; ValueError when it is not such a document."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        msg = f"not JSON ({exc})"
        raise ValueError(msg) from None
    if not isinstance(document, dict) or document.get("v") != DOCUMENT_VERSION:
        msg = f"not a version {DOCUMENT_VERSION} cursor document: {text[:80]!r}"
        raise ValueError(msg)
    cursors = document.get("cursors")
    if not isinstance(cursors, dict) or not all(
        isinstance(key, str) and isinstance(value, dict) for key, value in cursors.items()
    ):
        msg = "its cursors are not an object of objects"
        raise ValueError(msg)
    saved = document.get("saved_at")
    try:
        saved_at = parse_timestamp(saved) if isinstance(saved, str) else None
    except ValueError:
        saved_at = None
    return cursors, saved_at


def _canonical(cursors: dict[str, dict[str, Any]]) -> str:
    return json.dumps(cursors, separators=(",", ":"), sort_keys=True, allow_nan=False)


@dataclass
class _Commit:
    """One committed page: its cursor (None = unchanged) and the ids of its rows still pending."""

    cursor: dict[str, Any] | None
    waiting: set[int]

    def absorb(self, cursor: dict[str, Any] | None, waiting: set[int]) -> None:
        """Take in the commit made after this one: its cursor, if any, wins; its rows wait too.

        The meaning is kept because the later commit could only become durable once this one
        settled; without merging, a target polled while a row stays pending (its sink down) would
        queue one commit per poll for as long as that lasts.
        """
        if cursor is not None:
            self.cursor = cursor
        self.waiting |= waiting


class DashboardStore:
    """A :class:`~deploy_fetcher.store.StateStore` whose cursors live in a :class:`StateSlot`.

    The slot is read on first need (a cursor asked for, a reset): an unreachable dashboard is then a
    :class:`~deploy_fetcher.errors.StoreError` the poller retries next cycle, never a silent start
    from scratch. ``flush_interval`` is the least time between two writes; None starts no writer
    thread (tests call :meth:`flush`). ``directory`` is where the temporary outbox goes (the system's
    temporary directory, ``$TMPDIR``, by default); it is removed by :meth:`close`.
    """

    def __init__(
        self,
        slot: StateSlot,
        *,
        directory: Path | None = None,
        flush_interval: float | None = 1.0,
        max_bytes: int = SLOT_MAX_BYTES,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.slot = slot
        self._clock = clock
        self._max_bytes = max_bytes
        self._directory = Path(tempfile.mkdtemp(prefix="deploy-fetcher-", dir=directory))
        try:
            self._local = SqliteStore(self._directory / "outbox.db", clock=clock)
        except BaseException:
            shutil.rmtree(self._directory, ignore_errors=True)
            raise
        self._lock = threading.Lock()  # guards the bookkeeping below
        self._load_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._loaded = threading.Event()  # set once the slot was read
        self._durable: dict[str, dict[str, Any]] = {}
        self._durable_at: datetime | None = None
        self._saved: str | None = None
        self._commits: dict[str, deque[_Commit]] = {}
        self._problem: str | None = None
        self._failing = False
        self._too_large = False
        self._closing = threading.Event()
        self._closed = False
        self._wake = threading.Event()
        self._flush_interval = flush_interval
        self._thread: threading.Thread | None = None
        if flush_interval is not None:
            self._thread = threading.Thread(target=self._run, name="dashboard-state", daemon=True)
            self._thread.start()

    def __repr__(self) -> str:
        return f"DashboardStore({self.slot.description!r})"

    @property
    def path(self) -> Path:
        """The temporary outbox file (gone after :meth:`close`)."""
        return self._local.path

    # -- the slot ----------------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        """Read the slot once; raise StoreError when it cannot be read or is not ours."""
        if self._loaded.is_set():
            return
        with self._load_lock:
            if self._loaded.is_set():
                return
            text = self.slot.load()
            cursors: dict[str, dict[str, Any]] = {}
            saved_at = None
            if text is not None:
                try:
                    cursors, saved_at = decode_document(text)
                except ValueError as exc:
                    msg = (
                        f"{self.slot.description} holds something that is not a deploy-fetcher"
                        f" cursor document ({exc}); it is left alone: clear it, or set"
                        " state.dashboard_slot to another name"
                    )
                    raise SlotError(msg, permanent=True) from None
            with self._lock:
                self._durable = cursors
                self._durable_at = saved_at
                self._saved = _canonical(cursors)
                self._loaded.set()
        _log.info(
            "dashboard_state.loaded",
            slot=self.slot.description,
            cursors=len(cursors),
            saved_at=format_rfc3339(saved_at) if saved_at else None,
        )

    def flush(self) -> bool:
        """Write the cursors of every settled commit; True when the slot holds what is safe to hold.

        Never raises for the slot's trouble: an outage is retried on the next wake-up, a refusal or
        an over-long document becomes the store's problem (readiness) until a write succeeds.
        """
        with self._flush_lock:
            with self._lock:
                if not self._loaded.is_set():
                    return True
                self._advance()
                cursors = _canonical(self._durable)
                if cursors == self._saved:
                    # E.g. the cursor that made the document too long was reset.
                    self._settled()
                    return True
                snapshot = json.loads(cursors)
            document = encode_document(snapshot, self._clock())
            size = len(document.encode())
            if size > self._max_bytes:
                self._refuse_size(size, len(snapshot))
                return False
            try:
                self.slot.save(document)
            except SlotError as exc:
                self._save_failed(exc)
                return False
            with self._lock:
                self._saved = cursors
            self._settled()
            return True

    def _settled(self) -> None:
        """The slot holds what is safe to hold: any earlier problem is over."""
        self._problem = None
        self._too_large = False
        if self._failing:
            self._failing = False
            _log.info("dashboard_state.saved", slot=self.slot.description, recovered=True)

    def _refuse_size(self, size: int, keys: int) -> None:
        problem = (
            f"the cursors of {keys} targets take {size} bytes, more than the {self._max_bytes}"
            f" bytes {self.slot.description} can hold; it keeps older cursors (a restart re-reads"
            " from them). Use fewer targets per fetcher, or the sqlite backend"
        )
        if not self._too_large:  # logged when it starts, not on every flush while it lasts
            _log.error("dashboard_state.too_large", slot=self.slot.description, bytes=size)
        self._too_large = True
        self._problem = problem
        self._failing = True

    def _save_failed(self, exc: SlotError) -> None:
        if not self._failing:
            _log.warning("dashboard_state.save_failed", error=str(exc), permanent=exc.permanent)
        self._failing = True
        if exc.permanent:
            self._problem = str(exc)

    def _advance(self) -> None:
        """Move settled commits' cursors into the durable set, oldest first per target (lock held)."""
        moved = True
        while moved and self._commits:
            # Only the heads are asked about: a later commit cannot move before its head anyway.
            heads = {key: queue[0] for key, queue in self._commits.items()}
            waiting = set().union(*(head.waiting for head in heads.values()))
            pending = self._local.still_pending(waiting) if waiting else set()
            moved = False
            for key, head in heads.items():
                head.waiting &= pending
                queue = self._commits[key]
                # The head, if settled, then any commit that had nothing pending when it was made;
                # a commit with rows is asked about in the next round.
                while queue and not queue[0].waiting:
                    done = queue.popleft()
                    moved = True
                    if done.cursor is not None:
                        self._durable[key] = done.cursor
                if not queue:
                    del self._commits[key]

    def _run(self) -> None:
        interval = self._flush_interval or 0.0
        while not self._closing.is_set():
            self._wake.wait(_TICK_SECONDS)
            if self._closing.is_set():
                return
            self._wake.clear()
            try:
                self.flush()
            except StoreError as exc:  # the local file failed (disk full): try again later
                _log.warning("dashboard_state.flush_failed", error=str(exc))
            except Exception:
                _log.exception("dashboard_state.unexpected_error")
            self._closing.wait(interval)

    def _nudge(self) -> None:
        self._wake.set()

    # -- cursors -------------------------------------------------------------------------------------
    def get_cursor(self, key: str) -> dict[str, Any] | None:
        """This process's latest cursor, else the one the dashboard holds, else None."""
        local = self._local.get_cursor(key)
        if local is not None:
            return local
        self._ensure_loaded()
        with self._lock:
            return self._durable.get(key)

    def list_cursors(self) -> list[CursorRecord]:
        """The dashboard's cursors, overlaid with this process's newer ones, ordered by key."""
        self._ensure_loaded()
        with self._lock:
            stamp = self._durable_at or self._clock()
            records = {
                key: CursorRecord(key, cursor, stamp) for key, cursor in self._durable.items()
            }
        records.update({record.key: record for record in self._local.list_cursors()})
        return [records[key] for key in sorted(records)]

    def reset_cursor(self, key: str) -> bool:
        """Forget a cursor here and in the dashboard (written by the next flush or at close)."""
        self._ensure_loaded()
        local = self._local.reset_cursor(key)
        with self._lock:
            durable = self._durable.pop(key, None) is not None
            self._commits.pop(key, None)
        self._nudge()
        return local or durable

    # -- the transaction rule ------------------------------------------------------------------------
    def commit_page(
        self,
        key: str,
        cursor: dict[str, Any] | None,
        rows: Sequence[tuple[str, DeployEvent]],
        *,
        successes: Sequence[DeployEvent] | None = None,
        fence: Fence | None = None,
    ) -> int:
        """Commit to the local outbox, and hold the cursor until the page's rows are settled.

        The rows waited for are those as queued: the lifecycle ledger may have re-dated some (their
        dedup key changed with their time) and left others out.
        """
        if cursor is not None:
            self._ensure_loaded()
        inserted, queued = self._local.commit_page_rows(
            key, cursor, rows, successes=successes, fence=fence
        )
        waiting = self._local.pending_ids(queued) if queued else set()
        if cursor is None and not waiting:
            return inserted
        with self._lock:
            queue = self._commits.setdefault(key, deque())
            # The head stays apart: were fresh rows merged into it, a steady stream of them could
            # keep it from ever settling; the commit behind it absorbs the rest.
            if len(queue) > 1:
                queue[-1].absorb(cursor, waiting)
            else:
                queue.append(_Commit(cursor, waiting))
        self._nudge()
        return inserted

    # -- outbox: delegated; settling calls wake the writer ---------------------------------------
    def claim(
        self,
        sink: str,
        *,
        limit: int,
        lease_seconds: float,
        now: datetime,
        lane: int = 0,
        lanes: int = 1,
    ) -> list[OutboxRow]:
        """Claim due pending rows of one delivery lane (see :meth:`SqliteStore.claim`)."""
        return self._local.claim(
            sink, limit=limit, lease_seconds=lease_seconds, now=now, lane=lane, lanes=lanes
        )

    def settle(self, settlements: Sequence[Settlement]) -> int:
        """Record answers; delivered and dead-lettered rows may make their pages' cursors due."""
        changed = self._local.settle(settlements)
        if any(item.answer != "retry" for item in settlements):
            self._nudge()
        return changed

    def mark_delivered(self, row_id: int, *, now: datetime) -> None:
        """The row reached its sink; its page's cursor may now be due for the dashboard."""
        self._local.mark_delivered(row_id, now=now)
        self._nudge()

    def mark_retry(self, row_id: int, *, next_attempt_at: datetime, error: str) -> None:
        """Count a failed attempt; the row stays pending and keeps its page's cursor back."""
        self._local.mark_retry(row_id, next_attempt_at=next_attempt_at, error=error)

    def dead_letter(self, row_id: int, *, reason: str, now: datetime) -> None:
        """A dead letter settles its row: it must not hold the cursor back for ever."""
        self._local.dead_letter(row_id, reason=reason, now=now)
        self._nudge()

    def release(self, row_ids: Sequence[int]) -> None:
        """Give back claims without counting an attempt."""
        self._local.release(row_ids)

    def pending_count(self, sink: str) -> int:
        """Rows of ``sink`` not yet delivered nor dead."""
        return self._local.pending_count(sink)

    def stats(self) -> list[OutboxStats]:
        """Counts per sink."""
        return self._local.stats()

    def list_rows(
        self, *, sink: str | None = None, state: RowState | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        """Rows of this process's outbox, newest first."""
        return self._local.list_rows(sink=sink, state=state, limit=limit)

    def rows_for(self, deployment_id: str, *, sinks: Sequence[str]) -> list[OutboxRow]:
        """Rows of one deployment in this process's outbox."""
        return self._local.rows_for(deployment_id, sinks=sinks)

    def make_due(self, *, sink: str | None = None, now: datetime) -> int:
        """Make waiting rows of this process's outbox due now."""
        return self._local.make_due(sink=sink, now=now)

    def retry_dead(self, *, sink: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Move dead letters back to pending (their pages' cursors may already be written)."""
        return self._local.retry_dead(sink=sink, ids=ids)

    def purge(
        self, *, state: RowState, sink: str | None = None, ids: Sequence[int] | None = None
    ) -> int:
        """Delete rows; purged pending rows no longer hold their pages' cursors back."""
        count = self._local.purge(state=state, sink=sink, ids=ids)
        self._nudge()
        return count

    def prune_delivered(self, *, older_than: datetime) -> int:
        """Delete delivered rows older than the retention window."""
        return self._local.prune_delivered(older_than=older_than)

    def latest_success(self, *, service: str, environment: str, sha: str) -> str | None:
        """The promotion ledger of this process (it does not survive a restart in this mode)."""
        return self._local.latest_success(service=service, environment=environment, sha=sha)

    def get_value(self, key: str) -> str | None:
        """A small value of this process (not kept across restarts in this mode)."""
        return self._local.get_value(key)

    def set_value(self, key: str, value: str) -> None:
        """Store a small value for the life of this process."""
        self._local.set_value(key, value)

    # -- health ------------------------------------------------------------------------------------
    def check_writable(self) -> str | None:
        """None when the temporary outbox is writable and the dashboard takes the cursors."""
        problem = self._local.check_writable()
        if problem is not None:
            return problem
        if not self._loaded.is_set():
            try:
                self._ensure_loaded()
            except StoreError as exc:
                return str(exc)
        return self._problem

    def close(self) -> None:
        """Stop the writer, write what is settled one last time, and delete the temporary outbox.

        A second call does nothing: the outbox it would read is gone.
        """
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            pending = sum(stats.pending for stats in self._local.stats())
            if not self.flush():
                _log.error(
                    "dashboard_state.unsaved_at_exit",
                    slot=self.slot.description,
                    error=self._problem or "the dashboard did not take the cursors",
                )
            if pending:
                _log.warning(
                    "dashboard_state.undelivered_dropped",
                    rows=pending,
                    note="the dashboard's cursors do not cover them: the next start reads them again",
                )
        except StoreError as exc:
            _log.error("dashboard_state.close_failed", error=str(exc))
        finally:
            self._local.close()
            shutil.rmtree(self._directory, ignore_errors=True)
            self.slot.close()

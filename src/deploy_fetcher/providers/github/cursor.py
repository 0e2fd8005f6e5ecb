"""The GitHub adapter's cursors: the kit's watermark, plus the validators of free re-reads.

Both modes are a :class:`~deploy_fetcher.providers.kit.Watermark` (see ARCHITECTURE.md):

* ``mark`` — the newest ``created_at`` stored; each poll lists back to ``mark − overlap`` and no
  further, and the mark never passes the server's clock;
* ``open`` — items seen in a non-terminal state, re-checked every cycle (with ``If-None-Match``, so an
  unchanged one costs nothing) until they end, bounded in count and age (since ``created_at``);
  the payload keeps what re-checking needs (an ETag, a snapshot, a run id …);
* ``done`` — items inside the overlap window already seen to their end, so a re-read window never
  fetches them again (for runs, with the attempt that ended);

plus the ETags of the list pages, so that an idle repository costs only ``304`` answers — also after
a restart, since the cursor is stored. A cursor written for another scope (mode, workflows, branches)
or version is ignored: the old high-water mark says nothing about the new selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from deploy_fetcher.model import format_rfc3339, parse_timestamp
from deploy_fetcher.providers.kit import OpenItem, Record, Sealed, Watermark, short

__all__ = ["DeploymentsCursor", "OpenDeployment", "OpenRun", "RunsCursor"]


@dataclass
class OpenDeployment(Record):
    """A deployment not yet seen to its end (stored as its open item's payload)."""

    created_at: str = field(metadata=short(None))
    #: The deployment's own fields the events need (environment, sha, ref, creator …).
    deployment: dict[str, Any] = field(default_factory=dict, metadata=short("d"))
    #: ETag of its statuses list (None until it was read over REST).
    etag: str | None = field(default=None, metadata=short("e"))
    run_id: int | None = field(default=None, metadata=short("r"))
    #: Its last status is a failure, held back until the run says whether it was cancelled.
    awaiting_run: bool = field(default=False, metadata=short("a"))
    waited: bool = field(default=False, metadata=short("w"))


@dataclass
class OpenRun(Record):
    """A workflow run attempt not yet seen to its end (stored as its open item's payload)."""

    attempt: int = field(metadata=short("n"))
    created_at: str = field(metadata=short(None))
    etag: str | None = field(default=None, metadata=short("e"))
    waiting_since: str | None = field(default=None, metadata=short("w"))
    resumed_at: str | None = field(default=None, metadata=short("p"))


def _entry(kind: type[Any], item: OpenItem) -> Any:
    return kind.from_json(item.data, created_at=format_rfc3339(item.since))


@dataclass
class _Cursor(Watermark, Sealed):
    """What both modes keep: the watermark, sealed; open items carry a typed payload."""

    scope: str = field(default="", metadata=short(None))

    VERSION: ClassVar[int] = 2

    def _keep_open(self, key: int, entry: OpenDeployment | OpenRun) -> None:
        self.open.discard(str(key))
        self.open.add(str(key), parse_timestamp(entry.created_at), entry.to_json())

    def forget(
        self, *, now: datetime, overlap: timedelta, max_open: int, max_age: timedelta
    ) -> list[int]:
        """Forget finished items behind ``overlap`` and open ones too old or too many (returned)."""
        dropped = self.prune(now=now, overlap=overlap, open_max=max_open, open_max_age=max_age)
        return [int(key) for key in dropped if key.isdigit()]


@dataclass
class DeploymentsCursor(_Cursor):
    """Cursor of one repository in ``deployments`` mode (and the ETag of its list's first page)."""

    etag: str | None = None

    MODE: ClassVar[str] = "deployments"

    def __post_init__(self) -> None:
        self.opened()  # every payload must be readable now, not in the middle of a poll

    def opened(self) -> list[tuple[int, OpenDeployment]]:
        """The open deployments, oldest first."""
        return [
            (int(k), _entry(OpenDeployment, self.open.items[k])) for k in self.open.oldest_first()
        ]

    def keep_open(self, dep_id: int, entry: OpenDeployment) -> None:
        """Track (or update) an open deployment."""
        self._keep_open(dep_id, entry)

    def close(self, dep_id: int, created_at: str) -> None:
        """A deployment reached its end: never read again inside the window."""
        self.open.discard(str(dep_id))
        self.done.add(str(dep_id), parse_timestamp(created_at))

    def known(self) -> set[int]:
        """Deployments already open or done."""
        return {int(key) for key in [*self.open.items, *self.done.items] if key.isdigit()}


@dataclass
class RunsCursor(_Cursor):
    """Cursor of one repository in ``workflow_runs`` mode (and the ETag per list URL)."""

    #: ETag per list URL (workflow and window), so an idle workflow answers 304.
    etags: dict[str, str] = field(default_factory=dict)

    MODE: ClassVar[str] = "workflow_runs"

    def __post_init__(self) -> None:
        self.open_runs()

    def opened(self, run_id: int) -> OpenRun | None:
        """The open attempt of a run, or None."""
        item = self.open.get(str(run_id))
        return _entry(OpenRun, item) if item is not None else None

    def open_runs(self) -> list[tuple[int, OpenRun]]:
        """The open runs, oldest first."""
        return [(int(k), _entry(OpenRun, self.open.items[k])) for k in self.open.oldest_first()]

    def keep_open(self, run_id: int, entry: OpenRun) -> None:
        """Track (or update) an open run attempt."""
        self._keep_open(run_id, entry)

    def close(self, run_id: int, attempt: int, created_at: str) -> None:
        """A run attempt ended: skipped while the window returns it, unless re-run."""
        self.open.discard(str(run_id))
        self.done.add(str(run_id), parse_timestamp(created_at), attempt)

    def done_attempt(self, run_id: int) -> int | None:
        """The last attempt of a run seen to its end inside the window, or None."""
        entry = self.done.get(str(run_id))
        return entry[1] if entry is not None else None

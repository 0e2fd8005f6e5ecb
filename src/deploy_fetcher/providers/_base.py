"""The interface every CI provider adapter implements.

The core owns the loop (scheduling, cursor commits, retries of failed cycles, logging of failure
transitions); an adapter only knows how to turn one target's API into pages of canonical events:

* one :class:`Provider` instance per ``sources[]`` entry, created once and reused across cycles, so
  HTTP sessions and caches live as long as the daemon;
* :meth:`Provider.targets` lists what the entry covers (repositories, projects, pipelines); each target
  has its own cursor, its own scheduled job, its own failures;
* :meth:`Provider.poll` yields :class:`Page` objects; the engine stores each page's events and its cursor
  in one transaction, so an adapter must only put in a page's cursor what that page's events cover;
* vendor errors are translated into :mod:`deploy_fetcher.errors` at this boundary.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from deploy_fetcher.model import DeployEvent, utc_now

if TYPE_CHECKING:
    from deploy_fetcher.config import DefaultsConfig, SourceConfig
    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.providers.kit import LimitHit, Quota

__all__ = [
    "CheckItem",
    "Cursor",
    "Page",
    "Provider",
    "ProviderContext",
    "Reread",
    "SharedResources",
]

#: An adapter-owned JSON object (dicts, lists, strings, numbers); opaque to the core.
Cursor = dict[str, Any]

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """A batch of events and the cursor that covers them.

    ``cursor`` is None when the page leaves the cursor unchanged (e.g. events re-emitted from the open
    set in the middle of a walk). Pages of a backfill carry no cursor.
    """

    events: Sequence[DeployEvent]
    cursor: Cursor | None = None


@dataclass(frozen=True)
class Reread:
    """One deployment read again from its CI system, for ``fetcher explain``.

    ``events`` are what the adapter maps it to today, before any rule; ``objects`` the raw objects
    it read on the way (``(what, JSON)`` pairs), where the adapter records them.
    """

    events: Sequence[DeployEvent]
    objects: Sequence[tuple[str, Any]] = ()


@dataclass(frozen=True)
class CheckItem:
    """One thing ``fetcher check`` tried for a source: a credential, a target, an endpoint.

    ``ok`` None is a warning: it worked, but will read nothing (a mode without events, an empty
    list of targets).
    """

    what: str
    ok: bool | None
    detail: str = ""


class SharedResources:
    """Objects shared across sources, e.g. one API client and quota budget per credential.

    Thread-safe: jobs of several sources run at once. A factory may itself get shared objects (a
    client built on a shared quota), so the lock is reentrant. Objects with a ``close()`` method are
    closed when the daemon shuts down.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._items: dict[str, Any] = {}

    def get(self, key: str, factory: Callable[[], T]) -> T:
        """Return the object stored under ``key``, creating it with ``factory`` the first time."""
        with self._lock:
            if key not in self._items:
                self._items[key] = factory()
            return self._items[key]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close every object that can be closed."""
        with self._lock:
            items, self._items = list(self._items.values()), {}
        for item in items:
            close = getattr(item, "close", None)
            if callable(close):
                close()


def _ignore(_hit: LimitHit) -> None:
    """The default ``on_limit``: the policy already counts and logs every hit."""


@dataclass
class ProviderContext:
    """What the core hands to every adapter.

    ``sleep`` must be used for any wait (rate limits, backoff) because it returns early on shutdown;
    ``clock`` for "now" so tests can move time; ``on_limit`` hears of every request cut short by a
    limit of the request policy (a deadline, the byte cap, a refused redirect).
    """

    metrics: Metrics
    defaults: DefaultsConfig
    shared: SharedResources = field(default_factory=SharedResources)
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], datetime] = utc_now
    on_limit: Callable[[LimitHit], None] = _ignore

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; return False when the daemon is stopping (stop waiting then)."""
        if seconds <= 0:
            return not self.stop.is_set()
        return not self.stop.wait(seconds)


class Provider(abc.ABC):
    """Base class of every provider adapter (registered under ``deploy_fetcher.providers``).

    Subclasses set ``name`` (the entry point's name, the ``provider:`` key in YAML) and
    ``config_model`` (a :class:`~deploy_fetcher.config.SourceConfig` subclass with their own keys).
    """

    name: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]]

    def __init__(self, config: SourceConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context

    def targets(self) -> Sequence[str]:
        """List the targets this source covers (may call the API for wildcards)."""
        return [self.config.name]

    @abc.abstractmethod
    def poll(self, target: str, cursor: Cursor | None) -> Iterator[Page]:
        """Yield what changed since ``cursor`` (None on the very first run: start at now − lookback)."""

    @abc.abstractmethod
    def backfill(self, target: str, since: datetime, until: datetime) -> Iterator[Page]:
        """Yield every event in ``[since, until)``; pages carry no cursor.

        Oldest pages first where the API allows; the engine sorts the events inside each page.
        """

    def ready_problems(self) -> list[str]:
        """Reasons this source is not healthy beyond failed cycles (e.g. quota spent); empty = fine."""
        return []

    @property
    def request_quota(self) -> Quota | None:
        """The quota of this source's credential, shared by every source using it; None without one.

        The scheduler paces the targets of all sources sharing one quota as one budget, held under
        the per-minute limits the quota knows (:meth:`~deploy_fetcher.providers.kit.Quota.allowance`).
        """
        return None

    def check(self, target: str) -> list[CheckItem]:
        """``fetcher check``: one cheap authenticated request proving ``target`` can be read.

        Called once per named target after :meth:`targets` succeeded (so the credential was used
        at least once when targets are listed). The default reads the target for real: the first
        page of a poll from scratch, which proves the credential, the target's visibility and the
        mode's endpoint at once; nothing is stored. Adapters override it with something cheaper.
        """
        from deploy_fetcher.config import format_duration

        pages = iter(self.poll(target, None))
        try:
            page = next(pages, None)
        finally:
            close = getattr(pages, "close", None)
            if callable(close):
                close()
        found = len(page.events) if page is not None else 0
        if not found:
            lookback = self.config.lookback or self.context.defaults.lookback
            detail = (
                f"readable, but nothing deployed in the lookback window"
                f" ({format_duration(lookback)}): check"
                " its mode and filters if it deploys"
            )
            return [CheckItem(f"target {target}", ok=None, detail=detail)]
        detail = f"readable ({found} events on the first page)"
        return [CheckItem(f"target {target}", ok=True, detail=detail)]

    def reread(
        self, target: str, deployment_id: str, *, since: datetime, until: datetime
    ) -> Reread:
        """``fetcher explain``: read one deployment of ``target`` again, dated in ``[since, until)``.

        The default walks the window as a backfill would and keeps that deployment's events, so it
        works for every adapter at the cost of reading the window; adapters that can fetch one
        deployment directly, or record the raw objects they read, override it.
        """
        events = [
            event
            for page in self.backfill(target, since, until)
            for event in page.events
            if event.deployment_id == deployment_id
        ]
        return Reread(sorted(events, key=lambda event: event.happened_at))

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters share clients via context
        """Release what the adapter holds (the shared resources are closed by the core)."""

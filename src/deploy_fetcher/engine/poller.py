"""Running one source target once: cursor → adapter pages → rules → one transaction per page.

This is the only place the transaction rule lives: a page's events (fanned out to the sinks that
want them) and the page's cursor are committed together, so a crash at any point loses nothing and a
re-read of an overlap window is deduplicated by the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from deploy_fetcher.config import FetcherConfig, SinkConfig, SourceConfig
from deploy_fetcher.engine.health import Health
from deploy_fetcher.engine.rules import apply_rules, fill_parents
from deploy_fetcher.engine.select import select
from deploy_fetcher.errors import (
    AuthError,
    LeaseLost,
    RateLimited,
    SourceError,
    StoreError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.lifecycle import enforce_lifecycle, lifecycle_order
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers import Page, Provider
from deploy_fetcher.store import Fence, StateStore

__all__ = ["CycleResult", "Poller", "preview", "target_key"]

_log = structlog.get_logger(__name__)

#: The error of a cycle whose answer was JSON nested too deeply to parse.
NESTED_TOO_DEEP = "the server answered JSON nested too deeply to parse (RecursionError); not read"


def target_key(source: str, target: str) -> str:
    """The store key of a source target's cursor (``source`` alone when the two are the same)."""
    return source if target == source else f"{source}/{target}"


@dataclass(frozen=True)
class CycleResult:
    """What one run of a source target did."""

    key: str
    outcome: str
    pages: int = 0
    events: int = 0
    queued: int = 0
    error: str = ""
    #: Deployments whose latest status read in this cycle is not terminal (work in flight).
    in_flight: frozenset[str] = frozenset()
    #: Deployments whose latest status read in this cycle is terminal.
    finished: frozenset[str] = frozenset()


_OUTCOMES: tuple[tuple[type[SourceError], str], ...] = (
    (AuthError, "auth_error"),
    (TargetNotFound, "not_found"),
    (RateLimited, "rate_limited"),
    (TransientError, "transient_error"),
)


class Poller:
    """Runs source targets and commits what they yield; knows no provider or sink by name."""

    def __init__(
        self,
        config: FetcherConfig,
        store: StateStore,
        metrics: Metrics,
        health: Health,
        *,
        on_commit: Callable[[Sequence[str]], None] = lambda _sinks: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.health = health
        self.on_commit = on_commit
        self.should_stop = should_stop
        self._sinks: Mapping[str, SinkConfig] = {s.name: s for s in config.sinks if s.enabled}

    # -- the fan-out -----------------------------------------------------------------------------
    def prepare(
        self, source: SourceConfig, events: Sequence[DeployEvent]
    ) -> tuple[list[tuple[str, DeployEvent]], list[DeployEvent]]:
        """Apply the rules, fill promotion parents, and fan out to the sinks that want each event.

        Returns the ``(sink, event)`` rows and the events after the rules (canonical names, which
        the promotion ledger is keyed on).
        """
        kept = [e for e in (apply_rules(e, self.config.rules) for e in events) if e is not None]
        kept = fill_parents(
            kept,
            self.config.rules,
            lambda service, env, sha: self.store.latest_success(
                service=service, environment=env, sha=sha
            ),
        )
        rows: list[tuple[str, DeployEvent]] = []
        for sink_name in self.config.sink_names_for(source):
            sink = self._sinks[sink_name]
            rows += [(sink_name, e) for e in (select(sink, ev) for ev in kept) if e is not None]
        return rows, kept

    def commit(
        self, source: SourceConfig, key: str, page: Page, *, fence: Fence | None = None
    ) -> int:
        """Store one page's rows and cursor atomically; wake the sinks that got rows.

        The page is first put in lifecycle order and stripped of events that would take a
        deployment backwards within it (:mod:`deploy_fetcher.lifecycle`), whichever adapter made
        it; the store then judges the rows against what earlier pages and cycles queued, in the
        commit's transaction. With a ``fence``, the commit happens only under that lease (see
        :meth:`run_target`).
        """
        rows, kept = self.prepare(source, enforce_lifecycle(page.events, source=source.name))
        if fence is None:
            inserted = self.store.commit_page(key, page.cursor, rows, successes=kept)
        else:
            inserted = self.store.commit_page(key, page.cursor, rows, successes=kept, fence=fence)
        for event in page.events:
            self.metrics.events.labels(source.name, event.status.value).inc()
        if inserted:
            self.on_commit(sorted({sink for sink, _ in rows}))
        return inserted

    def commit_by_sink(
        self, source: SourceConfig, key: str, events: Sequence[DeployEvent]
    ) -> dict[str, tuple[int, int]]:
        """Store a cursor-less page one sink at a time: ``{sink: (rows offered, rows inserted)}``.

        For a backfill, whose pages carry no cursor, so nothing is lost by splitting the write;
        the difference between offered and inserted is what each sink's ledger already held (or
        what its lifecycle ledger left out: each sink's is judged on its own).
        """
        rows, kept = self.prepare(source, enforce_lifecycle(events, source=source.name))
        by_sink: dict[str, list[tuple[str, DeployEvent]]] = {}
        for sink, event in rows:
            by_sink.setdefault(sink, []).append((sink, event))
        counts: dict[str, tuple[int, int]] = {}
        for sink, sink_rows in by_sink.items():
            inserted = self.store.commit_page(key, None, sink_rows, successes=kept)
            counts[sink] = (len(sink_rows), inserted)
            if inserted:
                self.on_commit([sink])
        if not rows and kept:
            self.store.commit_page(key, None, [], successes=kept)
        for event in events:
            self.metrics.events.labels(source.name, event.status.value).inc()
        return counts

    # -- one cycle -------------------------------------------------------------------------------
    def run_target(
        self, provider: Provider, target: str, *, fence: Fence | None = None
    ) -> CycleResult:
        """Poll one target from its stored cursor, committing page by page.

        With a ``fence`` (replicas sharing the work), every page commits only while this replica
        still holds the target's lease under the token the poll started with; once it does not,
        the poll ends there (``lease_lost``) and the holder polls the target instead.
        """
        source = provider.config
        key = target_key(source.name, target)
        log = _log.bind(source=source.name, target=target)
        started = time.monotonic()
        pages = events = queued = 0
        outcome, error = "ok", ""
        latest: dict[str, DeployEvent] = {}
        try:
            cursor = self.store.get_cursor(key)
            for page in provider.poll(target, cursor):
                pages += 1
                events += len(page.events)
                queued += self.commit(source, key, page, fence=fence)
                _keep_latest(latest, page.events)
                if self.should_stop():
                    log.info("poll.stopped_after_page", pages=pages)
                    break
        except LeaseLost as exc:
            outcome, error = "lease_lost", str(exc)
            log.info("poll.lease_lost", error=error)
        except StoreError as exc:
            outcome, error = "store_error", str(exc)
            self.health.set_store_problem(error)
        except SourceError as exc:
            outcome = next((name for cls, name in _OUTCOMES if isinstance(exc, cls)), "error")
            error = str(exc)
        except RecursionError:
            # JSON nested deeper than Python's parser recurses: the server's answer, not a bug
            # of ours. Reported like any bad answer (logged when the failure starts, no traceback).
            outcome, error = "transient_error", NESTED_TOO_DEEP
        except Exception as exc:
            # An adapter bug must not kill the scheduler thread; it is logged with its traceback.
            outcome, error = "error", f"{type(exc).__name__}: {exc}"
            log.exception("poll.unexpected_error")
        elapsed = time.monotonic() - started
        self.metrics.cycle(source.name, target, outcome, elapsed, provider=source.provider)
        if outcome == "ok":
            self.health.target_ok(key)
            log.debug(
                "poll.done", pages=pages, events=events, queued=queued, seconds=round(elapsed, 3)
            )
        elif outcome not in {"store_error", "lease_lost"}:
            self.health.target_failed(key, outcome, error)
        return CycleResult(
            key,
            outcome,
            pages,
            events,
            queued,
            error,
            in_flight=frozenset(d for d, e in latest.items() if not e.status.is_terminal),
            finished=frozenset(d for d, e in latest.items() if e.status.is_terminal),
        )

    # -- backfill --------------------------------------------------------------------------------
    def backfill_target(
        self,
        provider: Provider,
        target: str,
        since: datetime,
        until: datetime,
        *,
        progress: Callable[[int], None] = lambda _n: None,
        sink_progress: Callable[[dict[str, tuple[int, int]]], None] | None = None,
    ) -> CycleResult:
        """Walk a time window and queue its events; the source's cursor is left alone.

        ``progress`` gets each page's number of events; ``sink_progress``, when given, each
        page's ``{sink: (rows offered, rows inserted)}`` (the page is then stored sink by sink).
        """
        source = provider.config
        key = target_key(source.name, target)
        pages = events = queued = 0
        try:
            for page in provider.backfill(target, since, until):
                pages += 1
                events += len(page.events)
                # Adapters walk newest-first and may interleave deployments; oldest first, a
                # page's upstream successes are seen before the deployments promoted from them.
                ordered = lifecycle_order(page.events)
                if sink_progress is None:
                    queued += self.commit(source, key, Page(ordered, None))
                else:
                    counts = self.commit_by_sink(source, key, ordered)
                    queued += sum(inserted for _, inserted in counts.values())
                    sink_progress(counts)
                progress(len(page.events))
                if self.should_stop():
                    break
        except SourceError as exc:
            return CycleResult(key, "error", pages, events, queued, str(exc))
        except RecursionError:
            return CycleResult(key, "error", pages, events, queued, NESTED_TOO_DEEP)
        except StoreError:
            raise  # not the adapter's: the store cannot be used, sync stops with its message
        except Exception as exc:
            # An adapter bug ends this target's backfill with its traceback, not ``fetcher sync``.
            _log.bind(source=source.name, target=target).exception("backfill.unexpected_error")
            return CycleResult(key, "error", pages, events, queued, f"{type(exc).__name__}: {exc}")
        return CycleResult(key, "ok", pages, events, queued)


def _keep_latest(latest: dict[str, DeployEvent], events: Sequence[DeployEvent]) -> None:
    """Remember each deployment's latest event (by ``happened_at``) among ``events``."""
    for event in events:
        known = latest.get(event.deployment_id)
        if known is None or event.happened_at >= known.happened_at:
            latest[event.deployment_id] = event


def preview(
    config: FetcherConfig, provider: Provider, target: str, since: datetime, until: datetime
) -> Iterator[DeployEvent]:
    """What a backfill would queue after the rules, without touching a store (``sync --dry-run``)."""
    for page in provider.backfill(target, since, until):
        for event in page.events:
            kept = apply_rules(event, config.rules)
            if kept is not None:
                yield kept

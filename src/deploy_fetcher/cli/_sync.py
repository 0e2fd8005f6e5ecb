"""``fetcher sync``: a one-off backfill of a time window, delivered before the command returns.

It goes through the same outbox as the daemon (rows are claimed, so a daemon running at the same time
never sends them twice); the sources' cursors are left alone. Targets are read in parallel (bounded
by ``--parallel``) while the sinks deliver what is already queued; one display (a live table on a
terminal, a log line every few seconds otherwise) shows events read, rows queued, rows the ledger
already had, and delivery per sink with its rate and an ETA.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from deploy_fetcher.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    config_option,
    duration_arg,
    emit,
    load,
    log_state_location,
    open_existing_store,
    output_option,
    parse_when,
    plural,
    print_json,
)
from deploy_fetcher.cli._wire import open_sinks
from deploy_fetcher.config import FetcherConfig
from deploy_fetcher.errors import StoreError
from deploy_fetcher.model import format_rfc3339, utc_now

if TYPE_CHECKING:
    from deploy_fetcher.config import SinkConfig
    from deploy_fetcher.providers import ProviderContext
    from deploy_fetcher.sinks import Sink

__all__ = ["register"]

_log = structlog.get_logger("deploy_fetcher.sync")

#: Seconds between two progress log lines when standard error is not a terminal.
LOG_EVERY = 5.0
REFRESH = 0.25
#: Seconds over which delivery rates (and so the ETA) are measured.
RATE_WINDOW = 10.0


def register(commands: Any) -> None:
    """Add the subcommand."""
    sync = commands.add_parser(
        "sync",
        parents=[config_option(), output_option()],
        help="backfill a time window now",
        description=(
            "Read every deployment event in [--since, --until) and deliver it through the outbox."
            " Exit 0 when everything was delivered; 1 when a target failed, an event was"
            " dead-lettered, or events are still queued at --max-wait."
        ),
    )
    sync.add_argument(
        "--since",
        required=True,
        metavar="WHEN",
        help="start of the window: a date (2026-01-01), an RFC 3339 time (seconds optional,"
        " UTC without an offset) or a duration ago (7d)",
    )
    sync.add_argument(
        "--until", metavar="WHEN", help="end of the window, in the same forms (default: now)"
    )
    sync.add_argument(
        "--source",
        action="append",
        default=None,
        metavar="NAME",
        help="only this source (repeatable); the others' credentials are not needed",
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="print each event as each sink would get it (its filters and renames applied), one"
        " JSON line per sink and event; send and store nothing",
    )
    sync.add_argument(
        "--max-wait",
        type=duration_arg,
        default=600.0,
        metavar="DURATION",
        help="how long to wait for delivery once everything is read, e.g. 10m (default 10m);"
        " the outbox keeps the rest for the daemon",
    )
    sync.add_argument(
        "--parallel",
        type=int,
        default=4,
        metavar="N",
        help="targets read at the same time (default 4)",
    )
    sync.set_defaults(handler=_sync)


def _sources(config: FetcherConfig, wanted: list[str] | None) -> list[str]:
    enabled = [s.name for s in config.sources if s.enabled]
    if not wanted:
        return enabled
    unknown = [n for n in wanted if n not in enabled]
    if unknown:
        raise UsageError(
            f"no enabled source named {', '.join(unknown)} (have: {', '.join(enabled)})"
        )
    return list(dict.fromkeys(wanted))


def _sync(args: argparse.Namespace) -> int:
    config = load(args.config, sources=args.source)
    until = parse_when(args.until) if args.until else utc_now()
    since = parse_when(args.since)
    if since >= until:
        raise UsageError(f"--since ({format_rfc3339(since)}) must be before --until")
    if args.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    names = _sources(config, args.source)
    if args.dry_run:
        return _dry_run(config, names, since, until)
    log_state_location(config)
    return _backfill(config, names, since, until, args)


def _learned(config: FetcherConfig) -> Any:
    """The existing state store, for what sinks learned (None when nothing has run yet)."""
    try:
        return open_existing_store(config)
    except StoreError:
        return None


def _dry_run(config: FetcherConfig, names: list[str], since: datetime, until: datetime) -> int:
    """What the real run would send to each sink, as JSON lines, without a request.

    Each line is the sink's wire form (``{"sink": NAME, …body}``), with what a sink learned from
    its destination read from an existing state store; nothing is stored or created.
    """
    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.providers import ProviderContext

    context = ProviderContext(metrics=Metrics(), defaults=config.defaults)
    sinks = {s.name: s for s in config.sinks if s.enabled}
    read = lines = 0
    with ExitStack() as stack:
        store = _learned(config)
        try:
            senders = stack.enter_context(open_sinks(config, store))
        finally:
            if store is not None:
                store.close()
        read, lines = _preview(
            config,
            names,
            since=since,
            until=until,
            context=context,
            sinks=sinks,
            senders=senders,
        )
    print(
        f"{plural(read, 'event')} read, {plural(lines, 'delivery', 'deliveries')} to"
        f" {plural(len(sinks), 'sink')}"
        " (dry run: nothing stored or sent)",
        file=sys.stderr,
    )
    return EXIT_OK


def _preview(
    config: FetcherConfig,
    names: list[str],
    *,
    since: datetime,
    until: datetime,
    context: ProviderContext,
    sinks: dict[str, SinkConfig],
    senders: dict[str, Sink],
) -> tuple[int, int]:
    """Print each delivery of a dry run; the counts of events read and lines printed."""
    from deploy_fetcher.engine.rules import apply_rules
    from deploy_fetcher.engine.select import select
    from deploy_fetcher.plugins import load_provider

    read = lines = 0
    try:
        for name in names:
            source = config.source(name)
            provider = load_provider(source.provider)(source, context)
            wanted = [sinks[s] for s in config.sink_names_for(source)]
            try:
                for target in provider.targets():
                    for page in provider.backfill(target, since, until):
                        for event in sorted(page.events, key=lambda e: e.happened_at):
                            read += 1
                            kept = apply_rules(event, config.rules)
                            for sink in wanted:
                                sent = select(sink, kept) if kept is not None else None
                                if sent is not None:
                                    lines += 1
                                    body = senders[sink.name].wire(sent)
                                    print(json.dumps({"sink": sink.name, **body}), flush=False)
            finally:
                provider.close()
    finally:
        context.shared.close()
        sys.stdout.flush()
    return read, lines


@dataclass
class _SinkCount:
    offered: int = 0
    queued: int = 0


@dataclass
class _Tally:
    """What the reading threads have done so far (shared with the display; take the lock)."""

    targets: int = 0
    targets_done: int = 0
    events: int = 0
    read_seconds: float | None = None  # set when the last target is read
    sinks: dict[str, _SinkCount] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def page(self, events: int) -> None:
        with self.lock:
            self.events += events

    def counts(self, counts: dict[str, tuple[int, int]]) -> None:
        with self.lock:
            for sink, (offered, inserted) in counts.items():
                entry = self.sinks.setdefault(sink, _SinkCount())
                entry.offered += offered
                entry.queued += inserted


@dataclass
class _SinkView:
    sink: str
    queued: int
    already: int
    delivered: int
    dead: int
    pending: int
    rate: float
    eta: float | None
    note: str


class _Progress:
    """Numbers for the display, computed from the tally, the workers and the store.

    Rates are measured over the last :data:`RATE_WINDOW` seconds, so the ETA follows the current
    pace (delivery speeds up once reading is over) rather than the average since the start.
    """

    def __init__(self, runtime: Any, tally: _Tally, sinks: list[str]) -> None:
        self.runtime = runtime
        self.tally = tally
        self.sinks = sinks
        self.started = time.monotonic()
        self._samples: dict[str, deque[tuple[float, int]]] = {s: deque() for s in sinks}

    def _rate(self, sink: str, delivered: int) -> float:
        now = time.monotonic()
        samples = self._samples[sink]
        samples.append((now, delivered))
        while len(samples) > 1 and now - samples[0][0] > RATE_WINDOW:
            samples.popleft()
        then, before = samples[0]
        if now - then < REFRESH:
            return delivered / max(now - self.started, 1e-6)
        return (delivered - before) / (now - then)

    def views(self) -> list[_SinkView]:
        out = []
        with self.tally.lock:
            counts = {s: (c.offered, c.queued) for s, c in self.tally.sinks.items()}
        for sink in self.sinks:
            offered, queued = counts.get(sink, (0, 0))
            worker = self.runtime.workers[sink]
            pending = self.runtime.store.pending_count(sink)
            rate = self._rate(sink, worker.delivered)
            out.append(
                _SinkView(
                    sink=sink,
                    queued=queued,
                    already=offered - queued,
                    delivered=worker.delivered,
                    dead=worker.dead,
                    pending=pending,
                    rate=rate,
                    eta=pending / rate if rate > 0 and pending else None,
                    note=self.runtime.health.paused_sinks.get(sink, ""),
                )
            )
        return out

    def reading(self) -> tuple[int, int, int, float]:
        """Events read, targets read, targets in all, and seconds spent reading."""
        with self.tally.lock:
            done, targets, events = self.tally.targets_done, self.tally.targets, self.tally.events
            seconds = self.tally.read_seconds
        return events, done, targets, seconds or time.monotonic() - self.started

    def headline(self) -> str:
        events, done, targets, seconds = self.reading()
        state = "read" if done == targets and targets else "reading"
        return (
            f"{state} {plural(events, 'event')} from {done}/{plural(targets, 'target')}"
            f" in {seconds:.0f}s ({events / max(seconds, 1e-6):.0f}/s);"
            f" delivering for {time.monotonic() - self.started:.0f}s"
        )


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@contextmanager
def _display(progress: _Progress) -> Iterator[Callable[[], None]]:
    """A refresh function: a live table on a terminal, a log line every few seconds otherwise."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.live import Live
        from rich.table import Table

        def build() -> Table:
            table = Table(title=progress.headline(), title_justify="left")
            for column in ("sink", "queued", "already delivered", "delivered", "dead", "pending"):
                table.add_column(column, justify="left" if column == "sink" else "right")
            table.add_column("rate", justify="right")
            table.add_column("ETA", justify="right")
            table.add_column("note")
            for v in progress.views():
                table.add_row(
                    v.sink,
                    str(v.queued),
                    str(v.already),
                    f"{v.delivered}/{v.queued}",
                    str(v.dead),
                    str(v.pending),
                    f"{v.rate:.0f}/s",
                    _eta(v.eta),
                    v.note,
                )
            return table

        with Live(build(), console=Console(stderr=True), refresh_per_second=4) as live:
            yield lambda: live.update(build())
            live.update(build())
        return
    last = [0.0]

    def log_line(*, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - last[0] < LOG_EVERY:
            return
        last[0] = now
        events, done, targets, seconds = progress.reading()
        _log.info(
            "sync.progress",
            events_read=events,
            targets_read=f"{done}/{targets}",
            read_seconds=round(seconds, 1),
            sinks={
                v.sink: {
                    "queued": v.queued,
                    "already_delivered": v.already,
                    "delivered": v.delivered,
                    "dead": v.dead,
                    "pending": v.pending,
                    "rate": round(v.rate, 1),
                    "eta": _eta(v.eta),
                }
                for v in progress.views()
            },
        )

    yield log_line
    log_line(force=True)


def _read_all(
    runtime: Any, tally: _Tally, since: datetime, until: datetime, parallel: int
) -> list[Any]:
    """Read every target of every chosen source, ``parallel`` at a time; their results in order."""
    work = []
    for provider in runtime.providers.values():
        work += [(provider, target) for target in provider.targets()]
    with tally.lock:
        tally.targets = len(work)

    started = time.monotonic()

    def one(provider: Any, target: str) -> Any:
        try:
            return runtime.poller.backfill_target(
                provider, target, since, until, progress=tally.page, sink_progress=tally.counts
            )
        finally:
            with tally.lock:
                tally.targets_done += 1
                if tally.targets_done == tally.targets:
                    tally.read_seconds = time.monotonic() - started

    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sync-read")
    futures: list[Future[Any]] = [pool.submit(one, p, t) for p, t in work]
    pool.shutdown(wait=False)
    return futures


def _backfill(
    config: FetcherConfig, names: list[str], since: datetime, until: datetime, args: Any
) -> int:
    from deploy_fetcher.cli._deliver import drain
    from deploy_fetcher.engine import Runtime

    runtime = Runtime(config, sources=names)
    tally = _Tally()
    fed = sorted(runtime.workers)
    with ExitStack() as stack:
        stack.callback(runtime.close)
        runtime.start_delivery()
        stack.callback(runtime.stop_delivery, 5.0)
        progress = _Progress(runtime, tally, fed)
        refresh = stack.enter_context(_display(progress))
        futures = _read_all(runtime, tally, since, until, args.parallel)
        try:
            while not all(f.done() for f in futures):
                refresh()
                time.sleep(REFRESH)
        except KeyboardInterrupt:
            runtime.stop.set()
            raise
        results = [f.result() for f in futures]

        def tick(_pending: dict[str, int]) -> None:
            refresh()

        pending_by_sink = drain(runtime, fed, args.max_wait, tick=tick)
        refresh()
        views = progress.views()
    return _report(args, results, views, pending_by_sink)


def _report(args: Any, results: list[Any], views: list[_SinkView], pending: dict[str, int]) -> int:
    targets = [
        {
            "target": r.key,
            "outcome": r.outcome,
            "events": r.events,
            "queued": r.queued,
            "error": r.error,
        }
        for r in results
    ]
    sinks = [
        {
            "sink": v.sink,
            "queued": v.queued,
            "already_delivered": v.already,
            "delivered": v.delivered,
            "dead_lettered": v.dead,
            "still_queued": pending.get(v.sink, 0),
            "note": v.note,
        }
        for v in views
    ]
    failed = any(r.outcome != "ok" for r in results)
    dead = any(v.dead for v in views)
    left = sum(pending.values())
    if args.output == "json":
        print_json({"targets": targets, "sinks": sinks, "ok": not (failed or dead or left)})
    else:
        emit(args, targets, columns=["target", "outcome", "events", "queued", "error"])
        if sys.stdout.isatty() and sys.stderr.isatty():
            return _exit_code(failed, dead, left)  # the live table on screen says the rest
        print()
        emit(
            args,
            sinks,
            columns=[
                "sink",
                "queued",
                "already_delivered",
                "delivered",
                "dead_lettered",
                "still_queued",
                "note",
            ],
        )
    return _exit_code(failed, dead, left)


def _exit_code(failed: bool, dead: bool, left: int) -> int:
    if left:
        print(
            f"fetcher: {plural(left, 'event')} still queued; a running daemon or the next sync"
            " delivers them",
            file=sys.stderr,
        )
    return EXIT_FAILED if failed or dead or left else EXIT_OK

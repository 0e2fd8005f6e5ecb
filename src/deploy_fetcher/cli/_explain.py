"""``fetcher explain DEPLOYMENT_ID``: why the dashboard shows what it shows.

It puts side by side what the CI system says today and what the fetcher did with it:

1. **read** — the deployment read again from its CI system (the provider's raw objects where the
   adapter records them, and the canonical events its mapping gives, before any rule);
2. **rules** — each event through the global rules (renames, templates, include/exclude);
3. **sinks** — each sink's filters and renames, the body it sends (its wire form: a dashboard that
   learned the original contract's three statuses gets ``in-progress`` for ``waiting``), and what
   the outbox holds for it: delivered, queued (attempts, next try), dead-lettered (the sink's
   answer), or never queued (and why).

The outbox side needs the state store (delivered rows stay ``state.delivered_retention``); the
read side needs the source's credentials. ``--no-reread`` shows the outbox side alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from deploy_fetcher.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    config_option,
    describe,
    load,
    open_existing_store,
    output_option,
    plural,
    print_json,
)
from deploy_fetcher.cli._wire import differences, open_sinks
from deploy_fetcher.config import FetcherConfig
from deploy_fetcher.engine.rules import apply_rules
from deploy_fetcher.engine.select import select
from deploy_fetcher.model import DeployEvent, format_rfc3339
from deploy_fetcher.sinks import Sink
from deploy_fetcher.store import OutboxRow

__all__ = ["register"]

#: How far around the stored events the CI system is read again (late statuses, clock skew).
MARGIN = timedelta(hours=1)
_LISTED = 10
_SHOWN = ("service", "environment", "status", "happened_at", "version", "sha", "ref", "run_url")


def register(commands: Any) -> None:
    """Add the subcommand."""
    explain = commands.add_parser(
        "explain",
        parents=[config_option(), output_option()],
        help="why a deployment looks as it does: what was read, the rules applied, each delivery",
        description=(
            "Read one deployment again from its CI system and show, for each of its events, the"
            " rules applied and what each sink got (delivered, queued, dead-lettered or filtered"
            " out)."
        ),
    )
    explain.add_argument("deployment_id", metavar="DEPLOYMENT_ID", help="e.g. gh-run-123-1")
    explain.add_argument(
        "--source",
        metavar="NAME",
        help="the source it comes from (default: the one its stored events name)",
    )
    explain.add_argument(
        "--target",
        metavar="TARGET",
        help="the repository/project it belongs to (default: found from its stored events)",
    )
    explain.add_argument(
        "--since",
        metavar="WHEN",
        help="where to read from when nothing is stored yet (date, time or duration ago, e.g. 2d)",
    )
    explain.add_argument(
        "--no-reread",
        action="store_true",
        help="show only what the outbox holds; make no request to the CI system",
    )
    explain.set_defaults(handler=_explain)


@dataclass
class _SinkStep:
    sink: str
    verdict: str
    event: DeployEvent | None
    row: OutboxRow | None
    #: The body the sink sends for ``event`` (None when nothing goes to it, or it is disabled).
    wire: dict[str, Any] | None = None


@dataclass
class _Trace:
    read: DeployEvent | None
    after_rules: DeployEvent | None
    rule_changes: list[str] = field(default_factory=list)
    sinks: list[_SinkStep] = field(default_factory=list)


def _changes(before: DeployEvent, after: DeployEvent | None) -> list[str]:
    if after is None:
        return ["dropped by rules.include / rules.exclude"]
    return [
        f"{name}: {getattr(before, name)!r} → {getattr(after, name)!r}"
        for name in ("service", "environment")
        if getattr(before, name) != getattr(after, name)
    ]


def _row_state(row: OutboxRow) -> str:
    if row.state == "delivered":
        tries = plural(row.attempts, "failed try", "failed tries")
        return f"delivered (queued {format_rfc3339(row.created_at)}, {tries})"
    if row.state == "dead":
        return f"dead-lettered after {plural(row.attempts, 'attempt')}: {row.last_error or ''}"
    due = format_rfc3339(row.next_attempt_at)
    tail = f", last error: {row.last_error}" if row.last_error else ""
    return (
        f"queued since {format_rfc3339(row.created_at)}, {plural(row.attempts, 'attempt')},"
        f" due {due}{tail}"
    )


def _key(event: DeployEvent) -> tuple[str, datetime]:
    return event.status.value, event.happened_at


def _verdict(
    sink: str, after: DeployEvent | None, selected: DeployEvent | None, row: OutboxRow | None
) -> str:
    """What became of one event at one sink that the source feeds."""
    if after is None:
        return "not queued: dropped by the rules"
    if selected is None:
        return f"not queued: left out by sinks[{sink}].include/exclude"
    if row is None:
        return "expected, but not in the outbox (not read yet, or pruned)"
    return _row_state(row)


def _trace(
    config: FetcherConfig,
    source_name: str,
    read: Sequence[DeployEvent],
    rows: Sequence[OutboxRow],
    sinks: Mapping[str, Sink],
) -> list[_Trace]:
    """Each read event through the rules and every sink, matched with the outbox rows."""
    by_sink: dict[str, dict[tuple[str, datetime], OutboxRow]] = {}
    for each in rows:
        by_sink.setdefault(each.sink, {})[_key(each.event)] = each
    source = config.source(source_name) if source_name in {s.name for s in config.sources} else None
    wanted = config.sink_names_for(source) if source is not None else [s.name for s in config.sinks]
    traces: list[_Trace] = []
    matched: set[int] = set()
    for event in read:
        after = apply_rules(event, config.rules)
        trace = _Trace(event, after, _changes(event, after))
        for sink in config.sinks:
            row = by_sink.get(sink.name, {}).get(_key(event))
            if row is not None:
                matched.add(row.id)
            if not sink.enabled:
                trace.sinks.append(_SinkStep(sink.name, "sink disabled", None, row))
                continue
            if sink.name not in wanted:
                trace.sinks.append(_SinkStep(sink.name, "not a sink of this source", None, row))
                continue
            selected = select(sink, after) if after is not None else None
            verdict = _verdict(sink.name, after, selected, row)
            wire = _wire(sinks, sink.name, selected)
            trace.sinks.append(_SinkStep(sink.name, verdict, selected, row, wire))
        traces.append(trace)
    for stale in rows:  # stored, but not what the CI system says today
        if stale.id not in matched:
            note = _row_state(stale) + " (no longer read so)"
            wire = _wire(sinks, stale.sink, stale.event)
            step = _SinkStep(stale.sink, note, stale.event, stale, wire)
            traces.append(_Trace(None, None, [], [step]))
    return traces


def _wire(sinks: Mapping[str, Sink], name: str, event: DeployEvent | None) -> dict[str, Any] | None:
    sink = sinks.get(name)
    return sink.wire(event) if sink is not None and event is not None else None


def _find_target(provider: Any, rows: Sequence[OutboxRow], wanted: str | None) -> str:
    """The target the deployment belongs to: named, or the one its stored events mention."""
    if wanted:
        return wanted
    targets = list(provider.targets())
    if len(targets) == 1:
        return str(targets[0])
    mentioned = {value for row in rows for value in row.event.metadata.values()}
    hits = [t for t in targets if t in mentioned]
    if len(hits) == 1:
        return str(hits[0])
    shown = ", ".join(targets[:_LISTED]) + (" …" if len(targets) > _LISTED else "")
    raise UsageError(f"which target? give --target (the source has: {shown})")


def _reread(
    config: FetcherConfig, args: argparse.Namespace, source: str, rows: Sequence[OutboxRow]
) -> tuple[str, list[DeployEvent], list[tuple[str, Any]], str]:
    from deploy_fetcher.cli._common import parse_when
    from deploy_fetcher.errors import FetcherError
    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.model import utc_now
    from deploy_fetcher.plugins import load_provider
    from deploy_fetcher.providers import ProviderContext

    source_config = config.source(source)
    context = ProviderContext(metrics=Metrics(), defaults=config.defaults)
    provider = load_provider(source_config.provider)(source_config, context)
    try:
        target = _find_target(provider, rows, args.target)
        if rows:
            since = min(r.event.happened_at for r in rows) - MARGIN
            until = max(r.event.happened_at for r in rows) + MARGIN
        elif args.since:
            since, until = parse_when(args.since), utc_now()
        else:
            raise UsageError("nothing stored for it: give --since to say where to read from")
        until = min(until, utc_now() + timedelta(seconds=1))
        try:
            found = provider.reread(target, args.deployment_id, since=since, until=until)
        except FetcherError as exc:
            return target, [], [], f"reading it again failed: {describe(exc)}"
        return target, list(found.events), list(found.objects), ""
    finally:
        provider.close()
        context.shared.close()


def _event_json(event: DeployEvent | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return event.model_dump(mode="json", exclude_defaults=True)


def _explain(args: argparse.Namespace) -> int:
    config = load(args.config, log_level="warning")
    sink_names = [s.name for s in config.sinks]
    with ExitStack() as stack:
        store = open_existing_store(config)
        try:
            rows = store.rows_for(args.deployment_id, sinks=sink_names)
            # The sinks read what they learned (a status set) now: the store is not held open
            # while the CI system is read again.
            sinks = stack.enter_context(open_sinks(config, store))
        finally:
            store.close()
        return _explain_rows(config, args, rows, sinks)


def _explain_rows(
    config: FetcherConfig,
    args: argparse.Namespace,
    rows: Sequence[OutboxRow],
    sinks: Mapping[str, Sink],
) -> int:
    sources = sorted({r.source for r in rows} | ({args.source} if args.source else set()))
    if not sources:
        print(
            f"fetcher: no event of {args.deployment_id!r} is in the outbox (delivered rows are"
            " kept for state.delivered_retention); give --source and --since to read it anyway",
            file=sys.stderr,
        )
        return EXIT_FAILED
    source = args.source or sources[0]
    if source not in {s.name for s in config.sources}:
        raise UsageError(f"no source named {source!r} in the configuration")
    target, problem = "", ""
    read: list[DeployEvent] = []
    objects: list[tuple[str, Any]] = []
    if not args.no_reread:
        target, read, objects, problem = _reread(config, args, source, rows)
    if args.no_reread or problem:
        read = sorted({_key(r.event): r.event for r in rows}.values(), key=lambda e: e.happened_at)
    found = _Explanation(
        deployment_id=args.deployment_id,
        source=source,
        target=target,
        reread=not args.no_reread and not problem,
        objects=objects,
        problem=problem,
        traces=_trace(config, source, read, rows, sinks),
    )
    if args.output == "json":
        print_json(_as_json(found))
    else:
        _print(found)
    return EXIT_FAILED if problem else EXIT_OK


@dataclass
class _Explanation:
    deployment_id: str
    source: str
    target: str
    reread: bool
    objects: Sequence[tuple[str, Any]]
    problem: str
    traces: Sequence[_Trace]


def _as_json(found: _Explanation) -> dict[str, Any]:
    return {
        "deployment_id": found.deployment_id,
        "source": found.source,
        "target": found.target or None,
        "reread": found.reread,
        "problem": found.problem or None,
        "objects": [{"what": what, "data": data} for what, data in found.objects],
        "events": [
            {
                "read": _event_json(t.read),
                "rules": t.rule_changes,
                "after_rules": _event_json(t.after_rules),
                "sinks": [
                    {
                        "sink": step.sink,
                        "verdict": step.verdict,
                        "row": step.row.id if step.row else None,
                        "state": step.row.state if step.row else None,
                        "sent": _event_json(step.event),
                        "wire": step.wire,
                    }
                    for step in t.sinks
                ],
            }
            for t in found.traces
        ],
    }


def _read_lines(event: DeployEvent, trace: _Trace) -> list[str]:
    fields = {
        name: getattr(event, name) for name in _SHOWN if name not in {"status", "happened_at"}
    }
    shown = ", ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
    lines = [f"  mapped:  {shown}"]
    if event.parent_deployments:
        lines.append(f"  parents: {', '.join(event.parent_deployments)}")
    metadata = ", ".join(f"{k}={v}" for k, v in sorted(event.metadata.items()))
    if metadata:
        lines.append(f"  from:    {metadata}")
    lines.append(f"  rules:   {'; '.join(trace.rule_changes) or 'nothing changed'}")
    return lines


def _print_sinks(trace: _Trace) -> None:
    for step in trace.sinks:
        renamed = ""
        if step.event is not None and trace.after_rules is not None:
            pairs = _changes(trace.after_rules, step.event)
            renamed = f" [renamed: {'; '.join(pairs)}]" if pairs else ""
        if step.event is not None and step.wire is not None:
            sent = differences(step.event, step.wire)
            renamed += f" [sent as {'; '.join(sent)}]" if sent else ""
        print(f"  → {step.sink}: {step.verdict}{renamed}")


def _print(found: _Explanation) -> None:
    import json

    where = f"source {found.source}" + (f", target {found.target}" if found.target else "")
    print(f"{found.deployment_id}  ({where})")
    if found.problem:
        print(f"  {found.problem}; showing what the outbox holds")
    elif not found.reread:
        print("  not read again (--no-reread); showing what the outbox holds")
    if found.objects:
        print("\nread from the CI system:")
        for what, data in found.objects:
            print(f"  {what}: {json.dumps(data, sort_keys=True)}")
    previous: list[str] = []
    for trace in found.traces:
        event = trace.read or (trace.sinks[0].event if trace.sinks else None)
        if event is None:
            continue
        print(f"\n{format_rfc3339(event.happened_at)}  {event.status.value}")
        if trace.read is not None:
            lines = _read_lines(trace.read, trace)
            # Events of one deployment mostly share these: say them once, then what changed.
            print("\n".join(lines) if lines != previous else "  (mapped as above)")
            previous = lines
        else:
            print("  stored, but the CI system no longer gives this event")
        _print_sinks(trace)

"""Provider-agnostic mapping rules: renames, templates, filters, promotion-order parents.

Pure functions over :class:`~deploy_fetcher.model.DeployEvent`; the only I/O (looking up an upstream
deployment in the store) is passed in as a callable.
"""

from __future__ import annotations

import fnmatch
import string
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from pydantic import ValidationError

from deploy_fetcher.config import NameRule, RulesConfig
from deploy_fetcher.engine.select import rename
from deploy_fetcher.model import DeployEvent, Status

__all__ = ["apply_rules", "fill_parents", "promotion_order"]

_log = structlog.get_logger(__name__)
_warned: set[tuple[str, str]] = set()

#: (service, environment, sha) → deployment_id of the latest success there, or None.
SuccessLookup = Callable[[str, str, str], str | None]


class _Fields(dict[str, Any]):
    """Template namespace: event fields and metadata; an unknown name is an error we report."""

    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


def _render(template: str, event: DeployEvent, current: str, what: str) -> str:
    fields = _Fields(event.metadata)
    fields.update(
        {
            "service": event.service if what != "service" else current,
            "environment": event.environment if what != "environment" else current,
            "provider": event.provider,
            "source": event.source,
            "status": event.status.value,
            "version": event.version or "",
            "ref": event.ref or "",
            "sha": event.sha or "",
            "short_sha": (event.sha or "")[:7],
            "actor": event.actor or "",
        }
    )
    try:
        rendered = string.Formatter().vformat(template, (), fields)
    except Exception as exc:
        # A template problem keeps the name it had; it must never stop a source. Logged once per
        # template and problem, not once per event.
        problem = f"{type(exc).__name__}: {exc}"
        if (template, problem) not in _warned:
            _warned.add((template, problem))
            _log.warning("rules.template_failed", template=template, field=what, error=problem)
        return current
    return rendered.strip() or current


def _rename(rule: NameRule, event: DeployEvent, value: str, what: str) -> str:
    value = rename(rule.rename, value)
    if rule.template:
        value = _render(rule.template, event, value, what)
    return value


def apply_rules(event: DeployEvent, rules: RulesConfig) -> DeployEvent | None:
    """Rename service/environment, then filter; None when the rules drop the event."""
    service = _rename(rules.service, event, event.service, "service")
    environment = _rename(rules.environment, event, event.environment, "environment")
    if (service, environment) != (event.service, event.environment):
        try:
            # Validated, not model_copy: an empty or over-long name must not reach the outbox.
            event = DeployEvent.model_validate(
                {**event.model_dump(), "service": service, "environment": environment}
            )
        except ValidationError as exc:
            _log.warning(
                "rules.rename_invalid",
                service=service,
                environment=environment,
                error=exc.errors()[0]["msg"],
            )
    if rules.include is not None and not rules.include.matches(event):
        return None
    if rules.exclude is not None and rules.exclude.excludes(event):
        return None
    return event


def promotion_order(rules: RulesConfig, service: str) -> list[str]:
    """The environment order that applies to ``service`` (exact name first, then the first glob)."""
    if service in rules.promotion:
        return rules.promotion[service]
    for pattern, order in rules.promotion.items():
        if fnmatch.fnmatchcase(service, pattern):
            return order
    return []


def fill_parents(
    events: Sequence[DeployEvent], rules: RulesConfig, lookup: SuccessLookup
) -> list[DeployEvent]:
    """Give events without parents the latest upstream success of the same service and sha.

    Successes earlier in the same batch count too (a page can hold dev's success and prod's start).
    """
    if not rules.promotion:
        return list(events)
    seen: dict[tuple[str, str, str], str] = {}
    out: list[DeployEvent] = []
    for original in events:
        event = original
        order = promotion_order(rules, event.service)
        if not event.parent_deployments and event.sha and event.environment in order:
            index = order.index(event.environment)
            if index > 0:
                upstream = order[index - 1]
                key = (event.service, upstream, event.sha)
                parent = seen.get(key) or lookup(*key)
                if parent and parent != event.deployment_id:
                    event = event.model_copy(update={"parent_deployments": (parent,)})
        if event.status is Status.SUCCESS and event.sha:
            seen[(event.service, event.environment, event.sha)] = event.deployment_id
        out.append(event)
    return out

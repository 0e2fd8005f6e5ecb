"""The raw objects behind one deployment's events, kept while ``fetcher explain`` reads it again.

An operator asking why the dashboard shows what it shows wants the CI system's own objects next to
the events mapped from them. Adapters call :func:`record_raw` where they map, with the objects they
read and the events they got; outside a reread it is one context-variable lookup and keeps nothing.
:func:`reread_recording` (what the HTTP adapters' ``reread`` is) walks the window as the default
``Provider.reread`` does, with a recording open for one deployment id, and returns the objects whose
events carry that id, each once, in the order they were read.

The recording lives in a context variable: the walk runs in the caller's thread, and a poll running
at the same time in another thread records nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.providers._base import Provider, Reread

__all__ = ["Recording", "record_raw", "recording", "reread_recording"]


@dataclass
class Recording:
    """The objects recorded for one deployment id: ``(what, JSON)`` pairs, each ``what`` once."""

    deployment_id: str
    objects: list[tuple[str, Any]] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def keep(self, what: str, raw: Any, events: Sequence[DeployEvent]) -> None:
        """Keep ``raw`` when one of ``events`` is this deployment's (a copy: later edits don't show)."""
        if what in self._seen or not any(e.deployment_id == self.deployment_id for e in events):
            return
        self._seen.add(what)
        self.objects.append((what, json.loads(json.dumps(raw, default=str))))


_active: ContextVar[Recording | None] = ContextVar("deploy_fetcher_recording", default=None)


@contextmanager
def recording(deployment_id: str) -> Iterator[Recording]:
    """Record, in this context, the raw objects that map to ``deployment_id``."""
    found = Recording(deployment_id)
    token = _active.set(found)
    try:
        yield found
    finally:
        _active.reset(token)


def record_raw(what: str, raw: Any, events: Sequence[DeployEvent]) -> None:
    """An adapter read ``raw`` (named ``what``: ``workflow run 42``) and mapped it to ``events``."""
    found = _active.get()
    if found is not None:
        found.keep(what, raw, events)


def reread_recording(
    provider: Provider, target: str, deployment_id: str, *, since: datetime, until: datetime
) -> Reread:
    """``Provider.reread``'s walk of the window, with the raw objects the events came from."""
    with recording(deployment_id) as found:
        read = Provider.reread(provider, target, deployment_id, since=since, until=until)
    return replace(read, objects=tuple(found.objects))

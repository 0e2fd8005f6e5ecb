"""The interface every sink implements.

A sink knows one destination's wire format and how to read its answers; it never retries by itself
and never raises for an HTTP outcome. The delivery worker owns retries, backoff, pausing and dead
letters, and decides from the :data:`Delivery` value alone:

* :class:`Delivered` — done, mark the outbox row delivered;
* :class:`Retry` — timeout, 5xx, 408, 429: back off (at least ``after`` seconds when the server said so);
* :class:`Unauthorized` — 401/403: the credential is broken, not the event; pause the sink, keep the rows;
* :class:`Rejected` — any other 4xx: dead-letter the row with ``reason`` (the response body).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from deploy_fetcher.config import SinkConfig
    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.model import DeployEvent
    from deploy_fetcher.store import StateStore

__all__ = [
    "CheckResult",
    "Delivered",
    "Delivery",
    "Rejected",
    "Retry",
    "Sink",
    "SinkContext",
    "Unauthorized",
    "ValueStore",
]


@dataclass(frozen=True)
class Delivered:
    """The destination accepted the event."""

    status_code: int | None = None


@dataclass(frozen=True)
class Retry:
    """A passing failure; ``after`` is the server's Retry-After in seconds, when it gave one."""

    reason: str
    after: float | None = None
    status_code: int | None = None


@dataclass(frozen=True)
class Unauthorized:
    """The destination refused the credential (401/403)."""

    reason: str
    status_code: int | None = None


@dataclass(frozen=True)
class Rejected:
    """The destination refused this event for good; ``reason`` is kept in the dead letter."""

    reason: str
    status_code: int | None = None


Delivery = Delivered | Retry | Unauthorized | Rejected


@dataclass(frozen=True)
class CheckResult:
    """What ``fetcher check`` says about a sink: ok, a problem, or "cannot verify without writing"."""

    ok: bool
    message: str
    verified: bool = True


class ValueStore(Protocol):
    """Small durable values (the state store's): what a sink learned about its destination."""

    def get_value(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        ...

    def set_value(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing the previous one."""
        ...


@dataclass
class SinkContext:
    """What the core hands to every sink.

    ``values`` is the state store when the sink runs inside the engine; None where nothing is kept
    (``fetcher check``), and a sink then learns again in each process.
    """

    metrics: Metrics
    user_agent: str
    values: ValueStore | None = None


class Sink(abc.ABC):
    """Base class of every sink (registered under ``deploy_fetcher.sinks``).

    Subclasses set ``name`` (the entry point's name, the ``type:`` key in YAML) and ``config_model``.
    ``send`` is called from one delivery thread per sink, never concurrently for one instance, unless
    the sink sets ``concurrent``: then from one thread per delivery lane (``lanes`` in its config).
    """

    name: ClassVar[str]
    config_model: ClassVar[type[SinkConfig]]
    #: Whether ``send`` may run in several threads at once (each event a request of its own). A
    #: sink that appends to one file, or keeps per-event state, leaves it False: one lane.
    concurrent: ClassVar[bool] = False

    def __init__(self, config: SinkConfig, context: SinkContext) -> None:
        self.config = config
        self.context = context

    @abc.abstractmethod
    def send(self, event: DeployEvent) -> Delivery:
        """Deliver one event and classify the outcome."""

    def wire(self, event: DeployEvent) -> dict[str, Any]:
        """The body ``send`` would post for ``event`` now, without a request.

        ``fetcher explain`` and ``sync --dry-run`` show it: what the destination really receives
        (its own field names, its status spelling, a learned status set) can differ from the event.
        Sinks with a wire format of their own override it; the default is the canonical event.
        """
        return event.model_dump(mode="json", exclude_defaults=True)

    def check(self) -> CheckResult:
        """Verify URL and credentials without creating data, where the destination allows it."""
        return CheckResult(
            ok=True, verified=False, message="cannot be verified without sending an event"
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @classmethod
    def open_state_store(cls, config: SinkConfig, slot: str) -> StateStore | None:
        """A state store keeping the cursors at this destination, under ``slot``; None if it cannot.

        The ``dashboard`` state backend (``state.dashboard_sink``) asks the sink it names.
        """
        del config, slot
        return None

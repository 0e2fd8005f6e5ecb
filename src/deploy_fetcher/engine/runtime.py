"""Everything a running fetcher holds, built once from the configuration.

The daemon, ``fetcher sync`` and the tests all build a :class:`Runtime`; only the driver differs
(the scheduler, a one-off backfill, a test calling :meth:`Poller.run_target` directly).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial

import structlog

from deploy_fetcher._version import __version__
from deploy_fetcher.config import FetcherConfig, SinkConfig, SourceConfig
from deploy_fetcher.engine.delivery import DeliveryPolicy, DeliveryWorker
from deploy_fetcher.engine.health import OUTCOME_PREFIX, Health, TargetState, outcome_record
from deploy_fetcher.engine.poller import Poller
from deploy_fetcher.engine.replicas import Coordinator
from deploy_fetcher.errors import StoreError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.plugins import load_provider, load_sink
from deploy_fetcher.providers import Provider, ProviderContext
from deploy_fetcher.redaction import redact
from deploy_fetcher.sinks import Sink, SinkContext
from deploy_fetcher.store import LeaseBoard, StateStore, open_store

__all__ = ["Runtime"]

_log = structlog.get_logger(__name__)

USER_AGENT = f"deploy-fetcher/{__version__}"
_NOTHING_POLLED_YET = ("no source has completed a poll yet", "no source has been polled yet")

#: What a plugin resolver returns: the plugin class, or any callable building an instance (tests).
ProviderFactory = Callable[[SourceConfig, ProviderContext], Provider]
SinkFactory = Callable[[SinkConfig, SinkContext], Sink]


class Runtime:
    """Store, providers, sinks, poller and delivery workers of one process."""

    def __init__(
        self,
        config: FetcherConfig,
        *,
        store: StateStore | None = None,
        metrics: Metrics | None = None,
        policy: DeliveryPolicy | None = None,
        sources: Sequence[str] | None = None,
        provider_resolver: Callable[[str], ProviderFactory] = load_provider,
        sink_resolver: Callable[[str], SinkFactory] = load_sink,
        coordinate: bool = False,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.health = Health()
        self.stop = threading.Event()
        self.store = store or open_store(config)
        self.context = ProviderContext(
            metrics=self.metrics, defaults=config.defaults, stop=self.stop
        )
        chosen = [s for s in config.sources if s.enabled and (sources is None or s.name in sources)]
        self.providers: dict[str, Provider] = {
            s.name: provider_resolver(s.provider)(s, self.context) for s in chosen
        }
        sink_context = SinkContext(metrics=self.metrics, user_agent=USER_AGENT, values=self.store)
        self.sinks: dict[str, Sink] = {
            c.name: sink_resolver(c.type)(c, sink_context) for c in config.sinks if c.enabled
        }
        self.workers: dict[str, DeliveryWorker] = {
            name: DeliveryWorker(
                sink=sink,
                store=self.store,
                metrics=self.metrics,
                health=self.health,
                policy=policy or DeliveryPolicy(),
                stop_event=threading.Event(),
            )
            for name, sink in self.sinks.items()
        }
        self.health.transition_listeners.append(self._record_outcome)
        self.poller = Poller(
            config,
            self.store,
            self.metrics,
            self.health,
            on_commit=self.wake,
            should_stop=self.stop.is_set,
        )
        #: With ``coordinate`` and a store replicas can share (PostgreSQL), this process is one
        #: member of the replica set; None when it works alone.
        self.coordinator: Coordinator | None = None
        board: LeaseBoard | None = getattr(self.store, "lease_board", None)
        if coordinate and board is not None:
            self.coordinator = self._join(board)

    def _join(self, board: LeaseBoard) -> Coordinator:
        coordinator = Coordinator(
            board,
            member=getattr(self.store, "claim_token", "") or USER_AGENT,
            ttl=self.config.state.lease_ttl.total_seconds(),
            metrics=self.metrics,
            health=self.health,
            on_gained=self.wake,
        )
        coordinator.set_sinks(self.workers)
        for name, worker in self.workers.items():
            worker.gate = partial(coordinator.may_deliver, name)
        return coordinator

    def _record_outcome(self, key: str, state: TargetState) -> None:
        """Keep a target's latest outcome in the store, for ``fetcher state list`` (transitions only)."""
        try:
            self.store.set_value(OUTCOME_PREFIX + key, outcome_record(state))
        except StoreError as exc:
            _log.warning("store.outcome_not_recorded", target=key, error=str(exc))

    def wake(self, sinks: Sequence[str]) -> None:
        """Tell the workers of ``sinks`` that rows are waiting."""
        for name in sinks:
            worker = self.workers.get(name)
            if worker is not None:
                worker.wake()

    def start_delivery(self) -> None:
        """Start one delivery thread per sink."""
        for worker in self.workers.values():
            worker.start()

    def stop_delivery(self, grace: float) -> None:
        """Stop the delivery threads, giving them ``grace`` seconds in all."""
        for worker in self.workers.values():
            worker.stop_event.set()
            worker.wake()
        per_worker = grace / max(1, len(self.workers))
        for worker in self.workers.values():
            worker.stop(per_worker)

    def ready_problems(self) -> list[str]:
        """Every reason the process is not ready (empty = ready), secrets masked."""
        problems = self.health.problems()
        if self.coordinator is not None:
            if self.coordinator.owns_no_targets():
                # A replica with nothing to poll (more replicas than targets, or just joined)
                # is ready to take work over; it has no poll of its own to wait for.
                problems = [p for p in problems if p not in _NOTHING_POLLED_YET]
            problems = self.coordinator.problems() + problems
        for name, provider in self.providers.items():
            problems += [f"source {name}: {p}" for p in provider.ready_problems()]
        # /readyz is unauthenticated: whatever a plug-in or the database said, secrets masked.
        return [redact(problem) for problem in problems]

    def close(self) -> None:
        """Release clients and the store."""
        for provider in self.providers.values():
            provider.close()
        for sink in self.sinks.values():
            sink.close()
        self.context.shared.close()
        self.store.close()

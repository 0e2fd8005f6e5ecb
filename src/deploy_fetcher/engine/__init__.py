"""The engine: polling sources into the outbox and delivering the outbox to sinks."""

from deploy_fetcher.engine.delivery import DeliveryPolicy, DeliveryWorker
from deploy_fetcher.engine.health import Health
from deploy_fetcher.engine.poller import CycleResult, Poller, target_key
from deploy_fetcher.engine.runtime import Runtime

__all__ = [
    "CycleResult",
    "DeliveryPolicy",
    "DeliveryWorker",
    "Health",
    "Poller",
    "Runtime",
    "target_key",
]

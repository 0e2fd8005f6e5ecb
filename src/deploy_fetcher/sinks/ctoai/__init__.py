"""The CTO.ai sink: deployment events for the Insights Events API (seed 002)."""

from deploy_fetcher.sinks.ctoai.adapter import CtoAiSink
from deploy_fetcher.sinks.ctoai.config import CtoAiConfig

__all__ = ["CtoAiConfig", "CtoAiSink"]

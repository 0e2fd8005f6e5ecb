"""The stdout sink: one JSON line per event on standard output (``fetcher sync --dry-run``)."""

from deploy_fetcher.sinks.stdout.adapter import StdoutConfig, StdoutSink

__all__ = ["StdoutConfig", "StdoutSink"]

"""Writing events to standard output, one JSON line each, for previews and pipes."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from pydantic import Field

from deploy_fetcher.config import SinkConfig, settings_of
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks._base import CheckResult, Delivered, Delivery, Retry, Sink, SinkContext
from deploy_fetcher.sinks._document import DocumentField, document, dumps

__all__ = ["StdoutConfig", "StdoutSink"]


class StdoutConfig(SinkConfig):
    """Which fields of the canonical document each line holds; all when absent."""

    fields: list[DocumentField] | None = Field(default=None, min_length=1)


class StdoutSink(Sink):
    """One line per event, flushed at once so a pipe sees it before the next one arrives."""

    name: ClassVar[str] = "stdout"
    config_model: ClassVar[type[SinkConfig]] = StdoutConfig

    def __init__(self, config: SinkConfig, context: SinkContext) -> None:
        super().__init__(config, context)
        self.settings = settings_of(config, StdoutConfig)

    def wire(self, event: DeployEvent) -> dict[str, Any]:
        """The line's document (the configured ``fields``)."""
        return document(event, self.settings.fields)

    def send(self, event: DeployEvent) -> Delivery:
        """Write one line; a closed pipe is retried rather than losing the event."""
        line = dumps(self.wire(event)).decode("utf-8")
        stream = sys.stdout  # looked up each time: the CLI and tests may replace it
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: write to a closed file
            return Retry(reason=f"cannot write to standard output: {exc}")
        return Delivered()

    def check(self) -> CheckResult:
        """Standard output needs no credential."""
        return CheckResult(ok=True, message="writes to standard output")

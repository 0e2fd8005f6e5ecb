"""The ``jsonl`` sink's keys."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from deploy_fetcher.config import SinkConfig
from deploy_fetcher.sinks._document import DocumentField

__all__ = ["JsonlConfig"]


class JsonlConfig(SinkConfig):
    """Where the file is, when it rotates, and which fields each line holds."""

    path: Path
    #: Rotate before a line would take the file past this size; 0 never rotates.
    max_bytes: int = Field(default=100 * 1024 * 1024, ge=0)
    #: Rotated files kept (``events.jsonl.1`` is the newest); 0 keeps none.
    backups: int = Field(default=5, ge=0, le=1000)
    #: Which fields of the canonical document each line holds, in this order; all when absent.
    fields: list[DocumentField] | None = Field(default=None, min_length=1)
    #: fsync after every line, so a delivered event survives a power cut (off: faster, less safe).
    fsync: bool = True

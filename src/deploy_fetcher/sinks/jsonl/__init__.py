"""The JSONL sink: one JSON line per event appended to a file, fsynced, rotated by size."""

from deploy_fetcher.sinks.jsonl.adapter import JsonlSink
from deploy_fetcher.sinks.jsonl.config import JsonlConfig

__all__ = ["JsonlConfig", "JsonlSink"]

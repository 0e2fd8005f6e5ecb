"""The stdout sink: one JSON line per event, flushed, for previews and pipes."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable

import pytest

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks import Delivered, Retry, SinkContext
from deploy_fetcher.sinks.stdout import StdoutConfig, StdoutSink

Make = Callable[..., DeployEvent]


def test_one_json_line_per_event(
    capsys: pytest.CaptureFixture[str], context: SinkContext, make_event: Make
) -> None:
    """Each event is one line of compact JSON on standard output."""
    sink = StdoutSink(StdoutConfig(name="preview", type="stdout"), context)
    assert Delivered() == sink.send(make_event(status="in-progress"))
    assert Delivered() == sink.send(make_event())
    lines = capsys.readouterr().out.splitlines()
    assert ["in-progress", "success"] == [json.loads(line)["status"] for line in lines]
    assert all(": " not in line for line in lines)


def test_fields_narrow_the_line(
    capsys: pytest.CaptureFixture[str], context: SinkContext, make_event: Make
) -> None:
    """fields: keeps only the listed keys, in order."""
    config = StdoutConfig(
        name="preview", type="stdout", fields=["service", "environment", "status"]
    )
    StdoutSink(config, context).send(make_event())
    assert (
        '{"service":"checkout","environment":"prod","status":"success"}\n'
        == capsys.readouterr().out
    )


def test_closed_stdout_is_retried(
    monkeypatch: pytest.MonkeyPatch, context: SinkContext, make_event: Make
) -> None:
    """A closed stream (the reader went away) keeps the event for a later try."""
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    outcome = StdoutSink(StdoutConfig(name="preview", type="stdout"), context).send(make_event())
    assert isinstance(outcome, Retry)
    assert outcome.reason.startswith("cannot write to standard output")

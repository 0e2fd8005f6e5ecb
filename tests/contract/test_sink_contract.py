"""What every registered sink owes the delivery worker, run the same way over each of them.

Each answer a destination can give maps to exactly one :data:`Delivery` outcome (the sinks' HTTP
layer promises one table for all), no outcome's reason carries the sink's secret, a destination
that cannot be written is a ``Retry`` rather than an exception, and an event committed twice reaches
the destination once. (Loading, config models and a healthy delivery are covered by
``tests/sinks/test_sink_contract.py``.)
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.contract.rigs import HTTP_SINKS, SECRET, SINK_RIGS, SinkRig, sink_event

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.engine import DeliveryPolicy, DeliveryWorker, Health, Poller
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.plugins import load_sink, parse_config
from deploy_fetcher.providers import Page
from deploy_fetcher.sinks import (
    Delivered,
    Delivery,
    Rejected,
    Retry,
    Sink,
    SinkContext,
    Unauthorized,
)
from deploy_fetcher.store import SqliteStore

NAMES = sorted(SINK_RIGS)
FILES = ["jsonl"]


@dataclass
class Destination:
    """A sink built from its rig."""

    rig: SinkRig
    sink: Sink
    keys: dict[str, Any]


def _sink(name: str, keys: dict[str, Any], **extra: Any) -> Sink:
    cls = load_sink(name)
    config = cls.config_model.model_validate(
        {"name": "out", "type": name, "timeout": "1s", **keys, **extra}
    )
    return cls(config, SinkContext(metrics=Metrics(), user_agent="deploy-fetcher/contract"))


@pytest.fixture
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Destination]:
    with ExitStack() as stack:
        rig: SinkRig = stack.enter_context(SINK_RIGS[request.param](tmp_path))
        sink = _sink(request.param, rig.keys)
        stack.callback(sink.close)
        yield Destination(rig, sink, rig.keys)


def _reason(outcome: Delivery) -> str:
    return getattr(outcome, "reason", "")


def test_every_sink_is_an_http_a_file_or_the_stdout_sink() -> None:
    """The classification tests below cover every registered sink by kind."""
    assert sorted([*HTTP_SINKS, *FILES, "stdout"]) == NAMES


ANSWERS = [
    (Fault(status=503, headers={"Retry-After": "7"}), Retry, 7.0),
    (Fault(status=429, headers={"Retry-After": "3"}), Retry, 3.0),
    (Fault(status=500), Retry, None),
    (Fault(status=408), Retry, None),
    (Fault(kind="delay", delay=1.5), Retry, None),
    (Fault(kind="drop"), Retry, None),
    (Fault(status=401), Unauthorized, None),
    (Fault(status=403), Unauthorized, None),
    (Fault(status=400, body=json.dumps({"error": f"bad event near {SECRET}"})), Rejected, None),
    (Fault(status=422, body='{"errors": [{"field": "status"}]}'), Rejected, None),
    (Fault(status=404), Rejected, None),
]


@pytest.mark.parametrize("destination", HTTP_SINKS, indirect=True)
@pytest.mark.parametrize(
    ("fault", "kind", "after"),
    ANSWERS,
    ids=[
        "503-retry-after",
        "429-retry-after",
        "500",
        "408",
        "past-timeout",
        "dropped",
        "401",
        "403",
        "400",
        "422",
        "404",
    ],
)
def test_every_answer_is_one_classified_outcome(
    destination: Destination, fault: Fault, kind: type, after: float | None
) -> None:
    """Each answer maps to its Delivery class (Retry-After kept); no reason shows the secret."""
    assert destination.rig.server is not None
    destination.rig.server.inject(fault)
    outcome = destination.sink.send(sink_event())
    assert kind is type(outcome)
    if after is not None:
        assert isinstance(outcome, Retry)
        assert outcome.after == pytest.approx(after, abs=1.0)
    assert SECRET not in _reason(outcome)
    assert isinstance(destination.sink.send(sink_event(1)), Delivered)  # and then it recovers


@pytest.mark.parametrize("name", FILES)
def test_a_file_that_cannot_be_written_is_a_retry(tmp_path: Path, name: str) -> None:
    """A file sink whose path cannot be written answers Retry, never raises."""
    with ExitStack() as stack:
        rig: SinkRig = stack.enter_context(SINK_RIGS[name](tmp_path))
        sink = _sink(name, {**rig.keys, **rig.unusable})
        stack.callback(sink.close)
        outcome = sink.send(sink_event())
    assert isinstance(outcome, Retry)


def test_a_closed_standard_output_is_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stdout sink writing into a closed pipe answers Retry, never raises."""
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    sink = _sink("stdout", {})
    assert isinstance(sink.send(sink_event()), Retry)


@pytest.mark.parametrize("name", NAMES)
def test_an_event_committed_twice_reaches_the_destination_once(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same page committed twice (an overlap re-read) is one row and one delivery."""
    with ExitStack() as stack:
        rig: SinkRig = stack.enter_context(SINK_RIGS[name](tmp_path))
        config = parse_config(
            yaml.safe_dump(
                {
                    "state": {"path": str(tmp_path / "state.db")},
                    "sinks": [{"name": "out", "type": name, **_plain(rig.keys)}],
                    "sources": [{"name": "src", "provider": "scripted", "script": "x"}],
                }
            ),
            environ={},
        )
        store = SqliteStore(config.state.path)
        stack.callback(store.close)
        metrics, health = Metrics(), Health()
        poller = Poller(config, store, metrics, health)
        page = Page([sink_event(0), sink_event(1)], {"offset": 2})
        assert 2 == poller.commit(config.sources[0], "src", page)
        assert 0 == poller.commit(config.sources[0], "src", page)
        sink = load_sink(name)(
            config.sinks[0], SinkContext(metrics=metrics, user_agent="deploy-fetcher/contract")
        )
        stack.callback(sink.close)
        worker = DeliveryWorker(sink, store, metrics, health, DeliveryPolicy())
        for _ in range(3):
            worker.drain_once()
        assert 0 == store.pending_count("out")
        received = rig.received() if name != "stdout" else _printed(capsys.readouterr().out)
    assert 2 == received


def _printed(out: str) -> int:
    """Event lines on standard output (log lines may share it)."""
    count = 0
    for line in out.splitlines():
        try:
            count += "deployment_id" in json.loads(line)
        except ValueError:
            continue
    return count


def _plain(keys: dict[str, Any]) -> dict[str, Any]:
    """Keys as YAML can carry them (paths as text)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in keys.items()}

"""Every sink against hostile text and every HTTP sink against a hostile destination.

Each HTTP sink is pointed at a real local proxy (:class:`HostileServer`) in front of its usual
receiver; the proxy redirects to another host, echoes the credential, trickles, never ends, nests
JSON or answers markup, and is then "fixed" (forwards again) to show the sink recovers. The sinks
that write to a file or a terminal (JSONL, stdout) are given events carrying a CI server's markup
and escapes, and must write them as inert JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy_fetcher.emulators.hostile import MARKUP_BODY, HostileServer
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.plugins import load_sink
from deploy_fetcher.redaction import register_secret
from deploy_fetcher.sinks import (
    CheckResult,
    Delivered,
    Delivery,
    Rejected,
    Retry,
    Sink,
    SinkContext,
)
from tests.contract.rigs import HTTP_SINKS, SECRET, SINK_RIGS, sink_event

TIMEOUT = 1.0


@dataclass
class Hostile:
    """A sink whose destination is behind the hostile proxy."""

    sink: Sink
    server: HostileServer


def _rewrite(keys: dict[str, Any], upstream: str, hostile: str) -> dict[str, Any]:
    return {k: v.replace(upstream, hostile) if isinstance(v, str) else v for k, v in keys.items()}


@pytest.fixture(params=HTTP_SINKS)
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hostile]:
    name: str = request.param
    with ExitStack() as stack:
        rig = stack.enter_context(SINK_RIGS[name](tmp_path))
        assert rig.server is not None
        upstream = rig.server.url()
        server = stack.enter_context(HostileServer(upstream, trickle=0.2))
        cls = load_sink(name)
        config = cls.config_model.model_validate(
            {
                "name": "out",
                "type": name,
                "timeout": f"{TIMEOUT:g}s",
                **_rewrite(rig.keys, upstream, server.url),
            }
        )
        sink = cls(config, SinkContext(metrics=Metrics(), user_agent="deploy-fetcher/hostile"))
        stack.callback(sink.close)
        yield Hostile(sink, server)


def _reason(outcome: Delivery) -> str:
    return getattr(outcome, "reason", "")


def _recovers(hostile: Hostile) -> None:
    hostile.server.mode = "normal"
    assert isinstance(hostile.sink.send(sink_event(9)), Delivered)


def test_a_redirect_to_another_host_is_never_followed(hostile: Hostile) -> None:
    """A 302 to another host reaches it with nothing; the reason names both hosts; then recovery."""
    hostile.server.mode = "redirect"
    outcome = hostile.sink.send(sink_event())
    check = hostile.sink.check()
    assert isinstance(outcome, Retry)
    assert outcome.reason.startswith(f"HTTP 302 Found (http://127.0.0.1:{hostile.server.port} ")
    assert f"to http://127.0.0.2:{hostile.server.foreign.port}" in outcome.reason
    assert [] == hostile.server.foreign.seen
    assert SECRET not in check.message
    _recovers(hostile)


def test_an_echoed_credential_reaches_no_outcome_or_check(hostile: Hostile) -> None:
    """A server quoting the request's headers in its error shows *** where the credential was."""
    register_secret(SECRET)
    hostile.server.mode = "echo"
    outcome = hostile.sink.send(sink_event())
    check = hostile.sink.check()
    assert isinstance(outcome, Retry)
    assert "upstream proxy error" in outcome.reason
    assert SECRET not in outcome.reason
    assert SECRET not in check.message
    assert any(SECRET in str(seen.headers) for seen in hostile.server.seen)  # it was echoed
    _recovers(hostile)


def test_a_trickling_server_is_cut_at_the_sink_s_timeout(hostile: Hostile) -> None:
    """A server sending a byte every 0.2 s never trips a read timeout; the whole-request one ends it."""
    hostile.server.mode = "slow"
    outcome = hostile.sink.send(sink_event())
    assert Retry(reason=f"no complete answer within {TIMEOUT:g}s (the sink's timeout)") == outcome
    assert isinstance(
        hostile.sink.check(), CheckResult
    )  # it returns (a HEAD has no body to wait for)
    _recovers(hostile)


def test_an_endless_answer_is_read_only_to_its_cap(hostile: Hostile) -> None:
    """A 200 whose body never ends still gives one outcome (the body is read to a cap, not to its end)."""
    hostile.server.mode = "endless"
    outcome = hostile.sink.send(sink_event())
    check = hostile.sink.check()
    assert isinstance(outcome, Delivered | Retry | Rejected)
    assert not check.ok or not check.verified
    _recovers(hostile)


def test_deeply_nested_json_is_an_outcome_not_a_crash(hostile: Hostile) -> None:
    """An answer nested 100 000 levels deep (which would blow Python's recursion) is classified."""
    hostile.server.mode = "nested"
    outcome = hostile.sink.send(sink_event())
    check = hostile.sink.check()
    assert isinstance(outcome, Delivered | Retry | Rejected)
    assert isinstance(check.message, str)
    _recovers(hostile)


def test_markup_in_an_answer_is_kept_as_inert_text(hostile: Hostile) -> None:
    """A 422 with terminal escapes and rich markup becomes a reason without control characters."""
    hostile.server.mode = "markup"
    outcome = hostile.sink.send(sink_event())
    assert isinstance(outcome, Rejected)
    assert "[/x]" in outcome.reason
    assert "\x1b" not in outcome.reason
    _recovers(hostile)


#: What a CI server may put into an actor or a title: C0 escapes, 8-bit CSI (U+009B, obeyed by
#: terminals that take C1 controls), DEL, a bell, a newline and rich markup.
SERVER_TEXT = MARKUP_BODY + " \x9b2J\x9b31m \x07\x7f \nforged line"
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("name", ["jsonl", "stdout"])
def test_server_text_in_an_event_is_written_as_inert_json(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Escapes, C1 controls and markup a server put into fields are written as JSON escapes."""
    event = DeployEvent.model_validate(
        sink_event().model_dump() | {"actor": SERVER_TEXT[:128], "metadata": {"title": SERVER_TEXT}}
    )
    with SINK_RIGS[name](tmp_path) as rig:
        cls = load_sink(name)
        config = cls.config_model.model_validate({"name": "out", "type": name, **rig.keys})
        sink = cls(config, SinkContext(metrics=Metrics(), user_agent="deploy-fetcher/hostile"))
        try:
            assert isinstance(sink.send(event), Delivered)
        finally:
            sink.close()
        written = (
            Path(rig.keys["path"]).read_text(encoding="utf-8")
            if name == "jsonl"
            else capsys.readouterr().out
        )
    [line] = written.splitlines()
    assert [] == _CONTROLS.findall(line)
    document = json.loads(line)
    assert (SERVER_TEXT[:128], SERVER_TEXT) == (document["actor"], document["metadata"]["title"])

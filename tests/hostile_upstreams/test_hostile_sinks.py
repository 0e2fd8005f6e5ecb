"""Every HTTP sink against a hostile destination: no credential leaves, nothing hangs or grows, it recovers.

Each sink is pointed at a real local proxy (:class:`HostileServer`) in front of its usual receiver;
the proxy redirects to another host, echoes the credential, trickles, never ends, nests JSON or
answers markup, and is then "fixed" (forwards again) to show the sink recovers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy_fetcher.emulators.hostile import HostileServer
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
from tests.contract.rigs import SECRET, SINK_RIGS

HTTP = ["cloudlink", "ctoai", "deployment-dashboard", "webhook"]
TIMEOUT = 1.0


def _event(n: int = 0) -> DeployEvent:
    return DeployEvent(
        deployment_id=f"hostile-{n}",
        service="api",
        environment="prod",
        status="success",
        happened_at=f"2026-03-01T10:00:{n:02d}Z",
        provider="github",
        source="src",
        metadata={"repo": "octo/api", "repo_name": "api", "branch": "main"},
    )


@dataclass
class Hostile:
    """A sink whose destination is behind the hostile proxy."""

    sink: Sink
    server: HostileServer


def _rewrite(keys: dict[str, Any], upstream: str, hostile: str) -> dict[str, Any]:
    return {k: v.replace(upstream, hostile) if isinstance(v, str) else v for k, v in keys.items()}


@pytest.fixture(params=HTTP)
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
    assert isinstance(hostile.sink.send(_event(9)), Delivered)


def test_a_redirect_to_another_host_is_never_followed(hostile: Hostile) -> None:
    """A 302 to another host reaches it with nothing; the reason names both hosts; then recovery."""
    hostile.server.mode = "redirect"
    outcome = hostile.sink.send(_event())
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
    outcome = hostile.sink.send(_event())
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
    outcome = hostile.sink.send(_event())
    assert Retry(reason=f"no complete answer within {TIMEOUT:g}s (the sink's timeout)") == outcome
    assert isinstance(
        hostile.sink.check(), CheckResult
    )  # it returns (a HEAD has no body to wait for)
    _recovers(hostile)


def test_an_endless_answer_is_read_only_to_its_cap(hostile: Hostile) -> None:
    """A 200 whose body never ends still gives one outcome (the body is read to a cap, not to its end)."""
    hostile.server.mode = "endless"
    outcome = hostile.sink.send(_event())
    check = hostile.sink.check()
    assert isinstance(outcome, Delivered | Retry | Rejected)
    assert not check.ok or not check.verified
    _recovers(hostile)


def test_deeply_nested_json_is_an_outcome_not_a_crash(hostile: Hostile) -> None:
    """An answer nested 100 000 levels deep (which would blow Python's recursion) is classified."""
    hostile.server.mode = "nested"
    outcome = hostile.sink.send(_event())
    check = hostile.sink.check()
    assert isinstance(outcome, Delivered | Retry | Rejected)
    assert isinstance(check.message, str)
    _recovers(hostile)


def test_markup_in_an_answer_is_kept_as_inert_text(hostile: Hostile) -> None:
    """A 422 with terminal escapes and rich markup becomes a reason without control characters."""
    hostile.server.mode = "markup"
    outcome = hostile.sink.send(_event())
    assert isinstance(outcome, Rejected)
    assert "[/x]" in outcome.reason
    assert "\x1b" not in outcome.reason
    _recovers(hostile)

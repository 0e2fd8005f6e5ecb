"""The webhook sink: the canonical document, static headers, and the HMAC-SHA256 signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from deploy_fetcher.emulators.receiver import ReceiverEmulator
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks import Delivered, SinkContext
from deploy_fetcher.sinks.webhook import SIGNATURE_HEADER, WebhookConfig, WebhookSink, sign, verify
from deploy_fetcher.sinks.webhook.mapping import event_id

Make = Callable[..., DeployEvent]
SECRET = "whsec-5f1c0a7e9b"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


def _sink(url: str, context: SinkContext, **keys: Any) -> WebhookSink:
    sink = WebhookSink(WebhookConfig(name="hook", type="webhook", url=url, **keys), context)
    sink.clock = lambda: NOW
    return sink


def _independent_signature(secret: str, header: str, body: bytes) -> bool:
    """A receiver's check written from the documented scheme alone."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    signed = fields["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def test_canonical_document_on_the_wire(
    receiver: ReceiverEmulator, context: SinkContext, make_event: Make
) -> None:
    """The body is the contract payload plus provider, source and metadata."""
    sink = _sink(receiver.url("/hooks/deploys"), context)
    assert Delivered(201) == sink.send(make_event())
    sink.close()
    [request] = receiver.received()
    assert ("POST", "/hooks/deploys") == (request.method, request.path)
    assert "application/json" == request.header("Content-Type")
    assert {
        "deployment_id": "gh-1001",
        "service": "checkout",
        "environment": "prod",
        "status": "success",
        "happened_at": "2026-01-31T12:00:00Z",
        "version": "v1.2.3",
        "run_url": "https://github.com/octo/checkout/actions/runs/1001",
        "run_number": 42,
        "actor": "octocat",
        "ref": "refs/heads/main",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "provider": "github",
        "source": "octo-github",
        "metadata": {"branch": "main", "repo": "octo/checkout", "repo_name": "checkout"},
    } == request.json()
    assert request.header(SIGNATURE_HEADER) is None


def test_signature_verifies_with_an_independent_hmac(
    receiver: ReceiverEmulator, context: SinkContext, make_event: Make
) -> None:
    """t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<raw body>"> checks out with hmac + hashlib alone."""
    sink = _sink(receiver.url(), context, secret=SECRET)
    sink.send(make_event())
    sink.close()
    [request] = receiver.received()
    header = request.header(SIGNATURE_HEADER)
    assert header is not None
    assert header.startswith(f"t={NOW},v1=")
    assert _independent_signature(SECRET, header, request.body)
    assert not _independent_signature("another-secret", header, request.body)
    assert not _independent_signature(SECRET, header, request.body.replace(b"prod", b"dev!"))


def test_verify_accepts_fresh_and_refuses_replayed_or_forged() -> None:
    """The bundled verifier checks the MAC and refuses timestamps outside the tolerance."""
    body = b'{"status":"success"}'
    header = sign(SECRET.encode(), body, NOW)
    assert verify(SECRET.encode(), body, header, now=NOW + 10)
    assert not verify(SECRET.encode(), body, header, now=NOW + 301)
    assert not verify(SECRET.encode(), body + b" ", header, now=NOW)
    assert not verify(b"wrong", body, header, now=NOW)
    assert not verify(SECRET.encode(), body, "v1=deadbeef", now=NOW)
    assert not verify(SECRET.encode(), body, f"t=later,v1={'0' * 64}", now=NOW)


def test_secret_file_is_read(
    tmp_path: Path, receiver: ReceiverEmulator, context: SinkContext, make_event: Make
) -> None:
    """secret_file works like secret (a mounted Kubernetes secret)."""
    path = tmp_path / "hook-secret"
    path.write_text(SECRET + "\n")
    sink = _sink(receiver.url(), context, secret_file=str(path))
    sink.send(make_event())
    sink.close()
    [request] = receiver.received()
    header = request.header(SIGNATURE_HEADER)
    assert header is not None
    assert _independent_signature(SECRET, header, request.body)


def test_static_headers_are_sent_and_masked(
    receiver: ReceiverEmulator, context: SinkContext, make_event: Make
) -> None:
    """Configured headers reach the receiver; their values are secrets in the config's repr."""
    headers = {"Authorization": "Bearer hook-token-777", "X-Team": "payments"}
    sink = _sink(receiver.url(), context, headers=headers)
    sink.send(make_event())
    sink.close()
    [request] = receiver.received()
    assert "Bearer hook-token-777" == request.header("Authorization")
    assert "payments" == request.header("X-Team")
    assert "hook-token-777" not in repr(sink.settings)


def test_event_id_header_is_stable_per_state_change(
    receiver: ReceiverEmulator, context: SinkContext, make_event: Make
) -> None:
    """A re-delivery carries the same event id, so a receiver can drop the duplicate."""
    sink = _sink(receiver.url(), context)
    sink.send(make_event())
    sink.send(make_event())
    sink.send(make_event(status="failure"))
    sink.close()
    ids = [r.header("X-Deploy-Fetcher-Event-Id") for r in receiver.received()]
    assert [event_id(make_event())] * 2 == ids[:2]
    assert ids[0] != ids[2]
    assert 32 == len(ids[0] or "")


def test_fields_select_and_order_the_document(
    receiver: ReceiverEmulator, context: SinkContext, make_event: Make
) -> None:
    """fields: sends only those fields, in the order given."""
    sink = _sink(receiver.url(), context, fields=["status", "deployment_id", "metadata"])
    sink.send(make_event())
    sink.close()
    [request] = receiver.received()
    assert ["status", "deployment_id", "metadata"] == list(json.loads(request.body))


@pytest.mark.parametrize(
    "keys",
    [
        {"fields": ["status", "colour"]},
        {"fields": []},
        {"fields": ["status", "status"]},
        {"headers": {"Content-Type": "text/plain"}},
        {"headers": {"X-Deploy-Fetcher-Signature": "forged"}},
        {"headers": {"Bad Header": "x"}},
        {"headers": {"X-Ok": "line\r\nInjected: 1"}},
    ],
)
def test_bad_configuration_fails_at_load(keys: dict[str, Any]) -> None:
    """Unknown or repeated fields and unsafe headers are refused when the config loads."""
    with pytest.raises(ValidationError):
        WebhookConfig(name="hook", type="webhook", url="https://hooks.example.test/x", **keys)


def test_url_is_a_secret(tmp_path: Path) -> None:
    """A receiver URL carrying a token is masked, and can come from url_file."""
    path = tmp_path / "url"
    path.write_text("https://hooks.example.test/services/T000/B000/XXXX\n")
    config = WebhookConfig(name="hook", type="webhook", url_file=str(path))
    assert "XXXX" not in repr(config)
    assert "https://hooks.example.test/services/T000/B000/XXXX" == config.url.get_secret_value()


def test_check_names_only_the_host(receiver: ReceiverEmulator, context: SinkContext) -> None:
    """The check message shows where the receiver is, not the path that may hold its token."""
    sink = _sink(receiver.url("/services/T000/SECRETPATH"), context)
    result = sink.check()
    sink.close()
    assert (True, False) == (result.ok, result.verified)
    assert "SECRETPATH" not in result.message

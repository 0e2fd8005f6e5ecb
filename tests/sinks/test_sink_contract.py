"""What every registered sink owes the engine: loadable by name, typed config, classified outcomes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

import deploy_fetcher.sinks as public
from deploy_fetcher.config import SinkConfig
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.emulators.receiver import ReceiverEmulator
from deploy_fetcher.model import CONTRACT_FIELDS, DeployEvent
from deploy_fetcher.plugins import available_sinks, load_sink
from deploy_fetcher.sinks import Delivered, Delivery, Retry, Sink, SinkContext
from deploy_fetcher.sinks._document import DOCUMENT_FIELDS, DocumentField

Make = Callable[..., DeployEvent]
SINKS = ["cloudlink", "ctoai", "deployment-dashboard", "jsonl", "stdout", "webhook"]
SECRET = "contract-secret-4242"


@pytest.fixture
def endpoints(tmp_path: Path) -> Iterator[dict[str, Any]]:
    dashboard = DashboardEmulator(api_key=SECRET)
    receiver = ReceiverEmulator(status=202, bearer=SECRET)
    dashboard.start()
    receiver.start()
    yield {
        "deployment-dashboard": {"url": dashboard.url(), "api_key": SECRET},
        "cloudlink": {"url": receiver.url(), "api_key": SECRET},
        "ctoai": {"url": receiver.url(), "api_key": SECRET, "team_id": "team"},
        "webhook": {"url": receiver.url("/hook"), "headers": {"Authorization": f"Bearer {SECRET}"}},
        "jsonl": {"path": tmp_path / "events.jsonl"},
        "stdout": {},
        "_dashboard": dashboard,
        "_receiver": receiver,
    }
    dashboard.stop()
    receiver.stop()


def _build(name: str, keys: dict[str, Any], context: SinkContext) -> Sink:
    cls = load_sink(name)
    config = cls.config_model.model_validate({"name": "s", "type": name, **keys})
    return cls(config, context)


def test_every_sink_is_registered() -> None:
    """The six sinks are installed under their documented names."""
    assert set(SINKS) <= set(available_sinks())


@pytest.mark.parametrize("name", SINKS)
def test_sink_class_matches_its_entry_point(name: str) -> None:
    """The class's name is its entry point's, and its config model extends SinkConfig."""
    cls = load_sink(name)
    assert name == cls.name
    assert issubclass(cls.config_model, SinkConfig)


@pytest.mark.parametrize("name", SINKS)
def test_sink_delivers_a_success(
    name: str,
    endpoints: dict[str, Any],
    context: SinkContext,
    make_event: Make,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Against a healthy destination every sink reports Delivered, and check() passes."""
    sink = _build(name, endpoints[name], context)
    outcome = sink.send(make_event())
    result = sink.check()
    sink.close()
    assert isinstance(outcome, Delivered)
    assert result.ok


@pytest.mark.parametrize("name", ["cloudlink", "ctoai", "deployment-dashboard", "webhook"])
def test_http_sink_retries_a_down_destination(
    name: str, endpoints: dict[str, Any], context: SinkContext, make_event: Make
) -> None:
    """Every HTTP sink turns a refused connection into Retry, and check() fails."""
    sink = _build(name, endpoints[name], context)
    endpoints["_dashboard"].stop()
    endpoints["_receiver"].stop()
    outcome: Delivery = sink.send(make_event())
    result = sink.check()
    sink.close()
    assert isinstance(outcome, Retry)
    assert not result.ok


@pytest.mark.parametrize("name", SINKS)
def test_no_secret_in_a_config_repr(name: str, endpoints: dict[str, Any]) -> None:
    """Secrets of every sink config are masked in repr and JSON dumps."""
    config = load_sink(name).config_model.model_validate(
        {"name": "s", "type": name, **endpoints[name]}
    )
    assert SECRET not in repr(config)
    assert SECRET not in config.model_dump_json()


def test_document_fields_follow_the_contract() -> None:
    """The canonical document's field names are the contract's plus the three internal ones."""
    assert (*CONTRACT_FIELDS, "provider", "source", "metadata") == DOCUMENT_FIELDS
    assert DOCUMENT_FIELDS == get_args(DocumentField)


def test_public_surface_is_complete() -> None:
    """Everything the sinks package lists in __all__ exists."""
    assert all(hasattr(public, name) for name in public.__all__)

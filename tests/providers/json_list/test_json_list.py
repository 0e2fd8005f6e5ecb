"""The guide's example provider, built from the kit, against its own server on 127.0.0.1.

The contract suite already runs over it (``json-list`` is registered by the suite's ``test_plugins``); these
tests show what the kit gave it for free: page-by-page commits, the overlap read without
duplicates, and every limit of a hostile upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import yaml
from json_list import JsonListProvider
from json_list_server import TOKEN, JsonListServer
from structlog.testing import capture_logs
from tests.hostile_http import HostileServer

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.errors import AuthError, ConfigError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.plugins import parse_config
from deploy_fetcher.providers import Page, ProviderContext
from deploy_fetcher.providers.kit import DeadlineExceeded, RedirectRefused, ResponseTooLarge

#: ``json-list`` is a plugin: the configuration names it like any installed provider.
pytestmark = pytest.mark.usefixtures("test_plugins")


@pytest.fixture
def server() -> Iterator[JsonListServer]:
    """A list with five deployments an hour apart, the last one an hour ago."""
    served = JsonListServer()
    now = served.clock
    for hours in range(5, 0, -1):
        served.clock = now - timedelta(hours=hours)
        served.deploy("api", "prod", version=f"1.{hours}")
    served.clock = now
    with served:
        yield served


def _provider(url: str, **keys: Any) -> JsonListProvider:
    source = {"name": "jl", "provider": "json-list", "url": url, "token": TOKEN, **keys}
    config = parse_config(yaml.safe_dump({"sources": [source]}), environ={})
    context = ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())
    return JsonListProvider(config.sources[0], context)


def _poll(provider: JsonListProvider, cursor: dict[str, Any] | None = None) -> list[Page]:
    try:
        return list(provider.poll("jl", cursor))
    finally:
        provider.context.shared.close()


def test_every_page_is_stored_with_the_cursor_that_covers_it(server: JsonListServer) -> None:
    """Two items a page: three pages of events, each with its cursor, marks in order."""
    pages = _poll(_provider(server.url("/api/deployments"), page_size=2))
    assert [2, 2, 1] == [len(page.events) for page in pages]
    marks = [page.cursor["mark"] for page in pages if page.cursor]
    assert (3, marks) == (len(marks), sorted(marks))


def test_a_poll_cut_short_resumes_after_its_last_stored_page(server: JsonListServer) -> None:
    """Killed after the first page, the next poll reads the three items it had not stored."""
    killed = _provider(server.url("/api/deployments"), page_size=2)
    first = next(iter(killed.poll("jl", None)))
    killed.context.shared.close()
    rest = _poll(_provider(server.url("/api/deployments"), page_size=2), first.cursor)
    stored = {e.deployment_id for e in first.events}
    resumed = [e.deployment_id for page in rest for e in page.events]
    assert (set(), 3) == (stored & set(resumed), len(resumed))


def test_the_overlap_is_read_again_without_storing_anything_twice(server: JsonListServer) -> None:
    """A second poll re-reads the overlap window and yields nothing; a new change is stored."""
    pages = _poll(_provider(server.url("/api/deployments")))
    again = _poll(_provider(server.url("/api/deployments")), pages[-1].cursor)
    server.advance(60)
    later = _poll(_provider(server.url("/api/deployments")), pages[-1].cursor)
    assert ([], ["in-progress"]) == (
        [e for page in again for e in page.events],
        [e.status.value for page in later for e in page.events],
    )


def test_a_rejected_token_is_an_auth_error(server: JsonListServer) -> None:
    """A 401 is the common table's AuthError: readiness 503, no crash."""
    with pytest.raises(AuthError):
        _poll(_provider(server.url("/api/deployments"), token="wrong"))


def test_an_item_dated_in_the_future_is_stored_once_and_never_becomes_the_mark(
    server: JsonListServer,
) -> None:
    """An item dated 2106 is logged once; the next change is still read."""
    server.items["d-future"] = {
        **server.items["d-1"],
        "id": "d-future",
        "updated_at": "2106-01-01T00:00:00Z",
    }
    with capture_logs() as logs:
        pages = _poll(_provider(server.url("/api/deployments")))
        again = _poll(_provider(server.url("/api/deployments")), pages[-1].cursor)
    server.advance(60)
    later = _poll(_provider(server.url("/api/deployments")), (again or pages)[-1].cursor)
    assert 1 == sum(1 for e in logs if e["event"] == "json_list.future_item")
    assert pages[-1].cursor["mark"] < "2030"
    assert ["in-progress"] == [e.status.value for page in later for e in page.events]


def test_a_redirect_to_another_host_is_refused_and_the_token_stays_home() -> None:
    """The kit's redirect rule holds for the example too."""
    with HostileServer() as elsewhere, HostileServer(mode="redirect") as server:
        server.location = elsewhere.url("/api/deployments", host="localhost")
        with pytest.raises(RedirectRefused):
            _poll(_provider(server.url("/api/deployments"), retries=0))
    assert [] == elsewhere.requests


@pytest.mark.parametrize(
    ("mode", "keys", "error"),
    [
        ("slow", {"timeout": "1s"}, DeadlineExceeded),
        ("endless", {"max_response_size": "1MiB"}, ResponseTooLarge),
    ],
)
def test_a_slow_or_endless_answer_is_cut(
    mode: str, keys: dict[str, str], error: type[Exception]
) -> None:
    """The deadline and the byte cap hold for the example too."""
    body = b"[" + b" " * 100 + b"]"
    with (
        HostileServer(mode=mode, body=body, limit=8 * 1024 * 1024) as server,
        pytest.raises(error),
    ):
        _poll(_provider(server.url("/api/deployments"), retries=0, **keys))


def test_a_template_with_an_unknown_field_fails_when_the_config_loads() -> None:
    """The kit's template check names the field and the ones there are, at the YAML path."""
    with pytest.raises(ConfigError, match=r"sources\[0\]\.service: .*\['colour'\]; available"):
        _provider("http://127.0.0.1:9/api", service="{colour}")

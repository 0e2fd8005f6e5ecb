"""Hostile upstreams and cut-short polls, against real servers on 127.0.0.1.

A hostile or failing upstream cannot take the token, freeze a poll, exhaust memory or stop a source;
and a poll cut short keeps what it stored.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs
from tests.hostile_http import HostileServer
from tests.providers.azure_devops.support import TOKEN, Harness, make_context, make_provider

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator
from deploy_fetcher.errors import AuthError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.azure_devops import AzureDevOpsConfig, AzureDevOpsProvider
from deploy_fetcher.providers.kit import DeadlineExceeded, ResponseTooLarge

EIGHTY_YEARS = 80 * 365 * 86400.0


def _hostile_provider(server: HostileServer, **keys) -> AzureDevOpsProvider:
    config = AzureDevOpsConfig.model_validate(
        {
            "name": "ado",
            "organization_url": server.url("/contoso"),
            "projects": ["shop"],
            "pat": TOKEN,
            "mode": "stages",
            "retries": 0,
            **keys,
        }
    )
    return AzureDevOpsProvider(
        config, ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())
    )


def test_a_redirect_to_another_host_is_an_auth_error_and_the_pat_stays_home() -> None:
    """A 302 to another host names both hosts; that host never sees the Authorization header."""
    with HostileServer() as elsewhere:
        location = elsewhere.url("/_signin", host="localhost")
        with HostileServer(mode="redirect", location=location) as server:
            provider = _hostile_provider(server)
            with pytest.raises(AuthError) as caught:
                list(provider.poll("shop", None))
            provider.context.shared.close()
    assert [] == elsewhere.requests
    assert f"127.0.0.1:{server.port}" in str(caught.value)
    assert f"localhost:{elsewhere.port}" in str(caught.value)


def test_a_server_trickling_its_answer_is_cut_at_the_timeout() -> None:
    """One byte every 0.2 s: the poll ends at its 1 s deadline, not when the server is done."""
    with HostileServer(mode="slow", body=b'{"count": 0, "value": []}' * 8, interval=0.2) as server:
        provider = _hostile_provider(server, timeout="1s")
        with pytest.raises(DeadlineExceeded):
            list(provider.poll("shop", None))
        provider.context.shared.close()


def test_an_endless_answer_is_cut_at_the_byte_cap() -> None:
    """A body that never ends fails the request at max_response_size, naming the URL."""
    with HostileServer(mode="endless", limit=16 * 1024 * 1024) as server:
        provider = _hostile_provider(server, max_response_size="1MiB")
        with pytest.raises(ResponseTooLarge, match="_apis/build/builds"):
            list(provider.poll("shop", None))
        provider.context.shared.close()


def test_a_run_queued_far_in_the_future_does_not_stop_the_source(
    emulator: AzureDevOpsEmulator, providers: Callable[..., AzureDevOpsProvider]
) -> None:
    """A run dated 2106 is logged once; the mark stays, and a run queued later is still read."""
    harness = Harness(providers(mode="stages"))
    emulator.add_run("web", ago=-EIGHTY_YEARS)
    with capture_logs() as logs:
        harness.cycle()
        harness.cycle()
    assert 1 == sum(1 for e in logs if e["event"] == "azure_devops.future_item")
    assert harness.cursor is not None
    mark = harness.cursor["runs"]["mark"]
    assert mark < "2030"
    emulator.advance(600)
    later = emulator.add_run("web", ago=0)
    emulator.advance(3600)
    harness.cycle()
    assert f"ado-stage-{later.id}-Deploy_dev-1" in {e.deployment_id for e in harness.seen.values()}


def test_a_poll_cut_short_resumes_after_the_last_stored_page(
    emulator: AzureDevOpsEmulator,
) -> None:
    """Killed after four runs of ten, the next poll reads only the six it had not stored."""
    for minutes in range(10):
        emulator.add_run("web", ago=7200 - minutes * 60)
    emulator.advance(3600)
    first = make_provider(emulator, mode="stages")
    stored = None
    for count, page in enumerate(first.poll("shop", None), start=1):
        stored = page.cursor or stored
        if count == 4:
            break  # the process dies here: what the store holds is the last page's cursor
    first.context.shared.close()
    emulator.reset_log()
    again = make_provider(emulator, mode="stages")
    pages = list(again.poll("shop", stored))
    again.context.shared.close()
    timelines = emulator.requests_to(r"/timeline$")
    assert (6, True) == (len(timelines), pages[-1].cursor is not None)


def test_sources_of_one_credential_share_a_client_and_its_quota(
    emulator: AzureDevOpsEmulator,
) -> None:
    """Two sources with the same PAT share one client; another PAT gets its own."""
    context = make_context(emulator)
    one = make_provider(emulator, context=context, name="one")
    two = make_provider(emulator, context=context, name="two", projects=["shop", "ops"])
    other = make_provider(emulator, context=context, name="three", pat="another-pat-0123456789")
    assert (True, False) == (one.client is two.client, one.client is other.client)
    assert one.client.policy.quota is two.client.policy.quota
    context.shared.close()


def test_a_whole_first_poll_is_not_one_transaction(emulator: AzureDevOpsEmulator) -> None:
    """Each run's events carry the cursor that covers them (no page of events without one)."""
    for minutes in range(3):
        emulator.add_run("web", ago=7200 - minutes * 60)
    emulator.advance(3600)
    provider = make_provider(emulator, mode="stages")
    pages = list(provider.poll("shop", None))
    provider.context.shared.close()
    with_events = [page for page in pages if page.events]
    assert len(with_events) >= 3
    assert all(page.cursor is not None for page in with_events)
    marks = [page.cursor["runs"]["mark"] for page in with_events if page.cursor]
    assert marks == sorted(marks)

"""Hostile upstreams against the GitHub adapter, with real servers on 127.0.0.1.

PyGithub's requests are made on connections the adapter does not create; the request policy is
mounted on each of them, so the limits hold for every request PyGithub sends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from structlog.testing import capture_logs
from tests.hostile_http import HostileServer
from tests.providers.github.support import EmulatorContext, Harness, key_pair
from tests.providers.github.test_github_deployments import START

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.errors import SourceError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.github import GitHubConfig, GitHubProvider
from deploy_fetcher.providers.kit import DeadlineExceeded, ResponseTooLarge
from deploy_fetcher.redaction import MASK, redact

TOKEN = "ghp_hostile_test_0123456789abcdef"
FAR = datetime(2106, 1, 1, tzinfo=START.tzinfo)


def _provider(server: HostileServer, **keys: Any) -> GitHubProvider:
    config = GitHubConfig.model_validate(
        {
            "name": "gh",
            "token": TOKEN,
            "base_url": server.url(),
            "repos": ["octo/api"],
            "retries": 0,
            **keys,
        }
    )
    return GitHubProvider(config, ProviderContext(metrics=Metrics(), defaults=DefaultsConfig()))


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_to_another_host_is_refused_and_the_token_stays_home(status: int) -> None:
    """A redirect to another host names the base_url to set; that host never sees the token."""
    with HostileServer() as elsewhere:
        location = elsewhere.url("/repos/octo/api/deployments", host="localhost")
        with HostileServer(mode="json", status=status, headers={"Location": location}) as server:
            provider = _provider(server)
            with pytest.raises(SourceError) as caught:
                list(provider.poll("octo/api", None))
            provider.context.shared.close()
    assert [] == elsewhere.requests
    assert f"set base_url to http://localhost:{elsewhere.port}" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_server_trickling_its_answer_is_cut_at_the_timeout() -> None:
    """One byte every 0.2 s keeps every read in time; the whole request ends at its 1 s deadline."""
    with HostileServer(mode="slow", body=b"[" + b" " * 100 + b"]", interval=0.2) as server:
        provider = _provider(server, timeout="1s")
        with pytest.raises(DeadlineExceeded):
            list(provider.poll("octo/api", None))
        provider.context.shared.close()


def test_an_endless_answer_is_cut_at_the_byte_cap() -> None:
    """A body that never ends fails at max_response_size with the URL in the message."""
    with HostileServer(mode="endless", limit=16 * 1024 * 1024) as server:
        provider = _provider(server, max_response_size="1MiB")
        with pytest.raises(ResponseTooLarge, match="/repos/octo/api/deployments"):
            list(provider.poll("octo/api", None))
        provider.context.shared.close()


def test_a_deployment_created_far_in_the_future_does_not_stop_the_source(
    make_emulator: Callable[..., GitHubEmulator],
    make_provider: Callable[..., tuple[GitHubProvider, EmulatorContext]],
) -> None:
    """A deployment dated 2106 is stored and logged once; the mark stays, later ones are read."""
    emulator = make_emulator(start=START)
    emulator.add_repo("octo/api")
    provider, _ = make_provider(emulator)
    harness = Harness(provider)
    future = emulator.add_deployment("octo/api", "prod", sha="f" * 40, at=FAR)
    emulator.add_status("octo/api", future.id, "success", at=FAR)
    with capture_logs() as logs:
        harness.cycle()
        harness.cycle()
    assert 1 == sum(1 for e in logs if e["event"] == "github.future_item")
    assert harness.cursors["octo/api"]["mark"] < "2030"
    emulator.advance(600)
    later = emulator.add_deployment("octo/api", "prod", sha="a" * 40)
    emulator.add_status("octo/api", later.id, "success")
    harness.cycle()
    assert f"gh-deploy-{later.id}" in {e.deployment_id for e in harness.seen.values()}


def test_sources_of_one_token_share_a_session_and_its_quota(
    make_emulator: Callable[..., GitHubEmulator],
    make_provider: Callable[..., tuple[GitHubProvider, EmulatorContext]],
) -> None:
    """Two sources with the same token share one credential (PyGithub session, quota, policy)."""
    emulator = make_emulator(start=START)
    one, context = make_provider(emulator, name="one")
    two, _ = make_provider(emulator, name="two", context=context)
    other, _ = make_provider(emulator, name="three", context=context, token="ghp_other_0123")
    assert (True, False) == (one.credential is two.credential, one.credential is other.credential)
    assert one.client.quota is two.client.quota


def test_an_installation_token_is_masked_from_the_moment_it_is_issued(
    make_emulator: Callable[..., GitHubEmulator],
    make_provider: Callable[..., tuple[GitHubProvider, EmulatorContext]],
) -> None:
    """A GitHub App's installation token, created at runtime, is masked wherever it is echoed."""
    private, public = key_pair()
    emulator = make_emulator(start=START)
    emulator.add_repo("octo/api")
    emulator.install_app(42, public, 7, ["octo/api"])
    app = {"app_id": 42, "private_key": private, "installation_id": 7}
    provider, _ = make_provider(emulator, app=app)
    Harness(provider).cycle()
    [token] = emulator.installation_tokens
    assert f"proxy said: Authorization: token {MASK}" == redact(
        f"proxy said: Authorization: token {token}"
    )

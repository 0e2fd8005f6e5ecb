"""Hostile upstreams against the GitLab adapter, with real servers on 127.0.0.1.

python-gitlab follows GET redirects and ``requests`` strips only ``Authorization``, so before the
request policy reached its session, ``PRIVATE-TOKEN`` went to whatever host a 30x named.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from tests.hostile_http import HostileServer
from tests.providers.gitlab.support import TOKEN, Harness, make_context, make_provider
from tests.support import run_cli

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.errors import SourceError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.gitlab import GitLabProvider, GitLabSourceConfig
from deploy_fetcher.providers.kit import DeadlineExceeded, RedirectRefused, ResponseTooLarge

EIGHTY_YEARS = 80 * 365 * 86400.0


def _provider(server: HostileServer, **keys: object) -> GitLabProvider:
    config = GitLabSourceConfig.model_validate(
        {
            "name": "gl",
            "url": server.url(),
            "token": TOKEN,
            "projects": ["acme/api"],
            "retries": 0,
            **keys,
        }
    )
    return GitLabProvider(config, ProviderContext(metrics=Metrics(), defaults=DefaultsConfig()))


def test_the_token_is_never_sent_to_the_host_a_redirect_names() -> None:
    """A 302 to another host is a SourceError naming both hosts; PRIVATE-TOKEN stays home."""
    with HostileServer(body=b"[]") as elsewhere:
        location = elsewhere.url("/api/v4/projects/acme%2Fapi/deployments", host="localhost")
        with HostileServer(mode="redirect", location=location) as server:
            provider = _provider(server)
            with pytest.raises(RedirectRefused) as caught:
                list(provider.poll("acme/api", None))
            provider.context.shared.close()
    assert [] == elsewhere.requests
    assert isinstance(caught.value, SourceError)
    assert f"http://127.0.0.1:{server.port}" in str(caught.value)
    assert f"http://localhost:{elsewhere.port}" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_server_trickling_its_answer_is_cut_at_the_timeout() -> None:
    """One byte every 0.2 s keeps every read in time; the whole request ends at its 1 s deadline."""
    with HostileServer(mode="slow", body=b"[" + b" " * 100 + b"]", interval=0.2) as server:
        provider = _provider(server, timeout="1s")
        with pytest.raises(DeadlineExceeded):
            list(provider.poll("acme/api", None))
        provider.context.shared.close()


def test_an_endless_answer_is_cut_at_the_byte_cap() -> None:
    """A body that never ends fails at max_response_size with the URL in the message."""
    with HostileServer(mode="endless", limit=16 * 1024 * 1024) as server:
        provider = _provider(server, max_response_size="1MiB")
        with pytest.raises(ResponseTooLarge, match=r"/api/v4/projects/acme%2Fapi/deployments"):
            list(provider.poll("acme/api", None))
        provider.context.shared.close()


def test_a_deployment_dated_far_in_the_future_does_not_stop_the_source(
    emulator: GitLabEmulator,
) -> None:
    """An item updated in 2106 is stored and logged once; the mark stays, later items are read."""
    provider = make_provider(emulator, context=make_context(emulator))
    harness = Harness(provider)
    skewed = list(emulator.deployments_of(emulator.add_pipeline("acme/api", ago=600)).values())
    for deployment in skewed:
        deployment.skew = timedelta(seconds=EIGHTY_YEARS)
    with capture_logs() as logs:
        harness.cycle()
        harness.cycle()
    assert len(skewed) == sum(1 for e in logs if e["event"] == "gitlab.future_item")
    assert harness.cursors["acme/api"]["mark"] < "2030"
    later = emulator.deployments_of(emulator.add_pipeline("acme/api", ago=0))
    emulator.advance(3600)
    harness.cycle()
    ids = {e.deployment_id for e in harness.seen.values()}
    assert {f"gl-deploy-{d.id}" for d in later.values()} <= ids
    provider.context.shared.close()


def test_sources_of_one_token_share_a_client(emulator: GitLabEmulator) -> None:
    """Two sources with the same instance and token share one client and one quota."""
    context = make_context(emulator)
    one = make_provider(emulator, context=context, name="one")
    two = make_provider(emulator, context=context, name="two")
    other = make_provider(emulator, context=context, name="three", token="glpat-another-01234")
    assert (True, False) == (one.client is two.client, one.client is other.client)
    context.shared.close()


def test_fetcher_check_answers_an_old_key_with_its_new_name(tmp_path: Path) -> None:
    """`verify_tls` on a GitLab source: exit 2, the YAML path and the key that replaced it."""
    config = tmp_path / "fetcher.yaml"
    config.write_text(
        "sources:\n"
        "  - name: gl\n"
        "    provider: gitlab\n"
        "    token: t0ken-value\n"
        "    projects: [acme/api]\n"
        "    verify_tls: false\n"
        "    per_page: 50\n",
        encoding="utf-8",
    )
    result = run_cli("check", "--offline", "--config", str(config))
    assert 2 == result.returncode
    assert "sources[0].verify_tls: renamed key (did you mean 'tls_verify'?)" in result.stderr
    assert "sources[0].per_page: renamed key (did you mean 'page_size'?)" in result.stderr
    assert "Traceback" not in result.stderr

"""Credentials, App tokens, rate limits, faults and discovery, against the emulator over real HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from structlog.testing import capture_logs
from tests.providers.github.support import Harness, expected_deployment_keys, key_pair
from tests.providers.github.test_github_deployments import CHAIN, START, scenario

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.github import start_pipeline
from deploy_fetcher.errors import (
    AuthError,
    RateLimited,
    SourceError,
    TargetNotFound,
    TransientError,
)


@pytest.fixture(scope="module")
def app_keys() -> tuple[str, str]:
    return key_pair()


def test_bad_credentials_are_one_clear_auth_error(make_emulator, make_provider):
    """A rejected token raises AuthError naming the credential, never the token."""
    emulator = make_emulator(scenario=scenario(), start=START)
    provider, _ = make_provider(emulator, token="ghp_wrongwrongwrong")
    with pytest.raises(AuthError) as caught:
        Harness(provider).cycle()
    assert "GitHub rejected the credentials of gh (HTTP 401 Bad credentials)" == str(caught.value)
    assert "ghp_wrong" not in repr(provider.config)


def test_app_installation_token_is_renewed_before_it_expires(
    make_emulator, make_provider, app_keys
):
    """App auth: the JWT is verified, and a token is renewed within the margin of its expiry."""
    private, public = app_keys
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.install_app(42, public, 7, ["octo/api", "octo/web"])
    app = {"app_id": 42, "private_key": private, "installation_id": 7}
    provider, _ = make_provider(emulator, app=app, repos=["octo/*"])
    harness = Harness(provider)
    assert ["octo/api", "octo/web"] == list(provider.targets())
    harness.cycle()
    assert 1 == emulator.tokens_issued
    emulator.advance(50 * 60)
    harness.cycle()
    assert 1 == emulator.tokens_issued
    emulator.advance(6 * 60)
    harness.cycle()
    assert 2 == emulator.tokens_issued
    assert set() == {r.status for r in emulator.log if r.status == 401}


def test_app_with_a_wrong_key_is_an_auth_error(make_emulator, make_provider, app_keys):
    """A JWT signed with another key is refused by the emulator; the adapter reports AuthError."""
    _, public = app_keys
    emulator = make_emulator(start=START)
    emulator.install_app(42, public, 7, ["octo/api"])
    other, _ = key_pair()
    provider, _ = make_provider(
        emulator, app={"app_id": 42, "private_key": other, "installation_id": 7}
    )
    with pytest.raises(
        AuthError, match="GitHub App 42 could not get a token for installation 7 \\(HTTP 401\\)"
    ):
        Harness(provider).cycle(["octo/api"])


def test_deleted_repo_and_missing_permission_are_skipped_targets(make_emulator, make_provider):
    """A gone repository or a 403 without rate limit raises TargetNotFound; other repos still poll."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.add_repo("octo/gone")
    emulator.delete_repo("octo/gone")
    emulator.add_repo("octo/secret")
    emulator.forbid("octo/secret", "/deployments")
    provider, _ = make_provider(emulator, repos=["octo/gone", "octo/secret", "octo/api"])
    harness = Harness(provider)
    with pytest.raises(
        TargetNotFound,
        match="octo/gone/deployments\\?per_page=100: not found or not visible \\(HTTP 404",
    ):
        harness.cycle(["octo/gone"])
    with pytest.raises(TargetNotFound, match="forbidden \\(HTTP 403 Resource not accessible"):
        harness.cycle(["octo/secret"])
    assert 18 == len(harness.cycle(["octo/api"]))


def test_server_errors_are_retried_with_backoff(make_emulator, make_provider):
    """A burst of 503s is retried (with full-jitter waits under a growing cap); the cycle completes."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.inject(Fault(match="/deployments$", status=503, count=2))
    provider, context = make_provider(emulator)
    assert 18 == len(Harness(provider).cycle())
    assert 2 == len(context.slept)
    assert all(0 <= wait <= cap for wait, cap in zip(context.slept, (0.5, 1.0), strict=True))


def test_persistent_server_errors_end_the_cycle_as_transient(make_emulator, make_provider):
    """When every attempt fails the cycle ends with TransientError and no cursor is produced."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.inject(Fault(match="/deployments$", status=502, count=10))
    provider, _ = make_provider(emulator)
    harness = Harness(provider)
    with pytest.raises(TransientError, match=r"HTTP 502 .*\(failed after 4 attempts\)"):
        harness.cycle()
    assert {} == harness.cursors


def test_a_server_error_waits_the_retry_after_it_sends(make_emulator, make_provider):
    """A 503 with Retry-After is retried after the time it asks for, not a back-off of its own."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.inject(Fault(match="/deployments$", status=503, headers={"Retry-After": "7"}, count=1))
    provider, context = make_provider(emulator)
    assert 18 == len(Harness(provider).cycle())
    assert [7.0] == context.slept


def test_an_unexpected_client_error_is_a_source_error_not_retried(make_emulator, make_provider):
    """A 422 is a request the adapter should not have made: SourceError at once, no retry."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.inject(Fault(match="/deployments$", status=422, count=10))
    provider, context = make_provider(emulator)
    with pytest.raises(SourceError, match="unexpected HTTP 422") as caught:
        Harness(provider).cycle()
    assert (False, []) == (isinstance(caught.value, TransientError), context.slept)


def test_secondary_rate_limit_honours_retry_after(make_emulator, make_provider):
    """A 429 with retry-after waits that long (through the interruptible sleep), then goes on."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.inject(
        Fault(
            match="/statuses$|/graphql$",
            status=429,
            headers={"retry-after": "7"},
            body='{"message": "You have exceeded a secondary rate limit."}',
        )
    )
    provider, context = make_provider(emulator)
    assert 18 == len(Harness(provider).cycle())
    assert 7 <= context.slept[0] < 7.1


def test_long_retry_after_ends_the_cycle_rate_limited(make_emulator, make_provider):
    """A retry-after longer than max_rate_limit_wait raises RateLimited with the retry time."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.inject(
        Fault(
            match="/deployments$",
            status=403,
            headers={"retry-after": "600"},
            body='{"message": "slow down"}',
        )
    )
    provider, _ = make_provider(emulator)
    with pytest.raises(RateLimited) as caught:
        Harness(provider).cycle()
    assert START + timedelta(seconds=600) == caught.value.retry_at
    assert [
        "GitHub credential gh: secondary rate limit (retry-after) until 2026-03-02T12:10:00Z"
    ] == provider.ready_problems()


def test_quota_share_stops_polling_until_the_reset(make_emulator, make_provider):
    """With a 40-request quota and a 50% share, polling stops at 20 charged requests until the reset."""
    emulator = make_emulator(scenario=scenario(), start=START, rate_limit=40)
    provider, context = make_provider(emulator, repos=["octo/api", "octo/web"], graphql=False)
    harness = Harness(provider)
    harness.cycle(["octo/api"])
    with pytest.raises(RateLimited) as caught:
        harness.cycle(["octo/web"])
    assert 20 == len(emulator.charged())
    assert START + timedelta(hours=1) == caught.value.retry_at
    problem = (
        "GitHub credential gh: core budget spent (20 of 50% of 40) until 2026-03-02T13:00:00Z; "
        "remaining 20/40"
    )
    assert [problem] == provider.ready_problems()
    assert 20.0 == context.metrics.registry.get_sample_value(
        "fetcher_ci_rate_limit_remaining", {"provider": "github", "credential": "gh"}
    )
    emulator.advance(3601)
    harness.cycle()
    since = START - timedelta(days=7)
    expected = expected_deployment_keys(emulator, "octo/api", since) | expected_deployment_keys(
        emulator, "octo/web", since
    )
    assert (expected, []) == (harness.dedup_keys(), provider.ready_problems())


def test_cycle_cut_short_by_the_quota_resumes_after_its_last_stored_chunk(
    make_emulator, make_provider
):
    """150 new deployments are stored in chunks of 100; after the reset only the rest is read."""
    emulator = make_emulator(start=START, rate_limit=4)
    for n in range(150):
        at = START - timedelta(hours=3) + timedelta(seconds=30 * n)
        emulator.add_deployment(
            "octo/api", "prod", sha=f"{n:040x}", at=at, statuses=[("success", at)]
        )
    harness = Harness(make_provider(emulator)[0])
    with pytest.raises(RateLimited):
        harness.cycle()
    assert (100, 2) == (len(harness.dedup_keys()), len(emulator.charged("graphql")))
    emulator.reset_log()
    emulator.advance(3601)
    harness.cycle()
    assert (150, 1) == (len(harness.dedup_keys()), len(emulator.charged("graphql")))


def test_enterprise_server_without_rate_limit_headers(make_emulator, make_provider):
    """Without x-ratelimit headers no limit is assumed: far more than the emulator's quota is spent freely."""
    emulator = make_emulator(
        scenario=scenario(), start=START, rate_limit=3, rate_limit_headers=False
    )
    provider, _ = make_provider(
        emulator, base_url=emulator.url("/api/v3"), repos=["octo/api", "octo/web"]
    )
    harness = Harness(provider)
    harness.cycle()
    since = START - timedelta(days=7)
    expected = expected_deployment_keys(emulator, "octo/api", since) | expected_deployment_keys(
        emulator, "octo/web", since
    )
    assert (expected, []) == (harness.dedup_keys(), provider.ready_problems())
    assert len(emulator.charged()) > 3


def test_malformed_list_is_logged_with_its_url_and_retried_next_cycle(make_emulator, make_provider):
    """A deployments page that is not JSON ends the cycle (cursor unmoved) with a warning naming the URL."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.inject(Fault(kind="malformed", match="/deployments$"))
    provider, _ = make_provider(emulator)
    harness = Harness(provider)
    with capture_logs() as logs, pytest.raises(TransientError):
        harness.cycle()
    warnings = [e for e in logs if e["event"] == "github.malformed_response"]
    assert [f"{emulator.url()}/repos/octo/api/deployments?per_page=100"] == [
        w["url"] for w in warnings
    ]
    assert 18 == len(harness.cycle())


def test_malformed_item_is_skipped_and_fetched_again_later(make_emulator, make_provider):
    """One deployment whose statuses are garbage is logged and kept open; the others are emitted."""
    emulator = make_emulator(start=START)
    for env in ("dev", "qa"):
        emulator.add_deployment(
            "octo/api",
            env,
            sha="1" * 40,
            at=START - timedelta(minutes=3),
            statuses=[("success", START - timedelta(minutes=2))],
        )
    bad = max(emulator.repo("octo/api").deployments)
    emulator.inject(Fault(kind="malformed", match=f"/deployments/{bad}/statuses$"))
    provider, _ = make_provider(emulator, graphql=False)
    harness = Harness(provider)
    with capture_logs() as logs:
        first = harness.cycle()
    assert ["dev"] == [e.environment for e in first]
    assert [f"{emulator.url()}/repos/octo/api/deployments/{bad}/statuses?per_page=100"] == [
        e["url"] for e in logs if e["event"] == "github.malformed_response"
    ]
    assert ["qa"] == [e.environment for e in harness.cycle()]


def test_discovery_lists_org_and_user_repositories_and_skips_archived(make_emulator, make_provider):
    """owner/* takes an organisation's or a user's repositories (archived ones left out), for free when unchanged."""
    emulator = make_emulator(start=START)
    for name in ("octo/api", "octo/web", "octo/old"):
        emulator.add_repo(name, archived=name.endswith("old"))
    emulator.add_repo("mona/dotfiles", owner_is_org=False)
    provider, _ = make_provider(emulator, repos=["octo/*", "mona/*", "octo/api", "ghost/*"])
    with capture_logs() as logs:
        assert ["mona/dotfiles", "octo/api", "octo/web"] == list(provider.targets())
    assert ["ghost"] == [e["owner"] for e in logs if e["event"] == "github.owner_not_found"]
    emulator.reset_log()
    provider.targets()
    assert 0 == len([c for c in emulator.charged() if "ghost" not in c.path])


def test_stop_during_a_rate_limit_wait_ends_the_cycle(make_emulator, make_provider):
    """A shutdown while waiting for a short rate limit ends the cycle at once."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.inject(Fault(match="/deployments$", status=429, headers={"retry-after": "5"}))
    provider, context = make_provider(emulator)
    context.stop.set()
    with pytest.raises(TransientError, match="stopping"):
        Harness(provider).cycle()


def test_pipeline_started_after_polling_began_is_seen(make_emulator, make_provider):
    """New deployments appear in later cycles as the emulator's clock advances."""
    emulator = make_emulator(start=START)
    emulator.add_repo("octo/api")
    harness = Harness(make_provider(emulator)[0])
    assert [] == harness.cycle()
    start_pipeline(emulator, "octo/api", CHAIN, at=START + timedelta(minutes=1), sha="9" * 40)
    for _ in range(15):
        emulator.advance(60)
        harness.cycle()
    finals = [steps[-1][0] for steps in harness.by_deployment().values()]
    assert ["success", "success", "success"] == finals


def test_quota_spent_by_someone_else_blocks_until_githubs_reset(make_emulator, make_provider):
    """GitHub's own 403 'rate limit exceeded' (remaining 0) stops the credential until x-ratelimit-reset."""
    emulator = make_emulator(scenario=scenario(), start=START, rate_limit=5)
    provider, _ = make_provider(emulator, repos=["octo/api"])
    other, _ = make_provider(
        emulator, repos=["octo/web"], name="other", quota_share=1.0, graphql=False
    )
    with pytest.raises(RateLimited):
        Harness(other).cycle()
    with pytest.raises(RateLimited) as caught:
        Harness(provider).cycle()
    assert (START + timedelta(hours=1), 403) == (caught.value.retry_at, emulator.log[-1].status)


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        ("https", "127.0.0.1", "https://127.0.0.1:{port}"),
        ("http", "localhost", "http://localhost:{port}"),
    ],
)
def test_a_redirect_to_another_scheme_or_host_names_the_base_url_to_set(
    make_emulator, make_provider, scheme, host, expected
):
    """A 301 PyGithub will not follow is a SourceError saying which base_url to configure."""
    emulator = make_emulator(start=START)
    emulator.add_repo("octo/api")
    port = emulator.port
    location = f"{scheme}://{host}:{port}/repos/octo/api/deployments"
    emulator.inject(Fault(status=301, headers={"Location": location}, body=""))
    provider, _ = make_provider(emulator)
    with pytest.raises(SourceError) as caught:
        Harness(provider).cycle(["octo/api"])
    assert f"set base_url to {expected.format(port=port)}" in str(caught.value)


def test_graphql_answering_404_falls_back_to_rest_with_advice_about_graphql(
    make_emulator, make_provider
):
    """A GitHub whose /graphql answers 404 is read over REST; the log says GraphQL is not served."""
    emulator = make_emulator(scenario=scenario(), start=START)
    emulator.inject(Fault(match="/graphql$", status=404, body='{"message": "Not Found"}'))
    provider, _ = make_provider(emulator)
    with capture_logs() as logs:
        events = Harness(provider).cycle()
    assert 18 == len(events)
    reasons = [log["reason"] for log in logs if log["event"] == "github.graphql_unavailable"]
    assert reasons
    for reason in reasons:
        assert "does not serve GraphQL" in reason
        assert "graphql: false" in reason
        assert "repository name" not in reason


def test_the_secondary_limit_is_never_reached(make_emulator, make_provider):
    """At a 5-point secondary limit, the 5th request of a minute waits rather than be refused."""
    emulator = make_emulator(scenario=scenario(), start=START, secondary_points_per_minute=5)
    provider, _ = make_provider(emulator, secondary_limit=5, max_rate_limit_wait="1s")
    with pytest.raises(RateLimited) as caught:
        Harness(provider).cycle()  # six requests, the last two a minute away
    assert (4, 0) == (len(emulator.log), emulator.secondary_refusals)
    assert "request budget" in str(caught.value)

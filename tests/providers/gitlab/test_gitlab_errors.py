"""Errors, retries and rate limits, classified into the fetcher's taxonomy at the adapter's edge."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from structlog.testing import capture_logs
from tests.providers.gitlab.support import (
    START,
    TOKEN,
    Harness,
    SleepRecorder,
    make_context,
    make_provider,
)

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.errors import AuthError, RateLimited, TargetNotFound, TransientError

DEPLOYMENTS = r"/projects/acme%2Fapi/deployments$"


def poll(provider, target="acme/api", cursor=None):
    return list(provider.poll(target, cursor))


def test_bad_token_is_one_clear_auth_error_and_a_readiness_problem(emulator):
    """A rejected token raises AuthError (no token in it) and shows in ready_problems until fixed."""
    provider = make_provider(emulator)
    emulator.token = "rotated"
    with pytest.raises(AuthError) as caught:
        poll(provider)
    problems = provider.ready_problems()
    emulator.token = TOKEN
    poll(provider)
    assert (True, False, 1, []) == (
        "rejected the token (401)" in str(caught.value),
        TOKEN in str(caught.value) + " ".join(problems),
        len(problems),
        provider.ready_problems(),
    )


def test_token_without_read_api_scope_is_an_auth_error():
    """insufficient_scope is a credential problem, not a missing project."""
    with GitLabEmulator(token=TOKEN, scenario="empty", start=START, scopes=["read_user"]) as server:
        server.add_project("acme/api")
        with pytest.raises(AuthError, match="read_api"):
            poll(make_provider(server))


def test_missing_project_is_target_not_found(emulator):
    """A project that does not exist (or is invisible) is reported and skipped."""
    with pytest.raises(TargetNotFound, match="404"):
        poll(make_provider(emulator, projects=["acme/gone"]), "acme/gone")


def test_forbidden_project_is_target_not_found(emulator):
    """A project the token may not read is reported and skipped like a missing one."""
    emulator.add_project("acme/secret")
    emulator.set_forbidden("acme/secret")
    with pytest.raises(TargetNotFound, match="403"):
        poll(make_provider(emulator, projects=["acme/secret"]), "acme/secret")


def test_transient_5xx_is_retried_with_backoff_then_succeeds(emulator):
    """Two 503s then success: three requests, two full-jitter back-off waits, events delivered."""
    emulator.add_pipeline("acme/api", ago=3600)
    emulator.inject(Fault(match=DEPLOYMENTS, status=503, count=2))
    sleeps = SleepRecorder()
    pages = poll(make_provider(emulator, context=make_context(emulator, sleeps)))
    assert (6, 2, 3) == (
        sum(len(p.events) for p in pages),
        len(sleeps.waits),
        len(emulator.requests_to(DEPLOYMENTS)),
    )
    assert all(0 <= wait <= cap for wait, cap in zip(sleeps.waits, (0.5, 1.0), strict=True))


def test_retries_are_bounded_and_end_in_a_transient_error(emulator):
    """A 503 that persists costs retries + 1 requests, then TransientError."""
    emulator.inject(Fault(match=DEPLOYMENTS, status=503, count=50))
    provider = make_provider(emulator, retries=2)
    with pytest.raises(TransientError, match="503"):
        poll(provider)
    assert 3 == len(emulator.requests_to(DEPLOYMENTS))


def test_429_is_waited_out_through_the_context_when_short(emulator):
    """A 429 with Retry-After within max_rate_limit_wait is slept through context.sleep, then retried."""
    emulator.add_pipeline("acme/api", ago=3600)
    emulator.inject(
        Fault(match=DEPLOYMENTS, status=429, headers={"Retry-After": "2"}, body="Retry later")
    )
    sleeps = SleepRecorder()
    pages = poll(make_provider(emulator, context=make_context(emulator, sleeps)))
    assert (6, [2]) == (sum(len(p.events) for p in pages), [round(w) for w in sleeps.waits])


def test_long_429_ends_the_cycle_as_rate_limited_with_the_retry_time(emulator):
    """A Retry-After beyond max_rate_limit_wait raises RateLimited(retry_at) and readiness reports it."""
    emulator.inject(Fault(match=DEPLOYMENTS, status=429, headers={"Retry-After": "120"}, count=5))
    provider = make_provider(emulator)
    with pytest.raises(RateLimited) as caught:
        poll(provider)
    retry_at = caught.value.retry_at
    assert retry_at is not None
    assert (True, 1) == (
        timedelta(seconds=115) <= retry_at - START <= timedelta(seconds=121),
        len(provider.ready_problems()),
    )


def test_spent_quota_stops_requests_before_the_server_refuses_them():
    """RateLimit-Remaining at zero: the next request is not sent, the cycle ends rate limited."""
    with GitLabEmulator(token=TOKEN, scenario="empty", start=START, rate_limit=1) as server:
        server.add_project("acme/api")
        server.add_project("acme/web")
        provider = make_provider(
            server, projects=["acme/api", "acme/web"], max_rate_limit_wait="0s"
        )
        poll(provider, "acme/api")
        with pytest.raises(RateLimited, match="quota exhausted"):
            poll(provider, "acme/web")
        assert [200] == [r.status for r in server.log]


def test_request_budget_is_shared_and_ends_the_cycle_when_spent(emulator):
    """With request_budget: 2 and no wait allowed, the third request of the minute is refused."""
    for name in ("acme/web", "acme/db"):
        emulator.add_project(name)
    provider = make_provider(
        emulator,
        projects=["acme/api", "acme/web", "acme/db"],
        request_budget=2,
        max_rate_limit_wait="0s",
    )
    poll(provider, "acme/api")
    poll(provider, "acme/web")
    with pytest.raises(RateLimited, match="request budget"):
        poll(provider, "acme/db")
    assert 2 == len(emulator.log)


def test_unparsable_response_is_transient_and_yields_no_page(emulator):
    """A body that is not JSON ends the cycle (TransientError) before any cursor is produced."""
    emulator.inject(Fault(kind="malformed", match=DEPLOYMENTS))
    provider = make_provider(emulator)
    pages = []
    with pytest.raises(TransientError, match="not valid JSON"):
        pages.extend(provider.poll("acme/api", None))
    assert [] == pages


@pytest.mark.parametrize("body", ['{"message": "moved"}', '"a string"', "42"])
def test_a_list_page_that_is_not_a_list_is_transient(emulator, body):
    """A JSON object or scalar where a page of deployments belongs ends the cycle as transient."""
    emulator.inject(Fault(match=DEPLOYMENTS, status=200, body=body))
    with pytest.raises(TransientError, match=r"deployments: .* not a list"):
        poll(make_provider(emulator))


def test_an_iterated_list_that_is_not_a_list_is_transient(emulator):
    """The same for a list python-gitlab follows page by page (a pipeline's jobs)."""
    emulator.add_project("acme/cli")
    emulator.add_pipeline("acme/cli", environments=(), deploy_job=True, ago=3600)
    project = {"project": "acme/cli", "mode": "pipelines", "pipelines": {"job_pattern": "deploy*"}}
    emulator.inject(Fault(match=r"/jobs$", status=200, body='{"message": "moved"}'))
    with pytest.raises(TransientError, match=r"/jobs: .* not a list"):
        poll(make_provider(emulator, projects=[project]), "acme/cli")


def test_malformed_item_is_logged_with_its_url_and_skipped(emulator):
    """One bad item in a good page is logged (with the API URL) and the others are mapped."""
    emulator.add_pipeline("acme/api", environments=["staging"], ago=3600)
    good = requests.get(
        emulator.url("/api/v4/projects/acme%2Fapi/deployments"),
        headers={"PRIVATE-TOKEN": TOKEN},
        timeout=5,
    ).json()
    body = json.dumps([{"id": 999, "status": "success", "created_at": "not a time"}, *good])
    emulator.inject(Fault(match=DEPLOYMENTS, status=200, body=body))
    with capture_logs() as logs:
        events = Harness(make_provider(emulator)).cycle("acme/api")
    warnings = [entry for entry in logs if entry["event"] == "gitlab.malformed_item"]
    assert (3, 1, 999, emulator.url("/api/v4/projects/acme%2Fapi/deployments")) == (
        len(events),
        len(warnings),
        warnings[0]["item"],
        warnings[0]["url"],
    )


def test_unreachable_instance_is_transient(emulator):
    """Connection refused after the retries is a TransientError naming the instance."""
    provider = make_provider(emulator, retries=1)
    emulator.stop()
    with pytest.raises(TransientError, match="ConnectionError"):
        poll(provider)


def test_requests_and_quota_are_exported_as_metrics(emulator):
    """fetcher_ci_requests counts responses by status; the remaining quota is a gauge."""
    # The injected 502 comes from the fault layer, before the emulator counts the request.
    context = make_context(emulator, SleepRecorder())
    emulator.inject(Fault(match=DEPLOYMENTS, status=502))
    poll(make_provider(emulator, context=context))
    registry = context.metrics.registry
    counts = {
        code: registry.get_sample_value(
            "fetcher_ci_requests_total", {"provider": "gitlab", "status_code": code}
        )
        for code in ("200", "502")
    }
    remaining = registry.get_sample_value(
        "fetcher_ci_rate_limit_remaining", {"provider": "gitlab", "credential": "gl"}
    )
    assert ({"200": 1.0, "502": 1.0}, 1999.0) == (counts, remaining)


def test_damaged_cursor_is_logged_and_the_target_starts_over(emulator):
    """A cursor that cannot be read is not fatal: logged, and the poll starts at now - lookback."""
    damaged = {"v": 1, "mode": "deployments", "scope": "x", "mark": "2026-03-01T00:00:00Z"}
    provider = make_provider(emulator)
    scope = provider._resolve("acme/api")[0].scope()
    with capture_logs() as logs:
        poll(provider, cursor={**damaged, "scope": scope, "pipelines": "nope"})
    found = [(e["event"], e["log_level"]) for e in logs if "cursor" in e["event"]]
    assert [("gitlab.cursor_reset", "warning")] == found


def test_token_stays_out_of_reprs(emulator):
    """Neither the provider's client, its session nor its config show the token."""
    provider = make_provider(emulator)
    assert TOKEN not in repr(provider.client) + repr(provider.client.policy) + repr(provider.config)

"""The HTTP client: auth, api-version, continuation tokens, response classification, throttling."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from structlog.testing import capture_logs
from tests.providers.azure_devops.support import TOKEN, SleepRecorder

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.errors import (
    AuthError,
    RateLimited,
    SourceError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.azure_devops.auth import BearerFileAuth, PatAuth
from deploy_fetcher.providers.azure_devops.client import AzureDevOpsClient, shared_client
from deploy_fetcher.providers.azure_devops.config import AzureDevOpsConfig

ORG = "https://dev.azure.com/contoso"
VSRM = "https://vsrm.dev.azure.com/contoso"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RECORDS = f"{ORG}/shop/_apis/distributedtask/environments/3/environmentdeploymentrecords"
BUILDS = f"{ORG}/shop/_apis/build/builds"


def _client(sleeps=None, credential=None, metrics=None, **keys) -> AzureDevOpsClient:
    """A client as a source with ``keys`` builds it; waits recorded, the clock moved by them."""
    sleeps = sleeps if sleeps is not None else SleepRecorder()
    config = AzureDevOpsConfig.model_validate(
        {
            "name": "ado",
            "organization_url": ORG,
            "release_url": VSRM,
            "projects": ["shop"],
            "pat": TOKEN,
            **keys,
        }
    )
    context = ProviderContext(
        metrics=metrics or Metrics(), defaults=DefaultsConfig(), clock=sleeps.clock(lambda: NOW)
    )
    context.sleep = sleeps  # type: ignore[method-assign]
    return shared_client(config, context, credential or PatAuth(TOKEN))


def _page(*ids: int, token: str | None = None) -> httpx.Response:
    headers = {"x-ms-continuationtoken": token} if token else {}
    return httpx.Response(
        200, json={"count": len(ids), "value": [{"id": i} for i in ids]}, headers=headers
    )


def _ids(pager) -> list[int]:
    return [item["id"] for page in pager for item in page.items]


@respx.mock
def test_pat_is_sent_as_basic_auth_with_an_empty_user_name():
    """Authorization is Basic base64(':' + PAT); the Accept header asks for JSON."""
    route = respx.get(BUILDS).mock(return_value=_page(1))
    _ids(_client().builds("shop", page_size=10, max_pages=1))
    request = route.calls.last.request
    expected = "Basic " + base64.b64encode(f":{TOKEN}".encode()).decode()
    assert (expected, "application/json") == (
        request.headers["authorization"],
        request.headers["accept"],
    )


@respx.mock
def test_api_versions_per_endpoint():
    """GA endpoints get 7.1, preview ones their -preview flag (records, environments, releases)."""
    builds = respx.get(BUILDS).mock(return_value=_page())
    records = respx.get(RECORDS).mock(return_value=_page())
    envs = respx.get(f"{ORG}/shop/_apis/distributedtask/environments").mock(return_value=_page())
    releases = respx.get(f"{VSRM}/shop/_apis/release/deployments").mock(return_value=_page())
    client = _client()
    _ids(client.builds("shop", page_size=5, max_pages=1))
    _ids(client.environment_records("shop", 3, page_size=5, max_pages=1))
    _ids(client.environments("shop", page_size=5, max_pages=1))
    _ids(client.release_deployments("shop", min_modified=NOW, page_size=5, max_pages=1))
    versions = [
        route.calls.last.request.url.params["api-version"]
        for route in (builds, records, envs, releases)
    ]
    assert ["7.1", "7.1-preview.1", "7.1-preview.1", "7.1-preview.2"] == versions


@respx.mock
def test_records_take_top_without_dollar_and_builds_take_dollar_top():
    """The two spellings of the page size that the API really uses."""
    records = respx.get(RECORDS).mock(return_value=_page())
    builds = respx.get(BUILDS).mock(return_value=_page())
    client = _client()
    _ids(client.environment_records("shop", 3, page_size=7, max_pages=1))
    _ids(client.builds("shop", definitions=[11, 12], page_size=9, max_pages=1, min_time=NOW))
    params = builds.calls.last.request.url.params
    assert ("7", "9", "11,12", "queueTimeAscending", "2026-03-02T12:00:00.000000Z") == (
        records.calls.last.request.url.params["top"],
        params["$top"],
        params["definitions"],
        params["queryOrder"],
        params["minTime"],
    )


@respx.mock
def test_continuation_tokens_are_followed_to_the_end():
    """Each x-ms-continuationtoken goes back as continuationToken until none comes."""
    route = respx.get(RECORDS).mock(
        side_effect=[_page(9, 8, token="7"), _page(7, 6, token="5"), _page(5)]
    )
    ids = _ids(_client().environment_records("shop", 3, page_size=2, max_pages=10))
    tokens = [call.request.url.params.get("continuationToken") for call in route.calls]
    assert ([9, 8, 7, 6, 5], [None, "7", "5"]) == (ids, tokens)


@respx.mock
def test_a_repeated_continuation_token_fails_the_walk():
    """A server going round in circles is refused instead of spending the budget."""
    respx.get(RECORDS).mock(side_effect=[_page(9, token="x"), _page(8, token="x")])
    with pytest.raises(TransientError, match="repeated a continuation token"):
        _ids(_client().environment_records("shop", 3, page_size=1, max_pages=10))


@respx.mock
def test_max_pages_truncates_the_walk():
    """A walk stops after max_pages and says so."""
    respx.get(RECORDS).mock(side_effect=[_page(9, token="a"), _page(8, token="b")])
    pager = _client().environment_records("shop", 3, page_size=1, max_pages=2)
    assert ([9, 8], True, "b") == (_ids(pager), pager.truncated, pager.resume)


@respx.mock
def test_a_truncated_walk_resumes_from_its_next_token():
    """A walk given the token where an earlier one stopped starts on that page."""
    route = respx.get(RECORDS).mock(side_effect=[_page(7, 6, token="5"), _page(5)])
    pager = _client().environment_records("shop", 3, page_size=2, max_pages=5, start="7")
    ids = _ids(pager)
    tokens = [call.request.url.params.get("continuationToken") for call in route.calls]
    assert ([7, 6, 5], ["7", "5"], False) == (ids, tokens, pager.truncated)


@respx.mock
def test_sign_in_page_with_203_is_an_auth_error():
    """Azure DevOps' 203 HTML sign-in page for a bad PAT is a credential problem."""
    respx.get(BUILDS).mock(
        return_value=httpx.Response(
            203, text="<html>Sign in</html>", headers={"content-type": "text/html"}
        )
    )
    with pytest.raises(AuthError, match="HTTP 203") as caught:
        _ids(_client().builds("shop", page_size=1, max_pages=1))
    assert TOKEN not in str(caught.value)


@respx.mock
def test_html_with_200_is_an_auth_error():
    """Any non-JSON 2xx is the sign-in page in disguise."""
    respx.get(BUILDS).mock(
        return_value=httpx.Response(200, text="<html/>", headers={"content-type": "text/html"})
    )
    with pytest.raises(AuthError, match="instead of JSON"):
        _ids(_client().builds("shop", page_size=1, max_pages=1))


@respx.mock
def test_redirect_to_sign_in_is_an_auth_error():
    """A 302 to the login host is not followed: it is a credential problem."""
    respx.get(BUILDS).mock(
        return_value=httpx.Response(
            302, headers={"location": "https://login.microsoftonline.com/x"}
        )
    )
    with pytest.raises(AuthError, match=r"login\.microsoftonline\.com"):
        _ids(_client().builds("shop", page_size=1, max_pages=1))


@respx.mock
def test_expired_pat_401_is_an_auth_error_without_the_token():
    """401 is AuthError; the message names the URL, never the token."""
    respx.get(BUILDS).mock(return_value=httpx.Response(401, text="Access Denied: expired"))
    with pytest.raises(AuthError, match="HTTP 401") as caught:
        _ids(_client().builds("shop", page_size=1, max_pages=1))
    text = str(caught.value)
    assert (False, False) == (
        TOKEN in text,
        base64.b64encode(f":{TOKEN}".encode()).decode() in text,
    )


@respx.mock
def test_bearer_token_file_is_reread_after_a_401(tmp_path):
    """A token rotated without a visible change of the file is picked up once a request is refused."""
    path = tmp_path / "token"
    path.write_text("old-token\n", encoding="utf-8")
    credential = BearerFileAuth(path)
    credential.header()
    stat = path.stat()
    path.write_text("new-token\n", encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def answer(request: httpx.Request) -> httpx.Response:
        ok = request.headers["authorization"] == "Bearer new-token"
        return _page(1) if ok else httpx.Response(401)

    route = respx.get(BUILDS).mock(side_effect=answer)
    assert [1] == _ids(_client(credential=credential).builds("shop", page_size=1, max_pages=1))
    assert 2 == route.call_count


@respx.mock
def test_bearer_token_file_change_is_used_on_the_next_request(tmp_path):
    """A rewritten token file is read again before the next request, without a 401 first."""
    path = tmp_path / "token"
    path.write_text("first", encoding="utf-8")
    route = respx.get(BUILDS).mock(return_value=_page())
    client = _client(credential=BearerFileAuth(path))
    _ids(client.builds("shop", page_size=1, max_pages=1))
    path.write_text("second-token", encoding="utf-8")
    _ids(client.builds("shop", page_size=1, max_pages=1))
    sent = [call.request.headers["authorization"] for call in route.calls]
    assert ["Bearer first", "Bearer second-token"] == sent


@respx.mock
def test_missing_project_is_target_not_found_with_the_service_message():
    """404 carries Azure DevOps' own message and means: report and skip this project."""
    respx.get(BUILDS).mock(
        return_value=httpx.Response(
            404,
            json={
                "message": "TF200016: The following project does not exist: shop.",
                "typeKey": "X",
            },
        )
    )
    with pytest.raises(TargetNotFound, match="TF200016"):
        _ids(_client().builds("shop", page_size=1, max_pages=1))


@respx.mock
def test_permission_denied_is_target_not_found():
    """403 on a project is skipped like a missing one."""
    respx.get(BUILDS).mock(return_value=httpx.Response(403, json={"message": "VS403403"}))
    with pytest.raises(TargetNotFound, match="403"):
        _ids(_client().builds("shop", page_size=1, max_pages=1))


@respx.mock
def test_other_client_errors_are_source_errors():
    """A 400 is neither retried nor taken for a credential problem."""
    route = respx.get(BUILDS).mock(return_value=httpx.Response(400, json={"message": "bad"}))
    with pytest.raises(SourceError) as caught:
        _ids(_client().builds("shop", page_size=1, max_pages=1))
    assert (SourceError, 1) == (type(caught.value), route.call_count)


@respx.mock
def test_short_retry_after_is_waited_out():
    """A 429 with a short Retry-After is slept through and the request retried."""
    sleeps = SleepRecorder()
    metrics = Metrics()
    respx.get(BUILDS).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "3"}), _page(1)]
    )
    assert [1] == _ids(_client(sleeps, metrics=metrics).builds("shop", page_size=1, max_pages=1))
    counted = {
        code: metrics.registry.get_sample_value(
            "fetcher_ci_requests_total", {"provider": "azure-devops", "status_code": code}
        )
        for code in ("429", "200")
    }
    assert ([3.0], {"429": 1.0, "200": 1.0}) == (sleeps.waits, counted)


@respx.mock
def test_long_retry_after_ends_the_cycle_as_rate_limited():
    """A Retry-After beyond max_rate_limit_wait raises RateLimited with the time it clears."""
    sleeps = SleepRecorder()
    respx.get(BUILDS).mock(return_value=httpx.Response(429, headers={"Retry-After": "600"}))
    client = _client(sleeps, max_rate_limit_wait=60)
    with pytest.raises(RateLimited) as caught:
        _ids(client.builds("shop", page_size=1, max_pages=1))
    expected = NOW + timedelta(seconds=600)
    blocked = client.policy.quota.check() if client.policy.quota else None
    assert (expected, expected, []) == (
        caught.value.retry_at,
        blocked.until if blocked else None,
        sleeps.waits,
    )


@respx.mock
def test_server_errors_are_retried_with_backoff():
    """5xx twice then 200: two full-jitter waits under a cap that doubles, then the data."""
    sleeps = SleepRecorder()
    respx.get(BUILDS).mock(side_effect=[httpx.Response(503), httpx.Response(500), _page(4)])
    assert [4] == _ids(_client(sleeps).builds("shop", page_size=1, max_pages=1))
    assert 2 == len(sleeps.waits)
    assert all(0 <= wait <= cap for wait, cap in zip(sleeps.waits, (0.5, 1.0), strict=True))


@respx.mock
def test_a_server_error_with_a_long_retry_after_is_transient_without_waiting():
    """A 503 asking for more than max_rate_limit_wait ends the request at once, nothing slept."""
    sleeps = SleepRecorder()
    route = respx.get(BUILDS).mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "3600"}), _page(4)]
    )
    with pytest.raises(TransientError, match=r"HTTP 503.*3600s"):
        _ids(_client(sleeps, max_rate_limit_wait=60.0).builds("shop", page_size=1, max_pages=1))
    assert ([], 1) == (sleeps.waits, route.call_count)


@respx.mock
def test_a_server_error_with_a_short_retry_after_waits_that_long():
    """A Retry-After within max_rate_limit_wait on a 408 is waited out, then the request retried."""
    sleeps = SleepRecorder()
    respx.get(BUILDS).mock(
        side_effect=[httpx.Response(408, headers={"Retry-After": "7"}), _page(4)]
    )
    assert ([4], [7.0]) == (
        _ids(_client(sleeps).builds("shop", page_size=1, max_pages=1)),
        sleeps.waits,
    )


@respx.mock
def test_persistent_server_errors_are_transient():
    """Retries exhausted: TransientError (the next cycle tries again)."""
    route = respx.get(BUILDS).mock(return_value=httpx.Response(502))
    with pytest.raises(TransientError, match="HTTP 502"):
        _ids(_client(retries=1).builds("shop", page_size=1, max_pages=1))
    assert 2 == route.call_count


@respx.mock
def test_network_errors_are_transient():
    """A refused connection ends as TransientError after the retries."""
    respx.get(BUILDS).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TransientError, match="network error"):
        _ids(_client(retries=1).builds("shop", page_size=1, max_pages=1))


@respx.mock
def test_malformed_json_is_logged_with_its_url_and_transient():
    """A broken JSON body is logged at warning with the URL; the cycle will retry."""
    respx.get(BUILDS).mock(
        return_value=httpx.Response(
            200, content=b'{"count": 1, "value": [', headers={"content-type": "application/json"}
        )
    )
    with capture_logs() as logs, pytest.raises(TransientError, match="malformed JSON"):
        _ids(_client().builds("shop", page_size=1, max_pages=1))
    warnings = [e for e in logs if e["event"] == "azure_devops.malformed_response"]
    assert [("warning", BUILDS)] == [(e["log_level"], e["url"]) for e in warnings]


@respx.mock
def test_items_that_are_not_objects_are_skipped_and_logged():
    """A malformed item inside a good page is dropped, not fatal."""
    respx.get(BUILDS).mock(
        return_value=httpx.Response(200, json={"count": 2, "value": [{"id": 1}, "junk"]})
    )
    with capture_logs() as logs:
        ids = _ids(_client().builds("shop", page_size=2, max_pages=1))
    assert ([1], 1) == (ids, sum(1 for e in logs if e["event"] == "azure_devops.malformed_item"))


@respx.mock
def test_throttling_headers_feed_the_metrics_and_slow_down():
    """X-RateLimit-* set the gauges; a budget below the low-water mark paces the next request."""
    sleeps = SleepRecorder()
    metrics = Metrics()
    reset = int((NOW + timedelta(seconds=120)).timestamp())
    throttled = _page(1, token="n")
    throttled.headers.update(
        {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "10", "X-RateLimit-Reset": str(reset)}
    )
    respx.get(BUILDS).mock(side_effect=[throttled, _page(2)])
    assert [1, 2] == _ids(_client(sleeps, metrics=metrics).builds("shop", page_size=1, max_pages=5))
    labels = {"provider": "azure-devops", "credential": "ado"}
    gauges = (
        metrics.registry.get_sample_value("fetcher_ci_rate_limit_remaining", labels),
        metrics.registry.get_sample_value("fetcher_ci_rate_limit_limit", labels),
    )
    assert ((10.0, 200.0), [12.0]) == (gauges, sleeps.waits)


@respx.mock
def test_timeline_of_a_run_without_a_plan_is_empty():
    """204 No Content (a queued run) is an empty timeline, not an error."""
    respx.get(f"{BUILDS}/77/timeline").mock(return_value=httpx.Response(204))
    assert [] == _client().timeline("shop", 77)


@respx.mock
def test_project_names_are_escaped_in_paths():
    """A project name with a space is one path segment."""
    route = respx.get(f"{ORG}/My%20Project/_apis/build/builds").mock(return_value=_page())
    _ids(_client().builds("My Project", page_size=1, max_pages=1))
    assert 1 == route.call_count


class _Refusing(SleepRecorder):
    """The daemon is stopping: every wait returns at once, refused."""

    def __call__(self, seconds: float) -> bool:
        return False


def test_stopping_daemon_interrupts_a_wait():
    """When the daemon stops during a wait, the request gives up instead of sleeping on."""
    with respx.mock:
        respx.get(BUILDS).mock(return_value=httpx.Response(503))
        client = _client(_Refusing())
        with pytest.raises(TransientError, match="stopping"):
            _ids(client.builds("shop", page_size=1, max_pages=1))

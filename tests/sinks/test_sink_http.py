"""The shared HTTP layer: one classify table, Retry-After, transport failures, secrets kept out."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx
from pydantic import SecretStr, ValidationError

from deploy_fetcher.sinks import Delivered, Rejected, Retry, SinkContext, Unauthorized
from deploy_fetcher.sinks.http import (
    MAX_REASON_BYTES,
    MAX_REASON_CHARS,
    MAX_RETRY_AFTER,
    HttpSinkConfig,
    HttpUrl,
    SinkHttpClient,
    classify,
    display_url,
    parse_retry_after,
    redact,
)

URL = "https://sink.example.test/ingest"
KEY = "super-secret-key-42"


class _Config(HttpSinkConfig):
    url: HttpUrl
    api_key: SecretStr


def _client(context: SinkContext, **extra: object) -> SinkHttpClient:
    config = _Config(name="s", type="t", url=URL, api_key=KEY, **extra)
    return SinkHttpClient(config, context)


@pytest.mark.parametrize("code", [200, 201, 202, 204])
def test_2xx_is_delivered(code: int) -> None:
    """Every 2xx answer means the destination has the event."""
    assert Delivered(status_code=code) == classify(httpx.Response(code))


@pytest.mark.parametrize("code", [408, 425, 429, 500, 502, 503, 504, 599])
def test_timeouts_throttling_and_5xx_are_retried(code: int) -> None:
    """408, 425, 429 and 5xx are passing failures: retry later."""
    outcome = classify(httpx.Response(code, text="busy"))
    assert isinstance(outcome, Retry)
    assert code == outcome.status_code
    assert outcome.reason.startswith(f"HTTP {code}")
    assert outcome.reason.endswith(": busy")


@pytest.mark.parametrize("code", [401, 403])
def test_401_and_403_mean_a_broken_credential(code: int) -> None:
    """401/403 pause the sink instead of dead-lettering the event."""
    outcome = classify(httpx.Response(code, text="bad key"))
    assert isinstance(outcome, Unauthorized)
    assert code == outcome.status_code


@pytest.mark.parametrize("code", [400, 404, 405, 409, 413, 422])
def test_other_4xx_are_rejected_with_the_body(code: int) -> None:
    """Any other 4xx dead-letters the event with the response body as the reason."""
    body = '{"errors":[{"field":"status","message":"bad enum"}]}'
    outcome = classify(httpx.Response(code, text=body))
    assert isinstance(outcome, Rejected)
    assert code == outcome.status_code
    assert outcome.reason.endswith(body)


def test_reason_body_is_trimmed() -> None:
    """A huge error page is cut to one short line so dead letters stay small."""
    outcome = classify(httpx.Response(422, content=b"x" * (MAX_REASON_BYTES * 10)))
    assert isinstance(outcome, Rejected)
    assert MAX_REASON_CHARS - 1 == outcome.reason.count("x")
    assert outcome.reason.endswith("…")


def test_redirect_is_retried_and_names_the_fix() -> None:
    """A 3xx means the URL is wrong: events are kept and the reason says what to change."""
    response = httpx.Response(301, headers={"Location": "https://new.example.test/api?token=abc"})
    outcome = classify(response)
    assert isinstance(outcome, Retry)
    assert "redirected to https://new.example.test/api;" in outcome.reason
    assert "token=abc" not in outcome.reason


def test_retry_after_seconds_become_after() -> None:
    """A 429 with Retry-After: 7 asks for at least seven seconds."""
    assert 7.0 == classify(httpx.Response(429, headers={"Retry-After": "7"})).after  # type: ignore[union-attr]


def test_retry_after_http_date_becomes_after() -> None:
    """A 503 with an HTTP-date Retry-After waits until that date."""
    when = datetime.now(UTC) + timedelta(seconds=120)
    outcome = classify(
        httpx.Response(503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    )
    assert isinstance(outcome, Retry)
    assert outcome.after is not None
    assert 110 <= outcome.after <= 120


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("86400", MAX_RETRY_AFTER),
        ("-3", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("Thu, 22 Oct 2015 07:28:00 GMT", MAX_RETRY_AFTER),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Delta-seconds and HTTP-dates are read, past dates mean now, waits are capped, junk ignored."""
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert expected == parse_retry_after(value, now=now)


@pytest.mark.parametrize(
    ("error", "expected_start"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection failed: [Errno 111]"),
        (httpx.ConnectTimeout("timed out"), "connect timeout after 10s"),
        (httpx.ReadTimeout("timed out"), "read timeout after 10s"),
        (httpx.ReadError("connection reset by peer"), "connection broken while reading"),
        (httpx.RemoteProtocolError("Server disconnected"), "malformed answer: Server disconnected"),
    ],
)
def test_transport_errors_are_retried_with_a_clear_reason(
    context: SinkContext, error: Exception, expected_start: str
) -> None:
    """Timeouts, refusals, resets and broken framing become a Retry that names the failure."""
    client = _client(context)
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=error)
        outcome = client.send("POST", URL, headers={}, content=b"{}")
    client.close()
    assert isinstance(outcome, Retry)
    assert outcome.reason.startswith(expected_start)
    assert outcome.status_code is None


def test_secrets_never_reach_a_reason(context: SinkContext) -> None:
    """A body or error message quoting the key is masked before it becomes a reason."""
    client = _client(context)
    with respx.mock() as mock:
        mock.post(URL).mock(return_value=httpx.Response(401, text=f"key {KEY} unknown"))
        unauthorized = client.send("POST", URL, headers={"X-Api-Key": KEY}, content=b"{}")
        mock.post(URL).mock(side_effect=httpx.ConnectError(f"proxy said {KEY}"))
        failed = client.send("POST", URL, headers={"X-Api-Key": KEY}, content=b"{}")
    client.close()
    assert isinstance(unauthorized, Unauthorized)
    assert isinstance(failed, Retry)
    assert "HTTP 401 Unauthorized: key *** unknown" == unauthorized.reason
    assert KEY not in failed.reason


def test_client_sends_user_agent_and_sink_timeout(context: SinkContext) -> None:
    """Every request carries the SinkContext's User-Agent and the sink's own timeout."""
    client = _client(context, timeout="3s")
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=httpx.Response(201))
        assert Delivered(201) == client.send("POST", URL, headers={}, content=b"{}")
    client.close()
    request = route.calls.last.request
    assert "deploy-fetcher/test" == request.headers["User-Agent"]
    assert 3.0 == request.extensions["timeout"]["read"]


def test_probe_reports_reachability_without_claiming_verification(context: SinkContext) -> None:
    """A reachable destination is ok but unverified; an unreachable one fails the check."""
    client = _client(context)
    with respx.mock() as mock:
        mock.head(URL).mock(return_value=httpx.Response(405))
        up = client.probe(URL, what="X")
        mock.head(URL).mock(side_effect=httpx.ConnectError("[Errno -2] Name does not resolve"))
        down = client.probe(URL, what="X")
    client.close()
    assert (True, False) == (up.ok, up.verified)
    assert "cannot be verified without writing" in up.message
    assert not down.ok
    assert "cannot reach X: connection failed" in down.message


def test_redact_masks_longest_secret_first() -> None:
    """Overlapping secrets leave no tail of the longer one visible."""
    assert "a *** b ***" == redact("a abcdef b abc", ["abc", "abcdef"])


def test_display_url_drops_credentials_and_query() -> None:
    """URLs in messages show where, never who or with which token."""
    assert "https://dash.example.test:8443/base" == display_url(
        "https://user:pw@dash.example.test:8443/base?token=t#f"
    )


@pytest.mark.parametrize("url", ["ftp://x.test", "not a url", "/relative/path", "https://"])
def test_url_must_be_absolute_http(url: str) -> None:
    """A sink URL that is not absolute http(s) fails when the config loads."""
    with pytest.raises(ValidationError):
        _Config(name="s", type="t", url=url, api_key=KEY)


def test_base_url_loses_its_trailing_slash() -> None:
    """Paths are appended to the base URL, so a trailing slash is dropped."""
    assert (
        "https://dash.example.test/base"
        == _Config(name="s", type="t", url=" https://dash.example.test/base/ ", api_key=KEY).url
    )


def test_only_the_start_of_a_huge_error_body_is_kept(context: SinkContext) -> None:
    """A giant error page becomes a reason of its first line's worth, the cut marked."""
    client = _client(context)
    with respx.mock() as mock:
        mock.post(URL).mock(return_value=httpx.Response(400, content=b"e" * 5_000_000))
        outcome = client.send("POST", URL, headers={}, content=b"{}")
    client.close()
    assert (
        Rejected(
            reason="HTTP 400 Bad Request: " + "e" * (MAX_REASON_CHARS - 1) + "…", status_code=400
        )
        == outcome
    )


def test_compressed_error_body_is_decoded(context: SinkContext) -> None:
    """A gzip-encoded problem body reads as text in the reason."""
    body = b'{"errors":[{"field":"status"}]}'
    client = _client(context)
    with respx.mock() as mock:
        mock.post(URL).mock(
            return_value=httpx.Response(
                422, content=gzip.compress(body), headers={"Content-Encoding": "gzip"}
            )
        )
        outcome = client.send("POST", URL, headers={}, content=b"{}")
    client.close()
    assert (
        Rejected(reason="HTTP 422 Unprocessable Entity: " + body.decode(), status_code=422)
        == outcome
    )

"""The HTTP layer every HTTP sink shares: keep-alive clients, and one way to read an answer.

A sink is a body builder (a pure function), a few headers, and this layer. Reading the answer lives
here once, so every destination gets the same behaviour from the delivery worker:

=====================================  ==========================================================
answer                                 outcome
=====================================  ==========================================================
2xx                                    :class:`Delivered`
408, 425, 429, 5xx                     :class:`Retry`, ``after`` from ``Retry-After`` (capped)
401, 403                               :class:`Unauthorized` (the credential is broken, not the event)
other 4xx                              :class:`Rejected`, the response body as the reason
1xx, 3xx                               :class:`Retry` (a redirect means the ``url`` is wrong; the
                                       events are kept until it is fixed); never followed
timeout, refused, reset, bad framing   :class:`Retry` with the failure named
no complete answer within ``timeout``  :class:`Retry`: the sink's ``timeout`` bounds the whole
                                       exchange, so a server trickling bytes cannot hold it
=====================================  ==========================================================

A redirect is never followed, so the sink's credential never reaches another host; one that leaves
the origin (another host, port, or https → http) is named with both hosts, in the words the
providers use (:func:`deploy_fetcher.netlimits.redirect_refusal`).

Reasons end up in dead letters, logs and the CLI, so they never carry the request's headers or URL
(a webhook URL often is the secret), quote at most :data:`MAX_REASON_CHARS` of a body on one line,
and have every registered secret (the sink's configuration's among them) masked.

A public module: besides the sinks' requests, the Deployment Dashboard's state slot, control stream
and component reports classify their answers and mask their reasons with it.
"""

from __future__ import annotations

import ssl
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Final

import httpx
from httpx import create_ssl_context
from pydantic import AfterValidator, BaseModel, SecretStr

from deploy_fetcher import redaction
from deploy_fetcher.config import SinkConfig
from deploy_fetcher.netlimits import deadline, redirect_refusal, tls_verify, watched_transport
from deploy_fetcher.redaction import excerpt, register_secret, secret_forms
from deploy_fetcher.retry_after import MAX_RETRY_AFTER, parse_retry_after
from deploy_fetcher.sinks._base import (
    CheckResult,
    Delivered,
    Delivery,
    Rejected,
    Retry,
    SinkContext,
    Unauthorized,
)

__all__ = [
    "MAX_REASON_BYTES",
    "MAX_REASON_CHARS",
    "MAX_RETRY_AFTER",
    "Answer",
    "HttpSinkConfig",
    "HttpUrl",
    "SinkHttpClient",
    "check_url",
    "classify",
    "display_url",
    "parse_retry_after",
    "redact",
    "secret_values",
    "transport_failure",
]

#: How much of a response body is read (enough for a problem+json errors[] array a sink parses).
MAX_REASON_BYTES: Final = 4096
#: How much of it a reason quotes, on one line, secrets masked (dead letters, logs, the CLI).
MAX_REASON_CHARS: Final = 1000
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})
#: The headers classify() reads; the rest (and the body's encoding) stay with the wire response.
_KEPT_HEADERS: Final = frozenset({"retry-after", "location", "content-type"})
#: Parsed URLs kept per client (a sink uses one or a few; the bound is for any other caller).
_PARSED_URLS: Final = 64


def check_url(value: str) -> str:
    """Validate an absolute http(s) URL (surrounding whitespace dropped)."""
    value = value.strip()
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        msg = f"not a valid URL: {exc}"
        raise ValueError(msg) from None
    if url.scheme not in {"http", "https"} or not url.host:
        msg = "must be an absolute http:// or https:// URL"
        raise ValueError(msg)
    return value


def _base_url(value: str) -> str:
    return check_url(value).rstrip("/")


def display_url(url: str, *, with_path: bool = True) -> str:
    """A URL fit for messages: scheme, host, port (and path); no user info, query or fragment."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    path = parsed.path if with_path else ""
    return f"{parsed.scheme}://{parsed.host}{port}{path}".rstrip("/")


#: An absolute http(s) URL, kept as text without its trailing slash (paths are appended to it).
HttpUrl = Annotated[str, AfterValidator(_base_url)]


class HttpSinkConfig(SinkConfig):
    """What every HTTP sink shares besides its URL and credential: TLS settings."""

    #: Verify the server's certificate (turn off only for a lab dashboard with a self-signed one).
    tls_verify: bool = True
    #: A PEM bundle of extra certificate authorities (a company CA in front of the dashboard).
    ca_bundle: Path | None = None


def _describe(response: httpx.Response) -> str:
    """``HTTP 422 Unprocessable Entity: <a short, masked excerpt of the body>``."""
    head = f"HTTP {response.status_code}"
    if response.reason_phrase:
        head += f" {response.reason_phrase}"
    body = excerpt(response.content[:MAX_REASON_BYTES], MAX_REASON_CHARS)
    return f"{head}: {body}" if body else head


_REDIRECT_FIX: Final = "set the sink's url to the final address"


def classify(response: httpx.Response, *, url: str | None = None) -> Delivery:
    """Turn a destination's answer into the delivery outcome the worker acts on (see module table).

    ``url`` is the address asked, for naming a redirect to another host.
    """
    code = response.status_code
    if 200 <= code < 300:  # noqa: PLR2004 - the 2xx range
        return Delivered(status_code=code)
    reason = _describe(response)
    if code in {401, 403}:
        return Unauthorized(reason=reason, status_code=code)
    if code in _RETRYABLE_4XX or code >= 500:  # noqa: PLR2004 - the 5xx range
        after = parse_retry_after(response.headers.get("Retry-After"))
        return Retry(reason=reason, after=after, status_code=code)
    if 400 <= code < 500:  # noqa: PLR2004 - the 4xx range
        return Rejected(reason=reason, status_code=code)
    location = response.headers.get("Location")
    refusal = redirect_refusal(url, code, location, fix=_REDIRECT_FIX) if url is not None else None
    if refusal is not None:
        return Retry(reason=f"{reason} ({refusal})", status_code=code)
    hint = f" to {display_url(location)}" if location and "://" in location else ""
    return Retry(reason=f"{reason} (redirected{hint}; {_REDIRECT_FIX})", status_code=code)


_TRANSPORT_NAMES: Final[tuple[tuple[type[httpx.TransportError], str], ...]] = (
    (httpx.ConnectTimeout, "connect timeout"),
    (httpx.ReadTimeout, "read timeout"),
    (httpx.WriteTimeout, "write timeout"),
    (httpx.PoolTimeout, "connection pool timeout"),
    (httpx.ConnectError, "connection failed"),
    (httpx.ReadError, "connection broken while reading"),
    (httpx.WriteError, "connection broken while writing"),
    (httpx.RemoteProtocolError, "malformed answer"),
    (httpx.ProxyError, "proxy error"),
)


def transport_failure(exc: httpx.TransportError, *, timeout: float | None = None) -> Retry:
    """Name a network failure (timeout, refused, reset, bad framing) as a retryable outcome."""
    what = next((name for cls, name in _TRANSPORT_NAMES if isinstance(exc, cls)), "network error")
    if isinstance(exc, httpx.TimeoutException) and timeout is not None:
        what += f" after {timeout:g}s"
    detail = str(exc).strip()
    return Retry(reason=f"{what}: {detail}" if detail else what)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Mask every registered secret and each of ``secrets`` (longest first: no tail is left)."""
    return redaction.redact(text, secrets)


def secret_values(obj: Any) -> list[str]:
    """Every ``SecretStr`` value inside a (nested) config model, so no sink can forget one."""
    found: list[str] = []
    if isinstance(obj, SecretStr):
        found += secret_forms(obj.get_secret_value())
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            found += secret_values(getattr(obj, name))
    elif isinstance(obj, Mapping):
        for value in obj.values():
            found += secret_values(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            found += secret_values(value)
    return found


def _with_reason(outcome: Delivery, secrets: list[str]) -> Delivery:
    if isinstance(outcome, Delivered):
        return outcome
    return replace(outcome, reason=redact(outcome.reason, secrets))


@dataclass(frozen=True)
class Answer:
    """A classified outcome with the (bounded) body it was read from, for a sink that reads on.

    ``body`` holds at most :data:`MAX_REASON_BYTES` and is empty after a network failure.
    """

    outcome: Delivery
    body: bytes = b""


class _DeadlinePassed(httpx.TimeoutException):
    """The whole exchange took longer than the sink's ``timeout`` (its sockets were cut)."""


class SinkHttpClient:
    """Keep-alive ``httpx`` clients for one sink instance, with the sink's timeout and TLS settings.

    ``timeout`` bounds each exchange as a whole (connect, send, every byte of the answer): the
    sockets are cut when it passes. ``transport`` is for tests (an ``httpx.MockTransport``, which
    has no socket to cut); production uses httpx's pool with watched sockets.

    Each exchange borrows a client of its own: one per request in flight, so one per delivery
    lane, each holding one kept-alive connection. A single pool shared by the lanes would hold its
    lock while it checks every connection of the pool (a system call each) at the start and at the
    end of every request: with 16 lanes, requests queued on that lock rather than on the sink. The
    clients share one TLS context (its certificate store is loaded once).
    """

    def __init__(
        self,
        config: HttpSinkConfig,
        context: SinkContext,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = config.timeout.total_seconds()
        self._secrets = secret_values(config)
        for secret in self._secrets:
            register_secret(secret)
        verify = tls_verify(config.tls_verify, config.ca_bundle)
        self._verify = verify if isinstance(verify, ssl.SSLContext) else create_ssl_context(verify)
        self._user_agent = context.user_agent
        self._transport = transport
        self._lock = threading.Lock()
        self._clients: list[httpx.Client] = []
        #: Clients not lent out now (appending and popping a deque is atomic).
        self._idle: deque[httpx.Client] = deque()
        self._idle.append(self._new_client())
        self._urls: dict[str, httpx.URL] = {}

    def _new_client(self) -> httpx.Client:
        client = httpx.Client(
            timeout=self.timeout,
            headers={"User-Agent": self._user_agent},
            verify=self._verify,
            follow_redirects=False,
            # A client serves one exchange at a time: one connection, kept alive.
            transport=self._transport
            if self._transport is not None
            else watched_transport(
                self._verify, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
            ),
        )
        with self._lock:
            self._clients.append(client)
        return client

    def _parsed(self, url: str) -> httpx.URL:
        """``url`` parsed once: a sink posts to the same few addresses all day."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _PARSED_URLS:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    @contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        """A client no other exchange uses meanwhile (a new one when every client is lent out)."""
        try:
            client = self._idle.pop()
        except IndexError:
            client = self._new_client()
        try:
            yield client
        finally:
            self._idle.append(client)

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
    ) -> Delivery:
        """Send one request and classify its outcome; never raises for HTTP or network trouble."""
        return self.exchange(method, url, headers=headers, content=content).outcome

    def exchange(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
    ) -> Answer:
        """Like :meth:`send`, keeping the bounded body for a sink that reads the answer further."""
        try:
            response = self._exchange(
                method, url, headers=headers, content=content, limit=MAX_REASON_BYTES
            )
        except httpx.TransportError as exc:
            return Answer(_with_reason(self._failure(exc), self._secrets))
        return Answer(_with_reason(classify(response, url=url), self._secrets), response.content)

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        limit: int,
    ) -> httpx.Response:
        """The answer with at most ``limit`` bytes of its body read, within the deadline.

        Nothing but a reason is ever taken from a delivery's answer, so a 50 MB error page costs
        4 KiB of memory, and an endless one ends at the same point.
        """
        with deadline(self.timeout) as watch, self._client() as client:
            try:
                with client.stream(
                    method, self._parsed(url), headers=dict(headers), content=content
                ) as response:
                    body = b""
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) >= limit:
                            body = body[:limit]
                            break
            except httpx.TransportError as exc:
                if watch.expired:
                    raise _DeadlinePassed(str(exc)) from None
                raise
        kept = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
        return httpx.Response(response.status_code, headers=kept, content=body)

    def _failure(self, exc: httpx.TransportError) -> Retry:
        if isinstance(exc, _DeadlinePassed):
            return Retry(reason=f"no complete answer within {self.timeout:g}s (the sink's timeout)")
        return transport_failure(exc, timeout=self.timeout)

    def probe(self, url: str, *, what: str) -> CheckResult:
        """Check that ``url`` answers at all, for destinations whose credential cannot be tested.

        A HEAD request creates nothing; any HTTP answer proves the name resolves and TLS works.
        """
        try:
            # A HEAD answer has no body by definition; one that sends one anyway would poison
            # the kept-alive connection for the next delivery: this connection is not kept.
            response = self._exchange("HEAD", url, headers={"Connection": "close"}, limit=0)
        except httpx.TransportError as exc:
            failure = self._failure(exc)
            return CheckResult(
                ok=False, message=f"cannot reach {what}: {redact(failure.reason, self._secrets)}"
            )
        return CheckResult(
            ok=True,
            verified=False,
            message=(
                f"{what} answers (HTTP {response.status_code}); "
                "the credential cannot be verified without writing"
            ),
        )

    def redact(self, text: str) -> str:
        """Mask this sink's secrets in a text."""
        return redact(text, self._secrets)

    def close(self) -> None:
        """Close every client's connections."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

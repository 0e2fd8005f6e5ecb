"""The request policy for adapters that speak HTTP themselves, on httpx.

:class:`HttpClient` is one keep-alive ``httpx.Client`` per credential, and each :meth:`HttpClient.get`
is one bounded exchange: the policy's gate first, then the request under the deadline (the
transport's network backend attaches every socket it reads from to the current deadline, so the
watchdog can cut a server that trickles), redirects checked and never followed across origins, the
decoded body read up to the byte cap, and the answer counted. What comes back is a :class:`Reply`:
status, headers and the body, already read.
"""

from __future__ import annotations

import json
import ssl
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpcore
import httpx

from deploy_fetcher.providers.kit._errors import ResponseTooLarge
from deploy_fetcher.providers.kit._limits import attach_socket, check_redirect, display_url

if typing.TYPE_CHECKING:
    from deploy_fetcher.providers.kit._policy import RequestPolicy

__all__ = ["HttpClient", "Reply", "tls_verify"]

_REDIRECT_LIMIT: Final = 5


@dataclass(frozen=True)
class Reply:
    """One answer, read: ``headers`` have lower-case names; ``url`` is fit for messages."""

    status: int
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not)."""
        return json.loads(self.body)


class _WatchedStream(httpcore.NetworkStream):
    """A network stream whose socket is cut when the current request's deadline passes."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def _attach(self) -> None:
        attach_socket(self._inner.get_extra_info("socket"))

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._attach()
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._attach()
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._attach()
        return _WatchedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _WatchedBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _WatchedStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _WatchedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def tls_verify(tls_verify: bool, ca_bundle: Path | None) -> bool | ssl.SSLContext:
    """The ``verify`` of httpx for a source's ``tls_verify`` and ``ca_bundle`` keys."""
    if tls_verify and ca_bundle is not None:
        return ssl.create_default_context(cafile=str(ca_bundle))
    return tls_verify


def _watched_transport(verify: bool | ssl.SSLContext) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(verify=verify)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None:  # pragma: no cover - a newer httpx moved it: fail loudly, not unbounded
        msg = "this httpx version hides its network backend; the request deadline cannot be set"
        raise RuntimeError(msg)
    pool._network_backend = _WatchedBackend(backend)  # type: ignore[union-attr]  # noqa: SLF001
    return transport


class HttpClient:
    """One credential's keep-alive client, every request bounded by its :class:`RequestPolicy`.

    ``transport`` is for tests (``httpx.MockTransport``); it replaces the network, and with it the
    deadline's watchdog (a mock has no socket to cut).
    """

    def __init__(
        self,
        policy: RequestPolicy,
        *,
        headers: Mapping[str, str] | None = None,
        verify: bool | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self._client = httpx.Client(
            transport=transport if transport is not None else _watched_transport(verify),
            headers=dict(headers or {}),
            timeout=policy.limits.timeout,
            follow_redirects=False,
        )

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One GET under the policy; same-origin redirects are followed, others refused."""
        for _ in range(_REDIRECT_LIMIT):
            reply = self._exchange(url, params=params, headers=headers)
            location = reply.headers.get("location")
            if not (300 <= reply.status < 400) or not location:  # noqa: PLR2004 - 3xx
                return reply
            url, params = str(httpx.URL(url).join(location)), None
        return reply

    def _exchange(
        self, url: str, *, params: Mapping[str, str] | None, headers: Mapping[str, str] | None
    ) -> Reply:
        shown = display_url(url)
        policy = self.policy
        with (
            policy.exchange(shown, (httpx.TransportError,)),
            self._client.stream("GET", url, params=params, headers=dict(headers or {})) as response,
        ):
            check_redirect(
                str(response.url), response.status_code, response.headers.get("location")
            )
            body = self._read(response, policy.limits.max_bytes, shown)
        lowered = {k.lower(): v for k, v in response.headers.items()}
        policy.after_response(response.status_code, lowered, url=shown)
        return Reply(response.status_code, shown, lowered, body)

    @staticmethod
    def _read(response: httpx.Response, limit: int, url: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(url, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

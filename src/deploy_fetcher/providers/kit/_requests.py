"""The request policy inside a ``requests`` session: how it reaches PyGithub and python-gitlab.

Both SDKs send through a ``requests.Session``; :class:`PolicyAdapter` is mounted on it for ``http://``
and ``https://``, so every request the SDK makes — pages, retries, redirects it follows — passes
the policy's gate and limits, whatever SDK method made it:

* the **gate** waits for the quota before the request goes out;
* the exchange runs under the **deadline**: the adapter's connections attach their sockets to it,
  and the watchdog cuts them when it passes (``requests``' own timeout is per socket read);
* a **redirect** leaving the origin is refused before ``requests`` could follow it (``requests`` keeps
  custom headers such as GitLab's ``PRIVATE-TOKEN`` on a redirect to another host);
* the body is read here, decoded, up to the **byte cap**, and handed to the SDK already read;
* every answer is **counted** and fed to the quota.

The SDK still sees an ordinary ``requests.Response``; the limits come out as the kit's errors
(:class:`~deploy_fetcher.providers.kit.DeadlineExceeded` …), which the SDKs do not catch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from deploy_fetcher.netlimits import attach_socket, display_url
from deploy_fetcher.providers.kit._errors import ResponseTooLarge
from deploy_fetcher.providers.kit._limits import check_redirect

if TYPE_CHECKING:
    import socket

    from requests import PreparedRequest, Response

    from deploy_fetcher.providers.kit._policy import RequestPolicy

__all__ = ["PolicyAdapter", "policed_session"]

_CHUNK: Final = 64 * 1024
#: Connections kept alive per host. One session serves every poll of its credential at once: up to
#: the scheduler's poll threads with slow-poll headroom (8 x 4) and discovery. requests' default of
#: 10 made urllib3 drop (and warn about) a connection after nearly every request once more polls ran;
#: connections are opened only when needed, so a larger pool costs nothing at rest.
POOL_SIZE: Final = 64


class _WatchedHTTPConnection(HTTPConnection):
    """Attaches its socket to the current request's deadline, new or kept alive."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        attach_socket(sock)  # covers the TLS handshake, before ``self.sock`` is set
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        attach_socket(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        attach_socket(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        attach_socket(self.sock)
        super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS: Final = {"http": _HTTPPool, "https": _HTTPSPool}


class PolicyAdapter(HTTPAdapter):
    """A transport adapter that applies a :class:`RequestPolicy` to every request it sends."""

    def __init__(
        self,
        policy: RequestPolicy,
        *,
        resource_of: Callable[[str], str] = lambda _url: "core",
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.policy = policy
        #: Which quota a request URL is charged to (GitHub meters GraphQL apart from REST).
        self.resource_of = resource_of
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """urllib3's pool manager, with connections that the deadline can cut."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The same for a proxy's pool manager (HTTP(S) proxies; SOCKS keeps its own pools)."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager

    def send(  # noqa: PLR0917 - requests' own signature
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> Response:
        """Gate, send under the deadline, check the redirect, read the body under the cap."""
        url = display_url(request.url or "")
        policy = self.policy
        limits = policy.limits
        resource = self.resource_of(request.url or "")
        with policy.exchange(url, (requests.RequestException, OSError), resource):
            response = super().send(
                request,
                stream=True,
                timeout=(limits.timeout, limits.timeout),
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
            try:
                check_redirect(
                    request.url or "", response.status_code, response.headers.get("location")
                )
                body = self._read(response, limits.max_bytes, url)
            except BaseException:
                response.close()
                raise
        response._content = body  # noqa: SLF001 - hand the SDK a response already read
        response._content_consumed = True  # type: ignore[attr-defined]  # noqa: SLF001
        policy.after_response(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            url=url,
            resource=resource,
        )
        return response

    @staticmethod
    def _read(response: Response, limit: int, url: str) -> bytes:
        """The decoded body, at most ``limit`` bytes (the connection goes back to the pool)."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(url, limit)
            chunks.append(chunk)
        response.raw.release_conn()
        return b"".join(chunks)


def policed_session(
    policy: RequestPolicy, session: requests.Session | None = None
) -> requests.Session:
    """``session`` (a new one when None) with a :class:`PolicyAdapter` for ``http://`` and ``https://``."""
    session = session or requests.Session()
    adapter = PolicyAdapter(policy)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session

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
from typing import Any, Final

import httpx

from deploy_fetcher.netlimits import display_url, watched_transport
from deploy_fetcher.providers.kit._errors import ResponseTooLarge
from deploy_fetcher.providers.kit._limits import check_redirect

if typing.TYPE_CHECKING:
    from deploy_fetcher.providers.kit._policy import RequestPolicy

__all__ = ["HttpClient", "Reply"]

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
            transport=transport if transport is not None else watched_transport(verify),
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

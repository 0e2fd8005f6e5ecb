"""JSON over HTTP under a request policy: the common way an adapter reads an answer.

One :meth:`JsonApi.get` is the credential's headers, one bounded exchange (:class:`HttpClient`), the
adapter's own reading of its special answers (``accept``: a sign-in page, a 404 with the service's
words), the common status table (:func:`classify`), and the body parsed. A network failure or a
retryable status is tried again through the policy; a body that is not JSON is logged with its URL
and the cycle fails (the next one reads it again); a 401 is sent once more when ``refresh()`` says
the credential changed (a token file rotated a moment ago).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from deploy_fetcher.errors import SourceError, TransientError
from deploy_fetcher.providers.kit._errors import RedirectRefused, Retry
from deploy_fetcher.providers.kit._httpx import HttpClient, Reply
from deploy_fetcher.providers.kit._policy import classify

__all__ = ["JsonApi"]

_log = structlog.get_logger(__name__)
_UNAUTHORIZED = 401
_SHOWN = 200


def _none(_url: str, _reply: Reply) -> None:
    return None


class JsonApi:
    """Reads JSON documents and lists through one :class:`HttpClient` (see the module docstring).

    ``log_name`` prefixes the log events (``<log_name>.malformed_response``, ``.malformed_item``);
    ``refused`` turns a refused redirect into the adapter's error (by default it stays one).
    """

    def __init__(
        self,
        http: HttpClient,
        *,
        log_name: str,
        auth: Callable[[], Mapping[str, str]] = dict,
        refresh: Callable[[], bool] = lambda: False,
        accept: Callable[[str, Reply], None] = _none,
        refused: Callable[[RedirectRefused], SourceError] = lambda exc: exc,
    ) -> None:
        self.http = http
        self.policy = http.policy
        self.log_name = log_name
        self._auth = auth
        self._refresh = refresh
        self._accept = accept
        self._refused = refused

    def _send(self, url: str, params: Mapping[str, str] | None) -> Reply:
        try:
            return self.http.get(url, params=params, headers=self._auth())
        except httpx.TimeoutException as exc:
            raise Retry(TransientError(f"timeout calling {url}: {type(exc).__name__}")) from None
        except httpx.TransportError as exc:
            msg = f"network error calling {url}: {type(exc).__name__}"
            raise Retry(TransientError(msg)) from None
        except RedirectRefused as exc:
            raise self._refused(exc) from None

    def reply(self, url: str, params: Mapping[str, str] | None = None) -> Reply:
        """The answer to one GET, once it is a usable one (2xx, 304); the rest raised."""

        def attempt() -> Reply:
            reply = self._send(url, params)
            if reply.status == _UNAUTHORIZED and self._refresh():
                reply = self._send(url, params)
            self._accept(url, reply)
            classify(reply.status, reply.headers, what=f"HTTP {reply.status} from {url}")
            return reply

        return self.policy.call(f"GET {url}", attempt)

    def parse(self, url: str, reply: Reply) -> Any:
        """The body as JSON (None when empty); a body that is not JSON is logged, then transient."""
        if not reply.body or reply.status == 204:  # noqa: PLR2004 - No Content
            return None
        try:
            return reply.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            _log.warning(f"{self.log_name}.malformed_response", url=url, error=str(exc)[:_SHOWN])
            msg = f"malformed JSON from {url}"
            raise TransientError(msg) from None

    def get(self, url: str, params: Mapping[str, str] | None = None) -> Any:
        """One GET's body as JSON (None when empty)."""
        return self.parse(url, self.reply(url, params))

    def objects(self, items: Any, url: str) -> list[dict[str, Any]]:
        """The JSON objects of a list; anything else in it is logged as a malformed item.

        A value that is not a list at all is a malformed answer (logged, then transient).
        """
        if not isinstance(items, list):
            _log.warning(f"{self.log_name}.malformed_response", url=url, error="no list")
            msg = f"malformed list from {url}"
            raise TransientError(msg)
        kept = []
        for item in items:
            if isinstance(item, dict):
                kept.append(item)
            else:
                _log.warning(f"{self.log_name}.malformed_item", url=url, item=repr(item)[:_SHOWN])
        return kept

    def close(self) -> None:
        """Close the client's connections."""
        self.http.close()

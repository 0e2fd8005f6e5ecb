"""Every request of the GitHub adapter goes through here: PyGithub's requester, plus what it lacks.

PyGithub gives the adapter authentication (tokens, App JWTs, installation tokens), the HTTP session and
GHES base URLs. Its ``PaginatedList`` cannot send ``If-None-Match`` nor stop at a cursor, and its
default ``GithubRetry`` sleeps through rate limits on its own (up to an hour, uninterruptibly), which
would fight the shared quota budget. So requests go through ``Requester.requestJson`` (which returns
status, headers and body without raising) with PyGithub's retries switched off, and this module:

* sends conditional requests and returns ``304`` answers as such (they cost no quota);
* records every response's rate-limit headers in the credential's :class:`QuotaBudget` and refuses to
  send when the budget is spent, sleeping through short waits and raising ``RateLimited`` for long ones;
* retries 5xx answers and network failures a few times with backoff (through the context's
  interruptible ``sleep``);
* turns the ``RuntimeError`` PyGithub raises for a redirect to another scheme, host or port (a
  GHES ``base_url`` with ``http://`` answered by ``https://``) into a SourceError naming the
  ``base_url`` to set;
* translates the rest into :mod:`deploy_fetcher.errors` once (:meth:`GitHubClient.classify`).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
import structlog
from github import Auth, Github

from deploy_fetcher._version import __version__
from deploy_fetcher.errors import (
    AuthError,
    RateLimited,
    SourceError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.providers._base import ProviderContext
from deploy_fetcher.providers.github.auth import build_auth
from deploy_fetcher.providers.github.config import GitHubConfig
from deploy_fetcher.providers.github.paging import LinkPaginator, PaginationLoop
from deploy_fetcher.providers.github.quota import QuotaBudget

__all__ = [
    "API_VERSION",
    "Credential",
    "GitHubClient",
    "MalformedResponse",
    "NotFound",
    "Response",
    "credential_for",
    "redirected_base_url",
]

_log = structlog.get_logger(__name__)

API_VERSION: Final = "2022-11-28"
_ACCEPT: Final = "application/vnd.github+json"
_NOT_MODIFIED: Final = 304
_UNAUTHORIZED: Final = 401
_FORBIDDEN: Final = 403
_TOO_MANY: Final = 429
_SERVER_ERROR: Final = 500
_GONE_CODES: Final = frozenset({403, 404, 410, 451})
#: GitHub's advice for a secondary limit without ``retry-after``: wait at least a minute.
_SECONDARY_DEFAULT_WAIT: Final = 60.0
#: How PyGithub words the redirects it refuses to follow (``Requester.__requestRaw``).
_SCHEME_MOVED: Final = re.compile(r"redirected from (\w+) protocol to (\w+)")
_HOST_MOVED: Final = re.compile(r"redirected from host (\S+) to ([^\s,]+)")
_MOVED_TO: Final = re.compile(r"but server redirected to (\S+?), you may")
#: Short waits slept through per request before giving the cycle up (a clock that does not move
#: must not spin forever).
_MAX_WAITS: Final = 3


@dataclass(frozen=True)
class Response:
    """One answer: ``status`` is 2xx or 304 (everything else was raised as an error)."""

    status: int
    url: str
    headers: Mapping[str, str]
    data: Any

    @property
    def not_modified(self) -> bool:
        """The resource did not change since the ETag that was sent (a free request)."""
        return self.status == _NOT_MODIFIED

    @property
    def etag(self) -> str | None:
        """The validator to send next time."""
        return self.headers.get("etag")


class MalformedResponse(TransientError):
    """A 2xx answer whose body is not the JSON expected; ``url`` says where it came from."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class NotFound(TargetNotFound):
    """404/403/410 for one URL: the repository, or one item in it, is gone or not visible."""

    def __init__(self, message: str, *, url: str, status: int) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class Credential:
    """One PyGithub session and quota budget per credential, shared by every source that uses it."""

    def __init__(self, config: GitHubConfig, context: ProviderContext) -> None:
        timeout = max(1, int(context.defaults.timeout.total_seconds()))
        self.label = config.credential_label
        self.auth: Auth.Auth = build_auth(config, timeout=timeout, clock=context.clock)
        interval = config.request_interval.total_seconds()
        self.github = Github(
            auth=self.auth,
            base_url=config.base_url,
            timeout=timeout,
            user_agent=f"deploy-fetcher/{__version__}",
            per_page=100,
            verify=config.verify,
            # Retries happen in GitHubClient, through the interruptible sleep and the quota budget.
            retry=0,
            seconds_between_requests=interval or None,
            seconds_between_writes=None,
            api_version=API_VERSION,
        )
        self.budget = QuotaBudget(
            share=config.quota_share, label=self.label, metrics=context.metrics, clock=context.clock
        )
        #: PyGithub's connection object keeps per-request state: one request at a time.
        self.lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP session(s)."""
        self.github.close()
        close = getattr(self.auth, "close", None)
        if callable(close):
            close()


def credential_for(config: GitHubConfig, context: ProviderContext) -> Credential:
    """The shared :class:`Credential` of a source (created on first use)."""
    return context.shared.get(config.credential_key(), lambda: Credential(config, context))


def redirected_base_url(base_url: str, message: str) -> str | None:
    """The ``base_url`` a refused redirect points to, read from PyGithub's message; None if not one.

    The path (a GHES ``/api/v3``) stays; the scheme, host or port change as the server said.
    """
    parts = urlsplit(base_url)
    if found := _SCHEME_MOVED.search(message):
        return urlunsplit(parts._replace(scheme=found.group(2)))
    if found := _HOST_MOVED.search(message):
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{found.group(2)}{port}"))
    if found := _MOVED_TO.search(message):
        target = urlsplit(found.group(1))
        return urlunsplit(parts._replace(scheme=target.scheme, netloc=target.netloc))
    return None


def _message(data: Any) -> str:
    if isinstance(data, Mapping) and isinstance(data.get("message"), str):
        return str(data["message"])
    return ""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class GitHubClient:
    """Sends requests for one source on a shared credential."""

    def __init__(
        self,
        credential: Credential,
        context: ProviderContext,
        *,
        max_wait: timedelta,
        attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self.credential = credential
        self.context = context
        self.max_wait = max_wait.total_seconds()
        self.attempts = attempts
        self.backoff = backoff
        requester = credential.github.requester
        self._requester = requester
        self.base_url = requester.base_url
        self.graphql_url = requester.graphql_url

    @property
    def budget(self) -> QuotaBudget:
        """The credential's quota budget."""
        return self.credential.budget

    def display(self, url: str) -> str:
        """An absolute URL for logs and messages (never carries credentials)."""
        return url if url.startswith("http") else f"{self.base_url}{url}"

    def _shown(self, url: str, params: Mapping[str, Any]) -> str:
        shown = self.display(url)
        if not params:
            return shown
        return f"{shown}{'&' if '?' in shown else '?'}{urlencode(sorted(params.items()))}"

    # -- public calls ------------------------------------------------------------------------------
    def get(
        self, url: str, params: Mapping[str, Any] | None = None, *, etag: str | None = None
    ) -> Response:
        """GET a REST resource; with ``etag`` the answer may be a free ``304``."""
        headers = {"Accept": _ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        return self._request(
            "GET", url, params=dict(params or {}), headers=headers, body=None, resource="core"
        )

    def graphql(self, query: str, variables: Mapping[str, Any]) -> Response:
        """POST a GraphQL query; the caller reads ``data`` and ``errors`` from the body."""
        body = {"query": query, "variables": dict(variables)}
        return self._request(
            "POST",
            self.graphql_url,
            params={},
            headers={"Accept": _ACCEPT},
            body=body,
            resource="graphql",
        )

    def pages(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        etag: str | None = None,
        max_pages: int = 1000,
    ) -> Iterator[Response]:
        """Yield the pages of a list, following ``Link: rel="next"``; page 1 may be a free 304.

        The caller stops iterating as soon as it has read far enough (paging stops at the cursor).
        """
        first = self.get(url, params, etag=etag)
        yield first
        if first.not_modified:
            return
        paginator = LinkPaginator(self.display(url), max_pages=max_pages)
        current = first
        while True:
            try:
                next_url = paginator.next_url(current.headers.get("link"))
            except PaginationLoop as exc:
                _log.warning("github.pagination_stopped", url=self.display(url), reason=str(exc))
                return
            if next_url is None:
                return
            current = self.get(next_url)
            yield current

    # -- the loop ----------------------------------------------------------------------------------
    def _wait_for_budget(self, resource: str, url: str) -> None:
        for _ in range(_MAX_WAITS):
            blocked = self.budget.check(resource)
            if blocked is None:
                return
            wait = (blocked.until - self.context.clock()).total_seconds()
            if wait > self.max_wait:
                msg = (
                    f"GitHub {blocked.reason} for credential {self.budget.label}; "
                    f"next request at {blocked.until.isoformat()}"
                )
                raise RateLimited(msg, retry_at=blocked.until)
            _log.info(
                "github.rate_limit_wait",
                seconds=round(max(wait, 0.0), 1),
                reason=blocked.reason,
                credential=self.budget.label,
                url=self.display(url),
            )
            if not self.context.sleep(max(wait, 0.0) + 0.01):
                msg = "stopping while waiting for the GitHub rate limit"
                raise TransientError(msg)
        blocked = self.budget.check(resource)
        if blocked is not None:
            msg = f"GitHub {blocked.reason} for credential {self.budget.label}; still blocked after waiting"
            raise RateLimited(msg, retry_at=blocked.until)

    def _backoff(self, attempt: int, what: str, url: str) -> None:
        delay = self.backoff * (2**attempt)
        _log.info(
            "github.retry", attempt=attempt + 1, seconds=delay, reason=what, url=self.display(url)
        )
        if not self.context.sleep(delay):
            msg = f"stopping while retrying {self.display(url)}"
            raise TransientError(msg)

    def _request(
        self,
        verb: str,
        url: str,
        *,
        params: dict[str, Any],
        headers: dict[str, str],
        body: Any,
        resource: str,
    ) -> Response:
        last = ""
        rate_limited = False
        for attempt in range(self.attempts):
            self._wait_for_budget(resource, url)
            try:
                with self.credential.lock:
                    status, raw_headers, text = self._requester.requestJson(
                        verb, url, parameters=params, headers=dict(headers), input=body
                    )
            except SourceError:
                raise  # e.g. the installation token could not be renewed
            except RuntimeError as exc:
                target = redirected_base_url(self.base_url, str(exc))
                if target is None:
                    raise
                msg = (
                    f"GitHub at {self.base_url} redirects {self.display(url)} elsewhere: "
                    f"set base_url to {target}"
                )
                raise SourceError(msg) from None
            except (requests.RequestException, OSError) as exc:
                last = f"{type(exc).__name__} talking to {self.display(url)}"
                rate_limited = False
                if attempt + 1 < self.attempts:
                    self._backoff(attempt, last, url)
                continue
            response_headers = {k.lower(): str(v) for k, v in raw_headers.items()}
            self.context.metrics.ci_requests.labels("github", str(status)).inc()
            self.budget.observe(
                response_headers, charged=status != _NOT_MODIFIED, default_resource=resource
            )
            outcome = self.classify(
                status, response_headers, text, url=self._shown(url, params), resource=resource
            )
            if isinstance(outcome, Response):
                return outcome
            last = outcome
            rate_limited = status < _SERVER_ERROR
            if attempt + 1 < self.attempts and status >= _SERVER_ERROR:
                self._backoff(attempt, last, url)
        msg = f"GitHub request failed after {self.attempts} attempts: {last}"
        if rate_limited:
            blocked = self.budget.check(resource)
            raise RateLimited(msg, retry_at=blocked.until if blocked else None)
        raise TransientError(msg)

    def classify(
        self, status: int, headers: Mapping[str, str], text: str, *, url: str, resource: str
    ) -> Response | str:
        """Turn an answer into a :class:`Response`, an exception, or a reason to try again."""
        shown = self.display(url)
        if status == _NOT_MODIFIED:
            return Response(status, shown, headers, None)
        data: Any = None
        parsed = True
        if text:
            try:
                data = json.loads(text)
            except ValueError:
                parsed = False
        if 200 <= status < 300:  # noqa: PLR2004 - the 2xx range
            if not parsed:
                _log.warning("github.malformed_response", url=shown, status=status)
                msg = f"GitHub sent a body that is not JSON for {shown}"
                raise MalformedResponse(msg, url=shown)
            return Response(status, shown, headers, data)
        message = _message(data)
        if status in (_FORBIDDEN, _TOO_MANY) and self._rate_limited(status, headers, message):
            return self._rate_limit_hit(headers, message, resource, shown)
        if status == _UNAUTHORIZED:
            msg = (
                f"GitHub rejected the credentials of {self.budget.label} "
                f"(HTTP 401 {message or 'Unauthorized'})"
            )
            raise AuthError(msg)
        if status in _GONE_CODES:
            what = "not found or not visible" if status != _FORBIDDEN else "forbidden"
            msg = f"{shown}: {what} (HTTP {status} {message}); check the repository name and the token's permissions"
            raise NotFound(msg.replace("  ", " "), url=shown, status=status)
        if status >= _SERVER_ERROR:
            return f"HTTP {status} from {shown}"
        msg = f"unexpected HTTP {status} from {shown}: {message}"
        raise TransientError(msg)

    def _rate_limited(self, status: int, headers: Mapping[str, str], message: str) -> bool:
        if status == _TOO_MANY or "retry-after" in headers:
            return True
        if headers.get("x-ratelimit-remaining") == "0":
            return True
        return "rate limit" in message.lower()

    def _rate_limit_hit(
        self, headers: Mapping[str, str], message: str, resource: str, shown: str
    ) -> str:
        retry_after = _retry_after(headers)
        if retry_after is not None:
            until = self.budget.block(retry_after, "secondary rate limit (retry-after)")
        elif headers.get("x-ratelimit-remaining") == "0":
            reset_until = self.budget.block_until_reset(
                headers.get("x-ratelimit-resource") or resource, "primary rate limit exhausted"
            )
            until = reset_until or self.budget.block(
                _SECONDARY_DEFAULT_WAIT, "primary rate limit exhausted"
            )
        else:
            until = self.budget.block(_SECONDARY_DEFAULT_WAIT, "secondary rate limit")
        _log.info(
            "github.rate_limited",
            url=shown,
            until=until.isoformat(),
            message=message[:200],
            credential=self.budget.label,
        )
        return f"rate limited at {shown}"

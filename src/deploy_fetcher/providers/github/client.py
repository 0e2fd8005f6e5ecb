"""Every request of the GitHub adapter goes through here: PyGithub's requester, plus what it lacks.

PyGithub gives the adapter authentication (tokens, App JWTs, installation tokens), the HTTP session and
GHES base URLs. Its ``PaginatedList`` cannot send ``If-None-Match`` nor stop at a cursor, and its
default ``GithubRetry`` sleeps through rate limits on its own (up to an hour, uninterruptibly), which
would fight the shared quota. So requests go through ``Requester.requestJson`` (which returns status,
headers and body without raising) with PyGithub's retries switched off, and:

* every connection PyGithub opens carries the kit's :class:`~deploy_fetcher.providers.kit.PolicyAdapter`:
  the credential's quota gate (``quota_share``, secondary limits), the whole-request deadline, the
  byte cap, no redirect to another host or scheme, and counting;
* conditional requests come back as ``304`` answers (they cost no quota);
* 5xx answers and network failures are retried through the policy (full-jitter back-off);
* a redirect to another scheme, host or port is an error naming the ``base_url`` to set;
* the rest is translated into :mod:`deploy_fetcher.errors` once (:meth:`GitHubClient.classify`).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
import structlog
from github import Auth, Github
from github.Requester import Requester

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
from deploy_fetcher.providers.kit import (
    LinkPaginator,
    PolicyAdapter,
    Quota,
    RedirectRefused,
    RequestBudget,
    RequestPolicy,
    Retry,
    classify,
    credential_digest,
    requests_verify,
    shared_policy,
)
from deploy_fetcher.redaction import excerpt

__all__ = [
    "API_VERSION",
    "Credential",
    "GitHubClient",
    "MalformedResponse",
    "NotFound",
    "Response",
    "credential_for",
    "police",
    "redirected_base_url",
]

_log = structlog.get_logger(__name__)

PROVIDER: Final = "github"
#: Share of the secondary limit no rolling minute of a credential's requests may exceed.
SECONDARY_CAP: Final = 0.95
API_VERSION: Final = "2022-11-28"
_ACCEPT: Final = "application/vnd.github+json"
_NOT_MODIFIED: Final = 304
_UNAUTHORIZED: Final = 401
_FORBIDDEN: Final = 403
_TOO_MANY: Final = 429
_GONE_CODES: Final = frozenset({403, 404, 410, 451})
#: How PyGithub words the redirects it refuses to follow (``Requester.__requestRaw``).
_SCHEME_MOVED: Final = re.compile(r"redirected from (\w+) protocol to (\w+)")
_HOST_MOVED: Final = re.compile(r"redirected from host (\S+) to ([^\s,]+)")
_MOVED_TO: Final = re.compile(r"but server redirected to (\S+?), you may")


def _resource(request_url: str) -> str:
    """Which quota a request is charged to: GitHub meters GraphQL apart from REST."""
    return "graphql" if urlsplit(request_url).path.endswith("/graphql") else "core"


def police(requester: Requester, policy: RequestPolicy) -> None:
    """Mount the request policy on every connection ``requester`` will open.

    PyGithub creates its ``requests`` session inside a connection class chosen per scheme; this
    swaps in a subclass that mounts a :class:`PolicyAdapter` on that session. It fails loudly if a
    PyGithub release hides the class elsewhere: requests without the policy would be unbounded.
    """
    attribute = "_Requester__connectionClass"
    base = getattr(requester, attribute, None)
    if base is None:  # pragma: no cover - a PyGithub release that moved it
        msg = "this PyGithub version hides its connection class; the request policy cannot be set"
        raise RuntimeError(msg)
    adapter = PolicyAdapter(policy, resource_of=_resource)

    class Policed(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.session.mount("https://", adapter)
            self.session.mount("http://", adapter)

    setattr(requester, attribute, Policed)


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
    """One PyGithub session, quota and request policy per credential, shared by its sources."""

    def __init__(self, config: GitHubConfig, context: ProviderContext) -> None:
        self.label = config.credential_label
        digest = credential_digest(config.credential_key())
        secondary = config.effective_secondary_limit
        # The scheduler keeps the credential's average at 0.85 of the secondary limit; this cap
        # keeps a burst (many deployments starting at once) from reaching it: requests wait for
        # a slot in the rolling minute instead of being refused for a minute or more.
        cap = None if secondary is None else max(1, int(secondary * SECONDARY_CAP))
        budget = (
            None
            if cap is None
            else context.shared.get(f"github-secondary:{digest}:{cap}", lambda: RequestBudget(cap))
        )
        self.policy = shared_policy(
            config,
            context,
            provider=PROVIDER,
            credential=digest,
            label=self.label,
            budget=budget,
            share=config.quota_share,
        )
        assert self.policy.quota is not None  # noqa: S101 - shared_policy always gives one
        self.quota: Quota = self.policy.quota
        if secondary is not None:
            self.quota.declare(
                "core", secondary, f"GitHub's secondary limit of {secondary} REST points a minute"
            )
        timeout = max(1, int(self.policy.limits.timeout))
        verify = requests_verify(config.tls_verify, config.ca_bundle)
        self.auth: Auth.Auth = build_auth(
            config,
            timeout=timeout,
            verify=verify,
            clock=context.clock,
            police=lambda requester: police(requester, self.policy),
        )
        interval = config.request_interval.total_seconds()
        self.github = Github(
            auth=self.auth,
            base_url=config.base_url,
            timeout=timeout,
            user_agent=f"deploy-fetcher/{__version__}",
            per_page=100,
            verify=verify,
            # Retries happen in the request policy, through the interruptible sleep and the quota.
            retry=0,
            seconds_between_requests=interval or None,
            seconds_between_writes=None,
            api_version=API_VERSION,
        )
        police(self.github.requester, self.policy)
        #: One request at a time per credential, the others queued here: GitHub asks integrators to
        #: "make requests serially instead of concurrently" to stay clear of its secondary limits
        #: (REST API best practices), and PyGithub's connection holds one request's state anyway.
        #: The scheduler's poll pool shares its workers fairly between credentials, so polls
        #: queued on a busy credential hold no more than its share of them.
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
        return excerpt(str(data["message"]))
    return ""


class GitHubClient:
    """Sends requests for one source on a shared credential."""

    def __init__(self, credential: Credential, context: ProviderContext) -> None:
        self.credential = credential
        self.context = context
        self.policy = credential.policy
        requester = credential.github.requester
        self._requester = requester
        self.base_url = requester.base_url
        self.graphql_url = requester.graphql_url

    @property
    def quota(self) -> Quota:
        """The credential's quota."""
        return self.credential.quota

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
        A server whose next link goes round in circles fails the cycle (PaginationLoop).
        """
        first = self.get(url, params, etag=etag)
        yield first
        if first.not_modified:
            return
        walk = LinkPaginator(
            lambda next_url: first if next_url is None else self.get(next_url),
            lambda page: page.headers.get("link"),
            max_pages=max_pages,
            what=self.display(url),
        )
        for index, page in enumerate(walk):
            if index:
                yield page

    # -- one request -------------------------------------------------------------------------------
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
        shown = self._shown(url, params)

        def attempt() -> Response:
            try:
                with self.credential.lock:
                    status, raw_headers, text = self._requester.requestJson(
                        verb, url, parameters=params, headers=dict(headers), input=body
                    )
            except RedirectRefused as exc:
                raise self._moved(shown, exc.target) from None
            except SourceError:
                raise  # a limit of the policy, or an installation token that could not be renewed
            except RuntimeError as exc:
                target = redirected_base_url(self.base_url, str(exc))
                if target is None:
                    raise
                raise self._moved(shown, target, whole=True) from None
            except (requests.RequestException, OSError) as exc:
                msg = f"{type(exc).__name__} talking to {self.display(url)}"
                raise Retry(TransientError(msg)) from None
            response_headers = {k.lower(): str(v) for k, v in raw_headers.items()}
            return self.classify(status, response_headers, text, url=shown, resource=resource)

        return self.policy.call(f"{verb} {shown}", attempt)

    def _moved(self, shown: str, target: str, *, whole: bool = False) -> SourceError:
        """A redirect away from ``base_url``: name the ``base_url`` that would be right."""
        if not whole:
            moved = urlsplit(target)
            target = urlunsplit(
                urlsplit(self.base_url)._replace(scheme=moved.scheme, netloc=moved.netloc)
            )
        msg = f"GitHub at {self.base_url} redirects {shown} elsewhere: set base_url to {target}"
        return SourceError(msg)

    def classify(
        self, status: int, headers: Mapping[str, str], text: str, *, url: str, resource: str
    ) -> Response:
        """Turn an answer into a :class:`Response`, or raise (a :class:`Retry` to try again)."""
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
        message = _message(data)
        if status in (_FORBIDDEN, _TOO_MANY) and self._rate_limited(status, headers, message):
            raise Retry(RateLimited(self._rate_limit_hit(headers, message, resource, shown)))
        if status == _UNAUTHORIZED:
            msg = (
                f"GitHub rejected the credentials of {self.quota.label} "
                f"(HTTP 401 {message or 'Unauthorized'})"
            )
            raise AuthError(msg)
        if status in _GONE_CODES:
            what = "not found or not visible" if status != _FORBIDDEN else "forbidden"
            msg = f"{shown}: {what} (HTTP {status} {message}); check the repository name and the token's permissions"
            raise NotFound(msg.replace("  ", " "), url=shown, status=status)
        classify(status, headers, what=f"GitHub at {shown}", message=message)  # 2xx returns
        if not parsed:
            _log.warning("github.malformed_response", url=shown, status=status)
            msg = f"GitHub sent a body that is not JSON for {shown}"
            raise MalformedResponse(msg, url=shown)
        return Response(status, shown, headers, data)

    def _rate_limited(self, status: int, headers: Mapping[str, str], message: str) -> bool:
        if status == _TOO_MANY or "retry-after" in headers:
            return True
        if headers.get("x-ratelimit-remaining") == "0":
            return True
        return "rate limit" in message.lower()

    def _rate_limit_hit(
        self, headers: Mapping[str, str], message: str, resource: str, shown: str
    ) -> str:
        """Block the credential as GitHub asks; the reason of the failure if no attempt is left."""
        until = self.quota.hold(
            headers,
            resource=resource,
            reason="secondary rate limit",
            exhausted="primary rate limit exhausted",
        )
        _log.info(
            "github.rate_limited",
            url=shown,
            until=until.isoformat(),
            message=message[:200],
            credential=self.quota.label,
        )
        return f"GitHub request failed: rate limited at {shown}"

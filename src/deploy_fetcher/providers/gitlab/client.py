"""HTTP to GitLab through python-gitlab: one client per instance and credential, shared by sources.

python-gitlab does the requests (auth header, URL building, ``x-next-page``/Link paging, errors). What
this module adds, at the one place every request passes:

* **pacing** in the injected ``requests`` session: before a request goes out, the instance's request
  budget and the server's last ``RateLimit-Remaining``/``Retry-After`` are consulted; a short wait is
  slept through :meth:`ProviderContext.sleep` (returns early on shutdown), a long one ends the cycle
  with :class:`~deploy_fetcher.errors.RateLimited`;
* **counting**: every response feeds ``fetcher_ci_requests`` and the rate-limit gauges;
* **bounded retries**: python-gitlab's own retry loop waits out ``Retry-After``/``RateLimit-Reset``
  with ``time.sleep`` and no upper bound, so it is switched off (``obey_rate_limit=False``,
  ``retry_transient_errors=False``, ``max_retries=0``) and :meth:`GitLabClient.call` retries instead:
  ``max_retries`` extra attempts after a 5xx, a timeout or a 429, with interruptible waits;
* **translation** of python-gitlab and requests exceptions into :mod:`deploy_fetcher.errors`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

import gitlab
import gitlab.exceptions
import requests
import structlog
from gitlab.utils import EncodedId

from deploy_fetcher._version import __version__
from deploy_fetcher.errors import (
    AuthError,
    RateLimited,
    SourceError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.providers.gitlab.paging import PagingError
from deploy_fetcher.providers.gitlab.ratelimit import QuotaState, RequestBudget

if TYPE_CHECKING:
    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.providers import ProviderContext
    from deploy_fetcher.providers.gitlab.config import GitLabSourceConfig

__all__ = ["ClientSettings", "GitLabClient", "encode_id", "shared_client"]

_log = structlog.get_logger(__name__)

PROVIDER: Final = "gitlab"
#: Options that keep python-gitlab from sleeping on its own (see the module docstring).
_NO_SDK_RETRY: Final[dict[str, Any]] = {
    "obey_rate_limit": False,
    "retry_transient_errors": False,
    "max_retries": 0,
}
_BACKOFF_BASE: Final = 0.5
_BACKOFF_CAP: Final = 8.0
_TRANSIENT: Final = frozenset({408, 500, 502, 503, 504, *range(520, 531)})

T = TypeVar("T")


def encode_id(project: str) -> str:
    """A project or group as it goes into a URL: numeric ids as they are, paths URL-encoded."""
    return str(EncodedId(project))


@dataclass(frozen=True)
class ClientSettings:
    """Everything that makes two sources able to share one client."""

    url: str
    token: str
    token_type: str
    ssl_verify: bool | str
    timeout: float
    max_retries: int
    max_wait: float
    min_remaining: int
    #: How the credential is named in metrics and messages (the first source using it).
    credential: str

    @classmethod
    def from_config(cls, config: GitLabSourceConfig, default_timeout: timedelta) -> ClientSettings:
        """Settings of a source's client."""
        verify: bool | str = str(config.ca_bundle) if config.ca_bundle else config.verify_tls
        timeout = (config.timeout or default_timeout).total_seconds()
        return cls(
            url=config.url,
            token=config.token.get_secret_value(),
            token_type=config.token_type,
            ssl_verify=verify,
            timeout=timeout,
            max_retries=config.max_retries,
            max_wait=config.max_wait.total_seconds(),
            min_remaining=config.min_remaining,
            credential=config.name,
        )

    def share_key(self) -> str:
        """Key of the shared client: the instance, a digest of the credential, the call policy."""
        digest = hashlib.sha256(f"{self.token_type}:{self.token}".encode()).hexdigest()[:16]
        policy = (
            self.ssl_verify,
            self.timeout,
            self.max_retries,
            self.max_wait,
            self.min_remaining,
        )
        return f"gitlab-client:{self.url}:{digest}:{policy!r}"

    def __repr__(self) -> str:
        return f"ClientSettings(url={self.url!r}, credential={self.credential!r})"


class _PacedSession(requests.Session):
    """The session python-gitlab sends through: waits before a request, records after it."""

    def __init__(self, gate: Callable[[], None], observe: Callable[[int, Any], None]) -> None:
        super().__init__()
        self._gate = gate
        self._observe = observe

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Pace, send, record (redirects pass through here too, so they are counted)."""
        self._gate()
        try:
            response = super().send(request, **kwargs)
        except requests.RequestException:
            self._observe(0, {})
            raise
        self._observe(response.status_code, response.headers)
        return response


class GitLabClient:
    """python-gitlab plus pacing, counting, bounded retries and error translation."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        metrics: Metrics,
        sleep: Callable[[float], bool],
        clock: Callable[[], datetime],
        budget: RequestBudget | None = None,
        quota: QuotaState | None = None,
    ) -> None:
        self.settings = settings
        self.url = settings.url
        self._metrics = metrics
        self._sleep = sleep
        self._clock = clock
        self.budget = budget
        self.quota = quota or QuotaState()
        self.session = _PacedSession(self._gate, self._record)
        oauth = settings.token_type == "oauth"  # noqa: S105 - the kind of token, not a token
        self.gl = gitlab.Gitlab(
            settings.url,
            private_token=None if oauth else settings.token,
            oauth_token=settings.token if oauth else None,
            ssl_verify=settings.ssl_verify,
            timeout=settings.timeout,
            retry_transient_errors=False,
            # Behind a reverse proxy GitLab's own idea of its URL can differ from ours; pages then
            # link elsewhere. Keep following the address we were given.
            keep_base_url=True,
            user_agent=f"deploy-fetcher/{__version__}",
            session=self.session,
        )

    def __repr__(self) -> str:
        return f"GitLabClient(url={self.url!r}, credential={self.settings.credential!r})"

    # -- pacing and counting --------------------------------------------------------------------------
    def _gate(self) -> None:
        """Wait until the quota and the budget let a request go (or raise RateLimited)."""
        wait = self.quota.wait_needed(self.settings.min_remaining)
        if wait > 0:
            self._wait(wait, "server rate limit")
            self.quota.waited()
        if self.budget is None:
            return
        for _ in range(3):
            wait = self.budget.take()
            if wait <= 0:
                return
            self._wait(wait, "request budget")
        msg = f"GitLab at {self.url}: no slot in the request budget after waiting"
        raise RateLimited(msg, retry_at=self._clock() + timedelta(seconds=self.settings.max_wait))

    def _wait(self, seconds: float, reason: str) -> None:
        retry_at = self._clock() + timedelta(seconds=seconds)
        if seconds > self.settings.max_wait:
            msg = f"GitLab at {self.url}: {reason} exhausted for {seconds:.0f}s"
            raise RateLimited(msg, retry_at=retry_at)
        _log.info("gitlab.rate_limit_wait", url=self.url, seconds=round(seconds, 3), reason=reason)
        if not self._sleep(seconds):
            msg = f"GitLab at {self.url}: stopping while waiting for the {reason}"
            raise RateLimited(msg, retry_at=retry_at)

    def _record(self, status: int, headers: Any) -> None:
        self._metrics.ci_requests.labels(
            provider=PROVIDER, status_code=str(status) if status else "error"
        ).inc()
        if not status:
            return
        self.quota.observe(status, headers)
        labels = {"provider": PROVIDER, "credential": self.settings.credential}
        if self.quota.remaining is not None:
            self._metrics.rate_limit_remaining.labels(**labels).set(self.quota.remaining)
        if self.quota.limit is not None:
            self._metrics.rate_limit_limit.labels(**labels).set(self.quota.limit)

    # -- calls ----------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one python-gitlab call with bounded retries; errors come out translated.

        ``what`` names the request in messages by its full URL, never its headers
        (``GET https://gitlab.example.com/api/v4/projects/g%2Fapi/deployments``).
        """
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                return fn()
            except gitlab.exceptions.GitlabError as exc:
                code = exc.response_code or 0
                last = attempt == attempts - 1
                if code == 429 and not last:  # noqa: PLR2004 - the gate waits for Retry-After
                    continue
                if code in _TRANSIENT and not last:
                    self._backoff(attempt, what, f"HTTP {code}")
                    continue
                raise self._translate(exc, what) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt < attempts - 1:
                    self._backoff(attempt, what, type(exc).__name__)
                    continue
                msg = f"{what}: {type(exc).__name__} talking to {self.url}"
                raise TransientError(msg) from None
            except requests.RequestException as exc:
                msg = f"{what}: {type(exc).__name__} talking to {self.url}"
                raise TransientError(msg) from None
            except PagingError as exc:
                msg = f"{what}: {exc}"
                raise TransientError(msg) from None
        msg = f"{what}: no attempt left"  # pragma: no cover - the loop returns or raises
        raise TransientError(msg)

    def _backoff(self, attempt: int, what: str, why: str) -> None:
        seconds = min(_BACKOFF_BASE * 2**attempt, _BACKOFF_CAP)
        _log.info("gitlab.retry", request=what, reason=why, seconds=seconds)
        if not self._sleep(seconds):
            msg = f"{what}: stopping during a retry"
            raise TransientError(msg)

    def _translate(  # noqa: PLR0911 - one exit per class of the error taxonomy reads best
        self, exc: gitlab.exceptions.GitlabError, what: str
    ) -> Exception:
        code = exc.response_code or 0
        message = str(exc.error_message)[:300]
        if isinstance(exc, gitlab.exceptions.GitlabAuthenticationError) or code == 401:  # noqa: PLR2004
            return AuthError(f"GitLab at {self.url} rejected the token (401): {message}")
        if code == 403 and "insufficient_scope" in (message + str(exc.response_body or b"")):  # noqa: PLR2004
            return AuthError(
                f"GitLab at {self.url}: the token lacks the scope to read the API "
                "(give it read_api)"
            )
        if code in {403, 404}:
            return TargetNotFound(
                f"{what}: {message} ({code}); missing, or not visible to the token"
            )
        if code == 429:  # noqa: PLR2004
            retry_at = self._clock() + timedelta(
                seconds=max(self.quota.wait_needed(self.settings.min_remaining), 1.0)
            )
            return RateLimited(f"{what}: rate limited by GitLab (429)", retry_at=retry_at)
        if code in _TRANSIENT or code >= 500:  # noqa: PLR2004
            return TransientError(f"{what}: GitLab answered {code}: {message}")
        if isinstance(exc, gitlab.exceptions.GitlabParsingError):
            return TransientError(f"{what}: the response is not valid JSON")
        if code:
            return SourceError(f"{what}: GitLab refused the request ({code}): {message}")
        return TransientError(f"{what}: {type(exc).__name__}: {message}")

    # -- requests -------------------------------------------------------------------------------------
    def _get(self, path: str) -> str:
        """How a request is named in errors and logs: with its full URL, so a log line says where."""
        return f"GET {self.url}/api/v4{path}"

    def get(self, path: str, **query: Any) -> Any:
        """``GET`` one object (the parsed JSON).

        python-gitlab hands back the raw response when the content type is not JSON (an HTML page
        from a proxy or a maintenance screen): that is a failed read, TransientError, never data.
        """
        what = self._get(path)
        body = self.call(what, lambda: self.gl.http_get(path, query_data=query, **_NO_SDK_RETRY))
        if isinstance(body, requests.Response):
            content_type = (body.headers.get("Content-Type") or "no content type")[:100]
            msg = f"{what}: GitLab answered {body.status_code} with {content_type}, not JSON"
            raise TransientError(msg)
        return body

    def page(self, path: str, query: dict[str, Any], *, page: int, per_page: int) -> list[Any]:
        """``GET`` one page of a list (the raw items, not wrapped in objects).

        Read with ``http_request`` rather than ``http_list``, whose list indexes the body as it
        comes: a JSON object or scalar there escaped as a bare KeyError or TypeError.
        """
        what = self._get(path)

        def fetch() -> Any:
            response = self.gl.http_request(
                "get",
                path,
                query_data={**query, "page": page, "per_page": per_page},
                **_NO_SDK_RETRY,
            )
            try:
                return response.json()
            except ValueError:
                raise gitlab.exceptions.GitlabParsingError(
                    error_message="Failed to parse the server message"
                ) from None

        body = self.call(what, fetch)
        if not isinstance(body, list):
            msg = f"{what}: the answer is a JSON {type(body).__name__}, not a list"
            raise TransientError(msg)
        return body

    def iterate(self, path: str, query: dict[str, Any], *, per_page: int) -> Iterator[Any]:
        """Every item of a list, following GitLab's pages (``iterator=True``: one page at a time)."""
        what = self._get(path)
        pages = self.call(
            what,
            lambda: self.gl.http_list(
                path, query_data=query, iterator=True, per_page=per_page, **_NO_SDK_RETRY
            ),
        )
        iterator = iter(pages)

        def step() -> Any:
            try:
                return next(iterator, _END)
            except (KeyError, TypeError):
                # python-gitlab indexes each page's body: a JSON object or scalar fails there.
                msg = f"{what}: a page of the answer is not a list"
                raise TransientError(msg) from None

        while True:
            item = self.call(what, step)
            if item is _END:
                return
            yield item

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


_END: Final = object()


def shared_client(config: GitLabSourceConfig, context: ProviderContext) -> GitLabClient:
    """The client of a source's instance and credential, created once and shared.

    The request budget is shared per instance (every source reading it counts against it); the
    rate-limit state per instance and credential (GitLab counts per user).
    """
    settings = ClientSettings.from_config(config, context.defaults.timeout)
    budget: RequestBudget | None = None
    if config.request_budget is not None:
        limit = config.request_budget
        budget = context.shared.get(f"gitlab-budget:{config.url}", lambda: RequestBudget(limit))
        if budget.limit != limit:
            _log.warning(
                "gitlab.budget_mismatch",
                source=config.name,
                url=config.url,
                configured=limit,
                shared=budget.limit,
            )
    digest = hashlib.sha256(settings.token.encode()).hexdigest()[:16]
    quota = context.shared.get(f"gitlab-quota:{config.url}:{digest}", QuotaState)
    return context.shared.get(
        settings.share_key(),
        lambda: GitLabClient(
            settings,
            metrics=context.metrics,
            sleep=context.sleep,
            clock=context.clock,
            budget=budget,
            quota=quota,
        ),
    )

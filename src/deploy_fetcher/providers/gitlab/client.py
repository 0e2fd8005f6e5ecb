"""HTTP to GitLab through python-gitlab: one client per instance and credential, shared by sources.

python-gitlab builds the requests (auth header, URLs, ``x-next-page``/Link paging). It sends them
through a ``requests`` session that carries the kit's :class:`~deploy_fetcher.providers.kit.PolicyAdapter`,
so every request it makes — pages, and redirects it would follow — passes the request policy:

* the **gate** waits for the instance's request budget and the server's ``RateLimit-*`` /
  ``Retry-After`` figures (interruptibly), or ends the cycle with RateLimited;
* the **limits**: the whole-request deadline (``timeout``), the byte cap, and no redirect to another
  host or scheme — ``requests`` would keep ``PRIVATE-TOKEN`` on a redirect to another host;
* **counting**: every answer feeds ``fetcher_ci_requests`` and the rate-limit gauges.

python-gitlab's own retry loop waits out ``Retry-After`` with ``time.sleep`` and no upper bound, so
it is switched off; :meth:`GitLabClient.call` retries through the policy instead, and translates
python-gitlab and ``requests`` exceptions into :mod:`deploy_fetcher.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

import gitlab
import gitlab.exceptions
import requests
import structlog
from gitlab.utils import EncodedId

from deploy_fetcher._version import __version__
from deploy_fetcher.errors import (
    AuthError,
    SourceError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.providers.kit import (
    RequestBudget,
    RequestPolicy,
    Retry,
    classify,
    credential_digest,
    policed_session,
    requests_verify,
    shared_policy,
)
from deploy_fetcher.redaction import excerpt

if TYPE_CHECKING:
    from deploy_fetcher.providers import ProviderContext
    from deploy_fetcher.providers.gitlab.config import GitLabSourceConfig

__all__ = ["GitLabClient", "encode_id", "shared_client"]

_log = structlog.get_logger(__name__)

PROVIDER: Final = "gitlab"
#: Options that keep python-gitlab from sleeping on its own (see the module docstring).
_NO_SDK_RETRY: Final[dict[str, Any]] = {
    "obey_rate_limit": False,
    "retry_transient_errors": False,
    "max_retries": 0,
}

T = TypeVar("T")


def encode_id(project: str) -> str:
    """A project or group as it goes into a URL: numeric ids as they are, paths URL-encoded."""
    return str(EncodedId(project))


class GitLabClient:
    """python-gitlab on a policed session: retries, limits and error translation."""

    def __init__(
        self,
        url: str,
        token: str,
        token_type: str,
        policy: RequestPolicy,
        *,
        ssl_verify: bool | str = True,
    ) -> None:
        self.url = url
        self.policy = policy
        self.session = policed_session(policy)
        oauth = token_type == "oauth"  # noqa: S105 - the kind of token, not a token
        self.gl = gitlab.Gitlab(
            url,
            private_token=None if oauth else token,
            oauth_token=token if oauth else None,
            ssl_verify=ssl_verify,
            timeout=policy.limits.timeout,
            retry_transient_errors=False,
            # Behind a reverse proxy GitLab's own idea of its URL can differ from ours; pages then
            # link elsewhere. Keep following the address we were given.
            keep_base_url=True,
            user_agent=f"deploy-fetcher/{__version__}",
            session=self.session,
        )

    def __repr__(self) -> str:
        return f"GitLabClient(url={self.url!r}, credential={self.policy.label!r})"

    # -- calls ----------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one python-gitlab call under the policy's retries; errors come out translated.

        ``what`` names the request in messages by its full URL, never its headers
        (``GET https://gitlab.example.com/api/v4/projects/g%2Fapi/deployments``).
        """

        def attempt() -> T:
            try:
                return fn()
            except gitlab.exceptions.GitlabError as exc:
                raise self._translate(exc, what) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                msg = f"{what}: {type(exc).__name__} talking to {self.url}"
                raise Retry(TransientError(msg)) from None
            except requests.RequestException as exc:
                msg = f"{what}: {type(exc).__name__} talking to {self.url}"
                raise TransientError(msg) from None

        return self.policy.call(what, attempt)

    def _translate(self, exc: gitlab.exceptions.GitlabError, what: str) -> Exception:
        code = exc.response_code or 0
        message = excerpt(str(exc.error_message))
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
        if isinstance(exc, gitlab.exceptions.GitlabParsingError):
            return TransientError(f"{what}: the response is not valid JSON")
        try:  # the rest by the kit's table; the quota holds a 429's Retry-After, the gate waits
            if code:
                classify(code, {}, what=f"{what}: GitLab", message=message)
        except (SourceError, Retry) as translated:
            return translated
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


#: GitLab.com's limit on authenticated API requests a minute per user.
GITLAB_COM_PER_MINUTE = 2000


def _is_gitlab_com(url: str) -> bool:
    return url.rstrip("/").lower() in {"https://gitlab.com", "http://gitlab.com"}


def shared_client(config: GitLabSourceConfig, context: ProviderContext) -> GitLabClient:
    """The client of a source's instance and credential, created once and shared.

    The request budget is shared per instance (every source reading it counts against it); the
    quota per instance and token (GitLab counts per user); the client per policy.
    """
    token = config.token.get_secret_value()
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
    policy = shared_policy(
        config,
        context,
        provider=PROVIDER,
        credential=credential_digest(config.url, config.token_type, token),
        budget=budget,
        reserve=config.min_remaining,
    )
    if policy.quota is not None:
        if config.request_budget is not None:
            policy.quota.declare(
                "core", config.request_budget, f"request_budget of {config.request_budget} a minute"
            )
        elif _is_gitlab_com(config.url):
            policy.quota.declare(
                "core", GITLAB_COM_PER_MINUTE, "GitLab.com's 2 000 API requests a minute per user"
            )
    verify = requests_verify(config.tls_verify, config.ca_bundle)
    return context.shared.get(
        f"gitlab-client:{id(policy)}:{verify}",
        lambda: GitLabClient(config.url, token, config.token_type, policy, ssl_verify=verify),
    )

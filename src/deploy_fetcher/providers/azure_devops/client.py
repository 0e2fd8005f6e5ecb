"""A thin typed client of the Azure DevOps REST API 7.1, on httpx.

Only what the adapter reads: projects, environments and their deployment records, build definitions,
builds and their timelines, classic release deployments. Every response is classified here, once, into
the fetcher's error taxonomy, so the adapter never looks at a status code::

    2xx JSON                 → the parsed body
    203, 3xx, 2xx non-JSON   → AuthError   (the sign-in page Azure DevOps serves to a bad PAT)
    401                      → AuthError   (after one re-read of a bearer token file)
    403, 404                 → TargetNotFound (project missing or not visible: reported and skipped)
    429                      → wait Retry-After when short, else RateLimited
    408, 5xx, network error  → retried with backoff (or a Retry-After up to max_rate_limit_wait),
                               then TransientError (at once for a longer Retry-After)
    other 4xx                → SourceError (a request this client should not have made)
    2xx with broken JSON     → logged with its URL, TransientError (the cycle is retried)

Waiting always goes through the injected ``sleep`` (the daemon's interruptible one), and every
response updates the request and quota metrics.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlsplit

import httpx
import structlog

from deploy_fetcher._version import __version__
from deploy_fetcher.errors import (
    AuthError,
    RateLimited,
    SourceError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.providers.azure_devops.paging import ContinuationPaginator, ListPage
from deploy_fetcher.providers.azure_devops.ratelimit import (
    RateLimitInfo,
    pause_before_next,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from deploy_fetcher.metrics import Metrics
    from deploy_fetcher.providers.azure_devops.auth import Credential

__all__ = ["PROVIDER", "AzureDevOpsClient"]

PROVIDER: Final = "azure-devops"

#: Endpoints still in preview at 7.1 need the ``-preview.N`` flag or the service answers 400.
_PREVIEW: Final = {
    "environments": "-preview.1",
    "environmentdeploymentrecords": "-preview.1",
    "release.deployments": "-preview.2",
}
_CONTINUATION = "x-ms-continuationtoken"
_MESSAGE_LIMIT = 300

_log = structlog.get_logger(__name__)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _error_message(response: httpx.Response) -> str:
    """The service's own message (Azure DevOps errors are ``{message, typeKey}``), shortened."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or ""
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("typeKey") or "")
        return message[:_MESSAGE_LIMIT]
    return ""


class AzureDevOpsClient:
    """One organization's REST API (and its Release Management host) behind one keep-alive session."""

    def __init__(
        self,
        *,
        organization_url: str,
        release_url: str,
        credential: Credential,
        api_version: str = "7.1",
        timeout: float = 30.0,
        verify: bool | str = True,
        retries: int = 2,
        max_rate_limit_wait: float = 60.0,
        low_water: float = 0.1,
        metrics: Metrics | None = None,
        credential_label: str = "",
        sleep: Callable[[float], bool],
        clock: Callable[[], datetime],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.organization_url = organization_url.rstrip("/")
        self.release_url = release_url.rstrip("/")
        self._credential = credential
        self._api_version = api_version
        self._retries = retries
        self._max_wait = max_rate_limit_wait
        self._low_water = low_water
        self._metrics = metrics
        self._label = credential_label
        self._sleep = sleep
        self._clock = clock
        self._pause = 0.0
        #: Set when a 429 asked for a longer wait than allowed; read by readiness.
        self.rate_limited_until: datetime | None = None
        self._http = httpx.Client(
            timeout=timeout,
            verify=verify,
            transport=transport,
            follow_redirects=False,
            headers={
                "Accept": "application/json",
                "User-Agent": f"deploy-fetcher/{__version__}",
            },
        )

    def close(self) -> None:
        """Close the session."""
        self._http.close()

    # -- URLs ----------------------------------------------------------------------------------
    def org(self, path: str) -> str:
        """An organization-level URL."""
        return f"{self.organization_url}/{path}"

    def project(self, project: str, path: str) -> str:
        """A project-level URL on the organization host."""
        return f"{self.organization_url}/{_segment(project)}/{path}"

    def release(self, project: str, path: str) -> str:
        """A project-level URL on the Release Management host."""
        return f"{self.release_url}/{_segment(project)}/{path}"

    # -- the one request loop -----------------------------------------------------------------
    def _wait(self, seconds: float, reason: str, url: str) -> None:
        if seconds <= 0:
            return
        _log.info("azure_devops.waiting", seconds=round(seconds, 3), reason=reason, url=url)
        if not self._sleep(seconds):
            msg = "the daemon is stopping"
            raise TransientError(msg)

    def _observe(self, response: httpx.Response) -> None:
        if self._metrics is not None:
            self._metrics.ci_requests.labels(PROVIDER, str(response.status_code)).inc()
        info = RateLimitInfo.from_headers(response.headers)
        if info.delay:
            _log.info(
                "azure_devops.throttled",
                delay=info.delay,
                resource=info.resource,
                url=str(response.request.url),
            )
        if not info.known:
            return
        if self._metrics is not None and info.remaining is not None and info.limit is not None:
            self._metrics.rate_limit_remaining.labels(PROVIDER, self._label).set(info.remaining)
            self._metrics.rate_limit_limit.labels(PROVIDER, self._label).set(info.limit)
        self._pause = pause_before_next(
            info, now=self._clock(), low_water=self._low_water, max_wait=self._max_wait
        )

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = retry_after_seconds(response.headers.get("retry-after"), now=self._clock())
            if after is not None:
                return after
        return float(min(self._max_wait, 0.5 * 2**attempt))

    def _send(self, url: str, query: dict[str, str]) -> httpx.Response | TransientError:
        """One GET: the response, or the network failure to raise if retries run out."""
        if self._pause > 0:
            self._wait(self._pause, "rate limit low", url)
            self._pause = 0.0
        try:
            response = self._http.get(
                url, params=query, headers={"Authorization": self._credential.header()}
            )
        except httpx.TimeoutException as exc:
            return TransientError(f"timeout calling {url}: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return TransientError(f"network error calling {url}: {type(exc).__name__}")
        self._observe(response)
        return response

    def _throttled(self, url: str, response: httpx.Response, attempt: int) -> None:
        """Wait out a 429 when the wait is short and retries remain; else raise RateLimited."""
        wait = self._backoff(attempt, response)
        if wait > self._max_wait or attempt >= self._retries:
            retry_at = self._clock() + timedelta(seconds=wait)
            self.rate_limited_until = retry_at
            msg = f"rate limited by Azure DevOps on {url} until {retry_at.isoformat()}"
            raise RateLimited(msg, retry_at=retry_at)
        self._wait(wait, "429 Retry-After", url)

    def get_json(
        self, url: str, params: dict[str, str], *, resource: str = ""
    ) -> tuple[Any, httpx.Headers]:
        """GET a JSON document; ``resource`` picks the preview flag. Returns (body, headers)."""
        query = dict(params)
        query["api-version"] = self._api_version + _PREVIEW.get(resource, "")
        refreshed = False
        attempt = 0
        while True:
            sent = self._send(url, query)
            response = sent if isinstance(sent, httpx.Response) else None
            failure = sent if isinstance(sent, TransientError) else None
            if response is not None:
                status = response.status_code
                if (
                    status == HTTPStatus.UNAUTHORIZED
                    and not refreshed
                    and self._credential.refresh()
                ):
                    refreshed = True
                    continue
                if status == HTTPStatus.TOO_MANY_REQUESTS:
                    self._throttled(url, response, attempt)
                    attempt += 1
                    continue
                if (
                    status != HTTPStatus.REQUEST_TIMEOUT
                    and status < HTTPStatus.INTERNAL_SERVER_ERROR
                ):
                    self.rate_limited_until = None
                    return self._accept(url, response), response.headers
                failure = TransientError(f"HTTP {status} from {url}: {_error_message(response)}")
            if attempt >= self._retries and failure is not None:
                raise failure
            wait = self._backoff(attempt, response)
            if wait > self._max_wait:
                # Only a Retry-After gets here; waiting it out would hold the whole cycle.
                msg = f"{failure}; retry asked for in {wait:.0f} s, beyond max_rate_limit_wait"
                raise TransientError(msg)
            self._wait(wait, "retry after failure", url)
            attempt += 1

    def _accept(self, url: str, response: httpx.Response) -> Any:
        status = response.status_code
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                f"Azure DevOps rejected the credentials (HTTP 401 from {url}): "
                f"{_error_message(response)}"
            )
            raise AuthError(msg)
        if response.is_redirect or status == HTTPStatus.NON_AUTHORITATIVE_INFORMATION:
            where = urlsplit(response.headers.get("location", "")).hostname or "a sign-in page"
            msg = (
                f"Azure DevOps answered {url} with HTTP {status} ({where}) instead of data: "
                "the PAT or token is invalid or expired"
            )
            raise AuthError(msg)
        if status in (HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND):
            message = _error_message(response) or "not found or not visible"
            msg = f"HTTP {status} from {url}: {message}"
            raise TargetNotFound(msg)
        if response.is_error or response.is_redirect:
            msg = f"HTTP {status} from {url}: {_error_message(response)}"
            raise SourceError(msg)
        if status == HTTPStatus.NO_CONTENT or not response.content:
            return None
        content_type = response.headers.get("content-type", "")
        if "json" not in content_type.lower():
            msg = (
                f"Azure DevOps answered {url} with {content_type or 'no content type'} "
                "instead of JSON: the PAT or token is invalid or expired"
            )
            raise AuthError(msg)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            _log.warning("azure_devops.malformed_response", url=url, error=str(exc)[:200])
            msg = f"malformed JSON from {url}"
            raise TransientError(msg) from None

    def list_page(
        self, url: str, params: dict[str, str], token: str | None, *, resource: str = ""
    ) -> ListPage:
        """One page of a ``{count, value}`` list."""
        query = dict(params)
        if token:
            query["continuationToken"] = token
        body, headers = self.get_json(url, query, resource=resource)
        if body is None:
            return ListPage([], None, url)
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, list):
            _log.warning("azure_devops.malformed_response", url=url, error="no value list")
            msg = f"malformed list from {url}"
            raise TransientError(msg)
        items = []
        for item in value:
            if isinstance(item, dict):
                items.append(item)
            else:
                _log.warning("azure_devops.malformed_item", url=url, item=repr(item)[:200])
        return ListPage(items, headers.get(_CONTINUATION) or None, url)

    def paginate(
        self,
        url: str,
        params: dict[str, str],
        *,
        max_pages: int,
        resource: str = "",
        start: str | None = None,
    ) -> ContinuationPaginator:
        """All pages of a list, following continuation tokens (from ``start`` when given)."""
        return ContinuationPaginator(
            lambda token: self.list_page(url, params, token, resource=resource),
            max_pages=max_pages,
            start=start,
        )

    # -- endpoints ----------------------------------------------------------------------------
    def projects(self, *, page_size: int, max_pages: int) -> ContinuationPaginator:
        """``GET {org}/_apis/projects``."""
        return self.paginate(
            self.org("_apis/projects"), {"$top": str(page_size)}, max_pages=max_pages
        )

    def environments(
        self, project: str, *, page_size: int, max_pages: int
    ) -> ContinuationPaginator:
        """``GET {project}/_apis/distributedtask/environments``."""
        return self.paginate(
            self.project(project, "_apis/distributedtask/environments"),
            {"$top": str(page_size)},
            max_pages=max_pages,
            resource="environments",
        )

    def environment_records(
        self,
        project: str,
        environment_id: int,
        *,
        page_size: int,
        max_pages: int,
        start: str | None = None,
    ) -> ContinuationPaginator:
        """``GET .../environments/{id}/environmentdeploymentrecords``, newest first (``top``, no ``$``).

        The service's continuation token is the id of the next record (the list resumes at ids at
        or below it), so a token kept from a walk cut short is still good cycles later.
        """
        path = f"_apis/distributedtask/environments/{environment_id}/environmentdeploymentrecords"
        return self.paginate(
            self.project(project, path),
            {"top": str(page_size)},
            max_pages=max_pages,
            resource="environmentdeploymentrecords",
            start=start,
        )

    def definitions(self, project: str, *, page_size: int, max_pages: int) -> ContinuationPaginator:
        """``GET {project}/_apis/build/definitions`` (shallow references: id, name, path)."""
        return self.paginate(
            self.project(project, "_apis/build/definitions"),
            {"$top": str(page_size)},
            max_pages=max_pages,
        )

    def builds(
        self,
        project: str,
        *,
        definitions: Iterable[int] = (),
        build_ids: Iterable[int] = (),
        min_time: datetime | None = None,
        max_time: datetime | None = None,
        query_order: str = "queueTimeAscending",
        page_size: int,
        max_pages: int,
    ) -> ContinuationPaginator:
        """``GET {project}/_apis/build/builds``; minTime/maxTime apply to the time queryOrder names."""
        params: dict[str, str] = {"$top": str(page_size), "queryOrder": query_order}
        ids = ",".join(str(i) for i in definitions)
        if ids:
            params["definitions"] = ids
        wanted = ",".join(str(i) for i in build_ids)
        if wanted:
            params["buildIds"] = wanted
        if min_time is not None:
            params["minTime"] = _iso(min_time)
        if max_time is not None:
            params["maxTime"] = _iso(max_time)
        return self.paginate(
            self.project(project, "_apis/build/builds"), params, max_pages=max_pages
        )

    def timeline(self, project: str, build_id: int) -> list[dict[str, Any]]:
        """``GET .../builds/{id}/timeline``: the run's records (empty before the run has a plan)."""
        url = self.project(project, f"_apis/build/builds/{build_id}/timeline")
        body, _ = self.get_json(url, {})
        if body is None:
            return []
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            _log.warning("azure_devops.malformed_response", url=url, error="no records list")
            return []
        return [record for record in records if isinstance(record, dict)]

    def release_deployments(
        self,
        project: str,
        *,
        min_modified: datetime | None,
        max_modified: datetime | None = None,
        page_size: int,
        max_pages: int,
    ) -> ContinuationPaginator:
        """``GET {vsrm}/{project}/_apis/release/deployments``, oldest change first."""
        params: dict[str, str] = {"$top": str(page_size), "queryOrder": "ascending"}
        if min_modified is not None:
            params["minModifiedTime"] = _iso(min_modified)
        if max_modified is not None:
            params["maxModifiedTime"] = _iso(max_modified)
        return self.paginate(
            self.release(project, "_apis/release/deployments"),
            params,
            max_pages=max_pages,
            resource="release.deployments",
        )


def _iso(value: datetime) -> str:
    """UTC with ``Z`` and microseconds: Azure DevOps' date filters take ISO 8601."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

"""A thin typed client of the Azure DevOps REST API 7.1, on the provider kit's HTTP client.

Only what the adapter reads: projects, environments and their deployment records, build definitions,
builds and their timelines, classic release deployments. Sending, limits, retries and the quota are
the kit's (:class:`~deploy_fetcher.providers.kit.RequestPolicy`); what is Azure DevOps' own is how an
answer reads, classified here once so the adapter never looks at a status code::

    2xx JSON                 → the parsed body
    203, 3xx, 2xx non-JSON   → AuthError   (the sign-in page Azure DevOps serves to a bad PAT;
                               a redirect to another host is never followed)
    401                      → AuthError   (after one re-read of a bearer token file)
    403, 404                 → TargetNotFound (project missing or not visible: reported and skipped)
    429                      → the credential waits Retry-After when short, else RateLimited
    408, 5xx, network error  → retried with back-off (or the Retry-After), then TransientError
    other 4xx                → SourceError (a request this client should not have made)
    2xx with broken JSON     → logged with its URL, TransientError (the cycle is retried)

One client (and one quota) serves every source of an organization and credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import httpx
import structlog

from deploy_fetcher._version import __version__
from deploy_fetcher.errors import AuthError, TargetNotFound
from deploy_fetcher.providers.kit import (
    ContinuationPaginator,
    HttpClient,
    JsonApi,
    RedirectRefused,
    Reply,
    RequestPolicy,
    classify,
    credential_digest,
    shared_policy,
    tls_verify,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from deploy_fetcher.providers import ProviderContext
    from deploy_fetcher.providers.azure_devops.auth import Credential
    from deploy_fetcher.providers.azure_devops.config import AzureDevOpsConfig

__all__ = ["PROVIDER", "AzureDevOpsClient", "ListPage", "shared_client"]

PROVIDER: Final = "azure-devops"

#: Endpoints still in preview at 7.1 need the ``-preview.N`` flag or the service answers 400.
_PREVIEW: Final = {
    "environments": "-preview.1",
    "environmentdeploymentrecords": "-preview.1",
    "release.deployments": "-preview.2",
    "connectionData": "-preview.1",
}
_CONTINUATION = "x-ms-continuationtoken"
_MESSAGE_LIMIT = 300

_log = structlog.get_logger(__name__)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _error_message(reply: Reply) -> str:
    """The service's own message (Azure DevOps errors are ``{message, typeKey}``), shortened."""
    try:
        body = reply.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("typeKey") or "")
        return message[:_MESSAGE_LIMIT]
    return ""


def _accept(url: str, reply: Reply) -> None:
    """Azure DevOps' own answers, read before the common table (see the module docstring)."""
    status, message = reply.status, _error_message(reply)
    if status == HTTPStatus.UNAUTHORIZED:
        msg = f"Azure DevOps rejected the credentials (HTTP 401 from {url}): {message}"
        raise AuthError(msg)
    if 300 <= status < 400 or status == HTTPStatus.NON_AUTHORITATIVE_INFORMATION:  # noqa: PLR2004 - 3xx
        msg = (
            f"Azure DevOps answered {url} with HTTP {status} (a sign-in page) instead of data: "
            "the PAT or token is invalid or expired"
        )
        raise AuthError(msg)
    if status in (HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND):
        raise TargetNotFound(f"HTTP {status} from {url}: {message or 'not found or not visible'}")
    if status >= HTTPStatus.BAD_REQUEST:
        classify(status, reply.headers, what=f"HTTP {status} from {url}", message=message)
    content_type = reply.headers.get("content-type", "")
    if reply.body and status != HTTPStatus.NO_CONTENT and "json" not in content_type.lower():
        msg = (
            f"Azure DevOps answered {url} with {content_type or 'no content type'} "
            "instead of JSON: the PAT or token is invalid or expired"
        )
        raise AuthError(msg)


def _signed_in_elsewhere(exc: RedirectRefused) -> AuthError:
    return AuthError(f"{exc} (Azure DevOps sends a bad PAT or token to sign in elsewhere)")


@dataclass(frozen=True)
class ListPage:
    """One page of a ``{count, value}`` list: its items, the next page's token, its URL."""

    items: list[dict[str, Any]]
    token: str | None
    url: str


class AzureDevOpsClient:
    """One organization's REST API (and its Release Management host) under one request policy."""

    def __init__(
        self,
        *,
        organization_url: str,
        release_url: str,
        credential: Credential,
        policy: RequestPolicy,
        api_version: str = "7.1",
        verify: Any = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.organization_url = organization_url.rstrip("/")
        self.release_url = release_url.rstrip("/")
        self.policy = policy
        self._api_version = api_version
        http = HttpClient(
            policy,
            headers={"Accept": "application/json", "User-Agent": f"deploy-fetcher/{__version__}"},
            verify=verify,
            transport=transport,
        )
        self.api = JsonApi(
            http,
            log_name="azure_devops",
            auth=lambda: {"Authorization": credential.header()},
            refresh=credential.refresh,
            accept=_accept,
            refused=_signed_in_elsewhere,
        )

    def close(self) -> None:
        """Close the session."""
        self.api.close()

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

    # -- requests ------------------------------------------------------------------------------
    def _query(self, params: dict[str, str], resource: str) -> dict[str, str]:
        return {**params, "api-version": self._api_version + _PREVIEW.get(resource, "")}

    def json_of(self, url: str, params: dict[str, str], *, resource: str = "") -> Any:
        """The parsed body of a GET (None for an empty answer); ``resource`` picks the preview flag."""
        return self.api.get(url, self._query(params, resource))

    def list_page(
        self, url: str, params: dict[str, str], token: str | None, *, resource: str = ""
    ) -> ListPage:
        """One page of a ``{count, value}`` list."""
        query = self._query(params, resource)
        if token:
            query["continuationToken"] = token
        reply = self.api.reply(url, query)
        body = self.api.parse(url, reply)
        if body is None:
            return ListPage([], None, url)
        items = self.api.objects(body.get("value") if isinstance(body, dict) else None, url)
        return ListPage(items, reply.headers.get(_CONTINUATION) or None, url)

    def paginate(
        self,
        url: str,
        params: dict[str, str],
        *,
        max_pages: int,
        resource: str = "",
        start: str | None = None,
    ) -> ContinuationPaginator[ListPage]:
        """All pages of a list, following continuation tokens (from ``start`` when given)."""
        return ContinuationPaginator(
            lambda token: self.list_page(url, params, token, resource=resource),
            lambda page: page.token,
            max_pages=max_pages,
            start=start,
            what=url,
        )

    # -- endpoints ----------------------------------------------------------------------------
    def projects(self, *, page_size: int, max_pages: int) -> ContinuationPaginator[ListPage]:
        """``GET {org}/_apis/projects``."""
        return self.paginate(
            self.org("_apis/projects"), {"$top": str(page_size)}, max_pages=max_pages
        )

    def environments(
        self, project: str, *, page_size: int, max_pages: int
    ) -> ContinuationPaginator[ListPage]:
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
    ) -> ContinuationPaginator[ListPage]:
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

    def definitions(
        self, project: str, *, page_size: int, max_pages: int
    ) -> ContinuationPaginator[ListPage]:
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
    ) -> ContinuationPaginator[ListPage]:
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
        body = self.json_of(url, {})
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
    ) -> ContinuationPaginator[ListPage]:
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


def shared_client(
    config: AzureDevOpsConfig,
    context: ProviderContext,
    credential: Credential,
    transport: httpx.BaseTransport | None = None,
) -> AzureDevOpsClient:
    """The client of a source's organization and credential, created once and shared by sources.

    Sources with the same credential share its quota and keep-alive connections; their transport
    settings (timeout, TLS, retries …) are part of the key, so sources that differ get their own.
    """
    secret = config.pat.get_secret_value() if config.pat else str(config.bearer_token_file)
    policy = shared_policy(
        config,
        context,
        provider=PROVIDER,
        credential=credential_digest(config.organization_url, secret),
        low_water=config.rate_limit_low_water,
        counts_requests=False,  # its X-RateLimit-* count TSTUs
    )
    verify = tls_verify(config.tls_verify, config.ca_bundle)
    key = (
        id(policy),
        config.effective_release_url,
        config.api_version,
        config.tls_verify,
        str(config.ca_bundle),
    )
    return context.shared.get(
        f"azure-devops-client:{key}",
        lambda: AzureDevOpsClient(
            organization_url=config.organization_url,
            release_url=config.effective_release_url,
            credential=credential,
            policy=policy,
            api_version=config.api_version,
            verify=verify,
            transport=transport,
        ),
    )

"""A fourth CI system in a page of code: deployments read from a JSON list over HTTP.

The worked example of ``docs/contributing/new-provider.md``. The service it reads answers
``GET <url>?updated_after=<time>&per_page=<n>`` with a JSON array of deployments, oldest change first,
and a ``Link: <…>; rel="next"`` header while more follow; each item is

    {"id": "d-17", "service": "api", "environment": "prod", "status": "success",
     "updated_at": "2026-03-02T12:00:00Z", "version": "1.4.2", "url": "https://ci/runs/17"}

Everything else — bounded requests, retries, the quota, paging, the cursor, page-by-page commits —
comes from :mod:`deploy_fetcher.providers.kit`. Registered as ``json-list`` by the suite's own
plugin distribution, so the contract suite runs over it like over the real providers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import structlog
from pydantic import Field, SecretStr, field_validator

from deploy_fetcher.config import HttpSourceConfig, SourceConfig
from deploy_fetcher.model import DeployEvent, format_rfc3339, parse_timestamp
from deploy_fetcher.providers import Cursor, Page, Provider, ProviderContext
from deploy_fetcher.providers.kit import (
    HttpClient,
    JsonApi,
    LinkPaginator,
    Reply,
    Sealed,
    Watermark,
    check_template,
    credential_digest,
    cursor_pages,
    render_template,
    scope_digest,
    settings_of,
    shared_policy,
    short,
    tls_verify,
)

_log = structlog.get_logger(__name__)

#: What a ``service`` template may use.
FIELDS = frozenset({"service", "environment"})


class JsonListConfig(HttpSourceConfig):
    """A ``provider: json-list`` source: one list URL (one target), its token, how to name."""

    provider: Literal["json-list"] = "json-list"
    url: str
    """The list's URL (``https://ci.example.com/api/deployments``)."""
    token: SecretStr | None = None
    """Sent as ``Authorization: Bearer …`` (``token_file`` reads it from a file)."""
    service: str = "{service}"
    """The service name, a template over ``{service}`` and ``{environment}``."""
    page_size: int = Field(default=100, ge=1, le=1000)
    """Items per request."""

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        """A template is checked when the config loads, not on the first poll."""
        return check_template(value, FIELDS, what="service template")


@dataclass
class JsonListCursor(Watermark, Sealed):
    """The mark on ``updated_at``, and the versions already stored inside the overlap window."""

    scope: str = field(default="", metadata=short(None))

    MODE: ClassVar[str] = "updated_at"


def to_event(item: Mapping[str, Any], *, source: str, service: str) -> DeployEvent:
    """One item as a canonical event (pure: ValueError for an item that cannot be one)."""
    values = {name: str(item.get(name) or "") for name in FIELDS}
    return DeployEvent(
        deployment_id=f"jl-{item['id']}",
        service=render_template(service, values) or values["service"],
        environment=values["environment"],
        status=item["status"],
        happened_at=parse_timestamp(item["updated_at"]),
        version=item.get("version"),
        run_url=item.get("url"),
        provider="json-list",
        source=source,
        metadata={"repo": values["service"]},
    )


class JsonListProvider(Provider):
    """Reads one JSON list of deployments (see the module docstring)."""

    name: ClassVar[str] = "json-list"
    config_model: ClassVar[type[SourceConfig]] = JsonListConfig

    def __init__(self, config: SourceConfig, context: ProviderContext) -> None:
        super().__init__(config, context)
        self.settings = settings = settings_of(config, JsonListConfig)
        token = settings.token.get_secret_value() if settings.token else ""
        policy = shared_policy(
            settings, context, provider=self.name, credential=credential_digest(settings.url, token)
        )
        http = context.shared.get(
            f"json-list-client:{id(policy)}:{settings.tls_verify}:{settings.ca_bundle}",
            lambda: HttpClient(policy, verify=tls_verify(settings.tls_verify, settings.ca_bundle)),
        )
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        self.api = JsonApi(http, log_name="json_list", auth=lambda: auth)
        self.scope = scope_digest({"url": settings.url})

    def _pages(self, after: datetime) -> Iterator[tuple[Reply, list[dict[str, Any]]]]:
        """The list's pages from ``after`` on, following ``Link: rel="next"``."""
        first = {"updated_after": format_rfc3339(after), "per_page": str(self.settings.page_size)}

        def fetch(url: str | None) -> tuple[Reply, list[dict[str, Any]]]:
            target = url or self.settings.url
            reply = self.api.reply(target, None if url else first)
            return reply, self.api.objects(self.api.parse(target, reply), target)

        yield from LinkPaginator(
            fetch, lambda page: page[0].headers.get("link"), max_pages=1000, what=self.settings.url
        )

    def _events(
        self, items: list[dict[str, Any]], url: str
    ) -> Iterator[tuple[dict[str, Any], DeployEvent]]:
        for item in items:
            try:
                yield item, to_event(item, source=self.config.name, service=self.settings.service)
            except (KeyError, ValueError) as exc:
                _log.warning(
                    "json_list.malformed_item", url=url, item=item.get("id"), reason=str(exc)[:200]
                )

    def poll(self, target: str, cursor: Cursor | None) -> Iterator[Page]:
        """What changed since the cursor (``now − lookback`` without one), one page at a time."""
        start = self.context.clock() - (self.config.lookback or self.context.defaults.lookback)
        overlap = self.config.overlap or self.context.defaults.overlap
        state = JsonListCursor.resume(
            cursor, scope=self.scope, log_name="json_list", target=target
        ) or JsonListCursor(start, scope=self.scope)

        def walk() -> Iterator[list[DeployEvent]]:
            ceiling = self.api.policy.mark_ceiling()
            for reply, items in self._pages(state.floor(overlap)):
                batch = []
                for item, event in self._events(items, reply.url):
                    if state.done.has(str(item["id"]), event.happened_at):
                        continue  # stored by an earlier poll: the overlap window reads it again
                    state.done.add(str(item["id"]), event.happened_at)
                    batch.append(event)
                    if not state.advance(event.happened_at, ceiling=ceiling):
                        self.api.policy.future_item(
                            url=reply.url, item=item["id"], at=event.happened_at
                        )
                state.prune(now=self.context.clock(), overlap=overlap)
                yield batch

        yield from cursor_pages(walk(), state.sealed, cursor)

    def backfill(self, target: str, since: datetime, until: datetime) -> Iterator[Page]:
        """Every event changed in ``[since, until)``; no cursor."""
        for reply, items in self._pages(since):
            events = [event for _, event in self._events(items, reply.url)]
            kept = [event for event in events if since <= event.happened_at < until]
            if kept:
                yield Page(kept)

"""Mode ``releases``: classic Release Management deployments, on the release host.

``minModifiedTime`` sees every change of every deployment (each transition updates
``lastModifiedOn``), so one ascending walk from the mark minus the overlap is gap-free and needs no
open set; after each page the mark is the newest ``lastModifiedOn`` read, so each page is stored
with the cursor that covers it. A ``lastModifiedOn`` beyond the server's clock never becomes the mark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from deploy_fetcher.model import parse_timestamp
from deploy_fetcher.providers.azure_devops.mapping import Naming, Skip, release_events
from deploy_fetcher.providers.azure_devops.selection import PipelineFilter, match_environment
from deploy_fetcher.providers.kit import record_raw

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from datetime import datetime, timedelta

    from deploy_fetcher.model import DeployEvent
    from deploy_fetcher.providers.azure_devops.client import AzureDevOpsClient
    from deploy_fetcher.providers.azure_devops.config import AzureDevOpsConfig
    from deploy_fetcher.providers.azure_devops.cursor import ReleasesCursor

__all__ = ["ReleaseWalker"]

_log = structlog.get_logger(__name__)
#: Deployment versions remembered inside the overlap window.
_MAX_RECENT = 2000


def _modified(deployment: Mapping[str, Any]) -> datetime | None:
    value = deployment.get("lastModifiedOn")
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


class ReleaseWalker:
    """Polls and backfills one project in mode ``releases``."""

    def __init__(self, client: AzureDevOpsClient, config: AzureDevOpsConfig) -> None:
        self._client = client
        self._config = config
        self._pipelines = PipelineFilter.parse(config.pipelines)

    def _selected(self, deployment: Mapping[str, Any]) -> bool:
        definition = deployment.get("releaseDefinition")
        environment = deployment.get("releaseEnvironment")
        def_id = definition.get("id") if isinstance(definition, dict) else None
        def_name = definition.get("name") if isinstance(definition, dict) else None
        env_name = environment.get("name") if isinstance(environment, dict) else None
        if not self._pipelines.matches(
            def_id if isinstance(def_id, int) else None,
            def_name if isinstance(def_name, str) else None,
        ):
            return False
        return not isinstance(env_name, str) or match_environment(
            self._config.environments, env_name
        )

    def _walk(
        self,
        project: str,
        naming: Naming,
        *,
        since: datetime,
        until: datetime | None,
        cursor: ReleasesCursor | None = None,
        ceiling: datetime | None = None,
    ) -> Iterator[tuple[list[DeployEvent], datetime | None]]:
        """Events per page, with the newest ``lastModifiedOn`` of the page up to ``ceiling``.

        With a cursor, a deployment already emitted in the same version is skipped, and each
        emitted one is remembered there.
        """
        pager = self._client.release_deployments(
            project,
            min_modified=since,
            max_modified=until,
            page_size=self._config.page_size,
            max_pages=self._config.max_pages,
        )
        for page in pager:
            events: list[DeployEvent] = []
            newest: datetime | None = None
            for deployment in page.items:
                modified = _modified(deployment)
                future = modified is not None and ceiling is not None and modified > ceiling
                if modified is not None and not future and (newest is None or modified > newest):
                    newest = modified
                key = str(deployment.get("id"))
                done = cursor.state.done if cursor is not None else None
                if not self._selected(deployment) or (
                    done is not None and modified is not None and done.has(key, modified)
                ):
                    continue
                if done is not None and modified is not None:
                    done.add(key, modified)
                if future and modified is not None and ceiling is not None:
                    self._client.policy.future_item(url=page.url, item=key, at=modified)
                mapped = release_events(deployment, naming=naming)
                if isinstance(mapped, Skip):
                    if mapped.malformed:
                        _log.warning(
                            "azure_devops.malformed_item", url=page.url, reason=mapped.reason
                        )
                    continue
                record_raw(f"release deployment {key}", deployment, mapped)
                events.extend(mapped)
            yield events, newest
        if pager.truncated:
            _log.warning("azure_devops.walk_truncated", project=project, pages=pager.pages)

    def poll(
        self, project: str, cursor: ReleasesCursor, *, naming: Naming, overlap: timedelta
    ) -> Iterator[list[DeployEvent]]:
        """Yield events per page, the cursor moved to the newest change of each page read."""
        state = cursor.state
        ceiling = self._client.policy.mark_ceiling()
        walk = self._walk(
            project, naming, since=state.floor(overlap), until=None, cursor=cursor, ceiling=ceiling
        )
        for events, newest in walk:
            if newest is not None:
                state.advance(newest, ceiling=ceiling)
            state.done.prune(state.floor(overlap), max_size=_MAX_RECENT)
            yield events

    def backfill(
        self, project: str, *, naming: Naming, since: datetime, until: datetime
    ) -> Iterator[list[DeployEvent]]:
        """Events of the deployments changed in ``[since, until)``."""
        for events, _newest in self._walk(project, naming, since=since, until=until):
            yield [e for e in events if since <= e.happened_at < until]

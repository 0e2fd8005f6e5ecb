"""What a walker of one repository holds, whichever mode it polls in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TypedDict, Unpack

import structlog

from deploy_fetcher.providers._base import Cursor, Page
from deploy_fetcher.providers.github.client import GitHubClient
from deploy_fetcher.providers.github.config import RepoSettings, scope_hash
from deploy_fetcher.providers.github.lookups import Lookups
from deploy_fetcher.providers.github.mapping import Repo

__all__ = ["RepoWalker", "WalkerArgs"]


class WalkerArgs(TypedDict):
    """What every walker is built from, besides the shared client and lookups."""

    repo: Repo
    source: str
    settings: RepoSettings
    max_open: int
    open_max_age: timedelta


class RepoWalker(ABC):
    """Polls one repository; kept across cycles for the caches its subclass adds."""

    def __init__(self, client: GitHubClient, lookups: Lookups, **args: Unpack[WalkerArgs]) -> None:
        self.client = client
        self.lookups = lookups
        self.repo = args["repo"]
        self.source = args["source"]
        self.settings = args["settings"]
        self.max_open = args["max_open"]
        self.open_max_age = args["open_max_age"]
        self.scope = scope_hash(self.settings)
        # Logged under the mode's own module's name.
        self._log = structlog.get_logger(type(self).__module__).bind(
            source=self.source, target=self.repo.full_name
        )

    @abstractmethod
    def poll(
        self, cursor: Cursor | None, *, now: datetime, lookback: timedelta, overlap: timedelta
    ) -> Iterator[Page]:
        """One incremental cycle, from the stored cursor."""

    @abstractmethod
    def backfill(self, since: datetime, until: datetime) -> Iterator[Page]:
        """Every event in ``[since, until)``, oldest first, without cursor."""

"""Which pipelines and environments a source covers: pure matching of ids and glob patterns."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploy_fetcher.providers.azure_devops.mapping import StageTarget, resolve_stage_environment

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["PipelineFilter", "StageResolver", "match_environment"]


def match_environment(patterns: Sequence[str], name: str) -> bool:
    """Whether an environment name passes the source's ``environments`` globs (empty = all)."""
    return not patterns or any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class PipelineFilter:
    """The ``pipelines`` key: numeric entries are definition ids, the rest glob patterns on names."""

    ids: frozenset[int]
    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> PipelineFilter:
        """Split the configured entries into ids and patterns."""
        ids: set[int] = set()
        patterns: list[str] = []
        for entry in entries:
            text = entry.strip()
            if text.isdigit():
                ids.add(int(text))
            elif text:
                patterns.append(text)
        return cls(frozenset(ids), tuple(patterns))

    @property
    def everything(self) -> bool:
        """No filter configured."""
        return not self.ids and not self.patterns

    @property
    def ids_only(self) -> bool:
        """Only ids: the API can filter without listing definitions first."""
        return bool(self.ids) and not self.patterns

    def matches(self, definition_id: int | None, name: str | None) -> bool:
        """Whether a definition is covered."""
        if self.everything:
            return True
        if definition_id is not None and definition_id in self.ids:
            return True
        return name is not None and any(fnmatch.fnmatchcase(name, p) for p in self.patterns)


class StageResolver:
    """Which environment a stage deploys to: learned pairs first, then the configured map/pattern.

    ``learned`` maps ``"{definitionId}/{stage}"`` to an environment id (mode environments, from the
    deployment records seen so far); ``environment_ids`` maps environment names to ids so that a
    configured mapping can produce the same deployment id as the records will.
    """

    def __init__(
        self,
        *,
        mapping: Mapping[str, str],
        pattern: str | None,
        environments: Sequence[str],
        learned: Mapping[str, int] | None = None,
        environment_ids: Mapping[str, int] | None = None,
    ) -> None:
        self._mapping = mapping
        self._pattern = re.compile(pattern) if pattern else None
        self._environments = environments
        self._learned = learned
        self._ids = (
            None if environment_ids is None else {k.lower(): v for k, v in environment_ids.items()}
        )
        self._names = {v: k for k, v in (environment_ids or {}).items()}

    def for_definition(self, definition_id: int | None) -> _BoundResolver:
        """A resolver for the stages of one pipeline."""
        return _BoundResolver(self, definition_id)

    def resolve(
        self, definition_id: int | None, identifier: str, name: str | None
    ) -> StageTarget | None:
        """The stage's environment, or None when it is not a (selected) deployment stage."""
        if self._learned is not None and definition_id is not None:
            for candidate in (identifier, name):
                env_id = self._learned.get(f"{definition_id}/{candidate}") if candidate else None
                if env_id is not None and env_id in self._names:
                    env_name = self._names[env_id]
                    if match_environment(self._environments, env_name):
                        return StageTarget(env_name, env_id)
                    return None
        env = resolve_stage_environment(
            identifier, name, mapping=self._mapping, pattern=self._pattern
        )
        if env is None or not match_environment(self._environments, env):
            return None
        if self._ids is None:
            return StageTarget(env)
        # Environment names are case-insensitive in Azure DevOps; report the environment's own spelling.
        env_id = self._ids.get(env.lower())
        return StageTarget(self._names[env_id], env_id) if env_id is not None else None


@dataclass(frozen=True)
class _BoundResolver:
    resolver: StageResolver
    definition_id: int | None

    def __call__(self, identifier: str, name: str | None) -> StageTarget | None:
        return self.resolver.resolve(self.definition_id, identifier, name)

"""From ``projects[]`` entries to targets, each with its effective settings.

An entry names one project (path or numeric id) or every project of a group (``group/*``, subgroups
included). Each target takes the settings of the entry that named it, falling back to the source's
own keys. When two entries cover one project, an entry naming it exactly wins over a wildcard, and
the first of several wildcards wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deploy_fetcher.providers.gitlab.config import (
    GitLabSourceConfig,
    Mode,
    PipelineSettings,
    ProjectEntry,
    VersionFrom,
)
from deploy_fetcher.providers.gitlab.cursor import scope_digest

__all__ = ["ProjectSettings", "assign_targets", "entry_for", "settings_for", "single_literal"]

_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class ProjectSettings:
    """What one project yields and how its events are named, overrides applied."""

    mode: Mode
    environments: tuple[str, ...]
    service: str
    service_map: Mapping[str, str]
    version: VersionFrom
    pipelines: PipelineSettings

    def scope(self) -> str:
        """Digest of what decides the selection; a cursor written under another one starts over."""
        selection: dict[str, Any] = {"mode": self.mode}
        if self.mode == "deployments":
            selection["environments"] = list(self.environments)
        else:
            selection["refs"] = self.pipelines.refs
            selection["sources"] = self.pipelines.sources
            selection["job_pattern"] = self.pipelines.job_pattern
        return scope_digest(selection)


def settings_for(config: GitLabSourceConfig, entry: ProjectEntry) -> ProjectSettings:
    """The effective settings of an entry."""
    environments = entry.environments if entry.environments is not None else config.environments
    return ProjectSettings(
        mode=entry.mode or config.mode,
        environments=tuple(environments),
        service=entry.service or config.service,
        service_map=entry.service_map if entry.service_map is not None else config.service_map,
        version=entry.version or config.version,
        pipelines=entry.pipelines or config.pipelines,
    )


def assign_targets(
    entries: Iterable[ProjectEntry], group_members: Mapping[str, Iterable[tuple[int, str]]]
) -> dict[str, ProjectEntry]:
    """Target → the entry that covers it, in configuration order.

    ``group_members`` maps a group path to its projects as ``(id, path_with_namespace)`` pairs (what
    discovery found); a project also named exactly, by path or by id, keeps that entry.
    """
    entries = list(entries)
    found: dict[str, ProjectEntry] = {}
    for entry in entries:
        if not entry.is_group:
            found.setdefault(entry.project, entry)
    for entry in entries:
        if not entry.is_group:
            continue
        for project_id, path in group_members.get(entry.group, ()):
            if str(project_id) in found or path in found:
                continue
            found[path] = entry
    return found


def entry_for(entries: Iterable[ProjectEntry], target: str) -> ProjectEntry | None:
    """The entry that would cover ``target`` without discovery (exact name first, then a group)."""
    entries = list(entries)
    for entry in entries:
        if not entry.is_group and entry.project == target:
            return entry
    for entry in entries:
        if entry.is_group and target.startswith(entry.group + "/"):
            return entry
    return None


def single_literal(patterns: Iterable[str]) -> str | None:
    """The value to filter on server-side when the patterns are exactly one plain name."""
    items = list(patterns)
    if len(items) == 1 and not (_GLOB & set(items[0])):
        return items[0]
    return None

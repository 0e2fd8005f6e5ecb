"""Selecting pipeline definitions from a project's list: ids, names, globs, and when it is read again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from deploy_fetcher.providers.azure_devops.catalog import Catalog
from deploy_fetcher.providers.azure_devops.selection import PipelineFilter

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass
class _Page:
    items: list[dict[str, Any]]


@dataclass
class _Definitions:
    """A client whose project has the given definitions; counts the list reads."""

    listed: list[tuple[int, str]]
    reads: int = 0

    def definitions(self, project: str, *, page_size: int, max_pages: int) -> list[_Page]:
        self.reads += 1
        return [_Page([{"id": d, "name": n} for d, n in self.listed])]


def _catalog(client: _Definitions, clock: list[datetime]) -> Catalog:
    return Catalog(
        client,  # type: ignore[arg-type]
        ttl=timedelta(minutes=10),
        clock=lambda: clock[0],
        page_size=100,
        max_pages=10,
    )


def _ids(catalog: Catalog, *entries: str) -> list[int] | None:
    return catalog.definition_ids("shop", PipelineFilter.parse(entries))


def test_names_globs_and_ids_select_what_fnmatch_would() -> None:
    """A plain name is exact and case-sensitive; two definitions of one name (in two folders) both count."""
    client = _Definitions(
        [(1, "web"), (2, "Web"), (3, "web-canary"), (4, "api"), (5, "web"), (6, "w[e]b")]
    )
    catalog = _catalog(client, [T0])
    assert (
        [1, 5],
        [2],
        [1, 3, 5],
        [4, 5],
        [],
        [1, 5],
        None,
    ) == (
        _ids(catalog, "web"),
        _ids(catalog, "Web"),
        _ids(catalog, "web*"),
        _ids(catalog, "api", "5"),
        _ids(catalog, "WEB", "99x"),
        _ids(catalog, "w[e]b"),  # a glob class, as fnmatch reads it: matches "web", not "w[e]b"
        _ids(catalog),
    )
    assert 1 == client.reads


def test_a_selection_is_matched_again_once_the_list_is_read_again() -> None:
    """Within the cache's time the answer is kept; after it, a renamed pipeline moves with the list."""
    client = _Definitions([(1, "web"), (2, "api")])
    clock = [T0]
    catalog = _catalog(client, clock)
    before = (_ids(catalog, "web"), _ids(catalog, "web"))
    client.listed = [(1, "web-old"), (2, "api"), (3, "web")]
    kept = _ids(catalog, "web")
    clock[0] = T0 + timedelta(minutes=11)
    after = _ids(catalog, "web")
    assert (([1], [1]), [1], [3], 2) == (before, kept, after, client.reads)

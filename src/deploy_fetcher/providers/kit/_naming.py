"""Service names: one default rule and one pair of keys, the same for every provider.

A deployment's service is the short name of what is watched (a repository, a project) unless the
configuration says otherwise, so one service read from several CI systems is spelt once:

1. ``service_map`` names it when one of the item's *subjects* (the repository's full and short
   name, the workflow's or pipeline's name …: each provider lists its own, most specific first) is
   a key: exact keys first, then glob keys (``"team-*"``) in file order;
2. else the ``service`` template, :data:`DEFAULT_SERVICE` (``"{repo_name}"``) unless set;
3. else, when the template renders empty, the provider's fallback (its short name of the target).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["DEFAULT_SERVICE", "check_service_map", "map_service"]

#: The default ``service`` template of every provider: the short name of the repository.
DEFAULT_SERVICE: Final = "{repo_name}"

_GLOB_CHARS: Final = frozenset("*?[")


def map_service(table: Mapping[str, str], subjects: Iterable[str | None]) -> str | None:
    """The name ``table`` gives an item, or None when no key names one of its ``subjects``.

    An exact key wins over a glob whatever the subjects' order; among exact keys the earlier subject
    wins, among globs the earlier key in the file. Empty subjects are ignored.
    """
    if not table:
        return None
    present = [subject for subject in subjects if subject]
    for subject in present:
        if subject in table:
            return table[subject]
    for pattern, name in table.items():
        if _GLOB_CHARS.intersection(pattern) and any(
            fnmatch.fnmatchcase(subject, pattern) for subject in present
        ):
            return name
    return None


def check_service_map(table: dict[str, str]) -> dict[str, str]:
    """``table`` unchanged when every key and name is usable; ValueError naming the first that is not."""
    for key, name in table.items():
        if not key.strip():
            msg = "a key is empty"
            raise ValueError(msg)
        if not name.strip():
            msg = f"{key!r} would be named with an empty name"
            raise ValueError(msg)
    return table

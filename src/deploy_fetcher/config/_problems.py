"""Configuration problems, their YAML paths, and how several of them become one ConfigError.

Every stage of loading (YAML, interpolation, env overrides, validation, cross-checks) reports
:class:`Problem` values instead of raising at the first one, so an admin fixes a file in one pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deploy_fetcher.errors import ConfigError

__all__ = ["Loc", "Problem", "format_path", "raise_problems"]

#: A location inside the configuration tree: mapping keys and list indexes, outermost first.
Loc = tuple[object, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_path(loc: Iterable[object]) -> str:
    """Render a location the way an admin reads YAML: ``sources[2].repos[0]``, ``rules.promotion["*"]``.

    List indexes are bracketed; keys that are not plain words are quoted so the path stays unambiguous.
    """
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        elif isinstance(part, str):  # non-printable characters escaped: a path is one line
            out += f"[{json.dumps(part, ensure_ascii=not part.isprintable())}]"
        else:
            out += f"[{part!r}]"
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration.

    ``file`` is the configuration file the value came from, empty when it came from elsewhere (an
    environment variable); ``path`` is the YAML path of the offending key.
    """

    path: str
    message: str
    file: str = ""

    def line(self) -> str:
        """The one-line form ``fetcher check`` prints: ``file: path: message``."""
        where = ": ".join(part for part in (self.file, self.path) if part)
        return f"{where}: {self.message}" if where else self.message


def raise_problems(problems: Sequence[Problem]) -> None:
    """Raise one ConfigError for all ``problems`` (nothing when there are none).

    The error's ``path`` and ``file`` are the first problem's, so ``str(error)`` starts with the line
    naming it; the other problems follow, one complete line each.
    """
    if not problems:
        return
    first, rest = problems[0], problems[1:]
    message = "\n".join([first.message, *(problem.line() for problem in rest)])
    raise ConfigError(message, path=first.path, file=first.file)

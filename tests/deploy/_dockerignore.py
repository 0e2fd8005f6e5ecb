"""The ``.dockerignore`` rules, evaluated the way the Docker CLI and BuildKit evaluate them.

Patterns use Go's ``filepath.Match`` syntax plus ``**`` (any number of directories); a leading ``!``
re-includes; the last matching rule wins; a rule that matches a parent directory applies to
everything inside it. Paths are relative to the context root, with ``/`` separators.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Rule", "context_files", "is_excluded", "parse"]


@dataclass(frozen=True)
class Rule:
    """One pattern line."""

    pattern: str
    regex: re.Pattern[str]
    negated: bool


def _translate(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                msg = f"unterminated character class in {pattern!r}"
                raise ValueError(msg)
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "^" + re.escape(body[1:])
            out += f"[{body.replace('/', '')}]"
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


def parse(text: str) -> list[Rule]:
    """The rules of a ``.dockerignore`` file, in order."""
    rules: list[Rule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:].strip() if negated else line
        pattern = posixpath.normpath(pattern).lstrip("/")
        rules.append(Rule(pattern, _translate(pattern), negated))
    return rules


def is_excluded(rules: list[Rule], path: str) -> bool:
    """Whether ``path`` (relative, ``/``-separated) stays out of the build context."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for rule in rules:
        if any(rule.regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not rule.negated
    return excluded


def _may_reinclude(rules: list[Rule], directory: str) -> bool:
    """Whether a ``!`` rule could bring back something inside an excluded directory."""
    return any(
        rule.negated and (rule.pattern.startswith(directory + "/") or "*" in rule.pattern)
        for rule in rules
    )


def context_files(root: Path, rules: list[Rule]) -> list[str]:
    """Every file under ``root`` that would be sent as the build context, sorted."""
    out: list[str] = []
    for current, dirs, files in os.walk(root):
        base = Path(current).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirs[:] = [
            d
            for d in dirs
            if not is_excluded(rules, prefix + d) or _may_reinclude(rules, prefix + d)
        ]
        out.extend(prefix + f for f in files if not is_excluded(rules, prefix + f))
    return sorted(out)

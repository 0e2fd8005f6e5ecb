"""Reading a systemd unit file the way systemd does for what our unit uses.

``configparser`` keeps only the last value of a repeated key, but systemd accumulates many of them
(``Environment=``, ``SystemCallFilter=``); an empty assignment resets the list. Lines ending in a
backslash continue; ``#`` and ``;`` start comments.
"""

from __future__ import annotations

import re

__all__ = ["parse"]

_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]$")


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """Section → key → every value given, in order (reset by an empty assignment)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        section = _SECTION.match(line)
        if section:
            current = sections.setdefault(section.group("name"), {})
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            msg = f"line {number}: not 'Key=value' inside a section: {raw!r}"
            raise ValueError(msg)
        values = current.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return sections

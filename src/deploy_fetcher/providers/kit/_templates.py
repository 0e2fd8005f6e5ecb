"""Name templates (``"{project_path}-{environment}"``): checked when the config loads, then rendered.

One behaviour everywhere: a template may use only the fields its provider (and mode) offers, and a
template naming any other field, positional fields (``{}``, ``{0}``), attribute or index access
(``{a.b}``, ``{a[0]}``) or broken braces is refused at load time with the list of fields it may use,
so a typo fails ``fetcher check`` instead of the first poll. At render time every offered field has a
value; one without a value for an item (no branch on a tag build) renders empty, and the result is
stripped.
"""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping

__all__ = ["check_template", "render_template", "template_fields"]


def template_fields(template: str) -> set[str]:
    """The field names a ``str.format`` template refers to (ValueError when it does not parse)."""
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        msg = f"template {template!r} does not parse: {exc}"
        raise ValueError(msg) from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            msg = f"template {template!r}: use named fields like {{name}}, not {{{name}}}"
            raise ValueError(msg)
        names.add(name)
    return names


def check_template(template: str, fields: Collection[str], *, what: str = "template") -> str:
    """``template`` unchanged when it only uses ``fields``; ValueError naming the others otherwise."""
    if not template.strip():
        msg = "must not be empty"
        raise ValueError(msg)
    unknown = template_fields(template) - set(fields)
    if unknown:
        msg = (
            f"{what} {template!r} uses unknown field(s) {sorted(unknown)}; "
            f"available: {sorted(fields)}"
        )
        raise ValueError(msg)
    return template


def render_template(template: str, values: Mapping[str, str | None]) -> str:
    """Fill a checked template; a field without a value renders empty; the result is stripped."""
    filled = {name: values.get(name) or "" for name in template_fields(template)}
    return string.Formatter().vformat(template, (), filled).strip()

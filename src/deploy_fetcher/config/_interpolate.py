"""``${VAR}`` interpolation in the parsed configuration tree.

Interpolation runs after YAML parsing and only inside string values, so a variable's content is
always one string: it can never add keys, lists or YAML syntax. Mapping keys are never interpolated.

* ``${NAME}`` — the variable's value; an unset variable is an error naming the YAML path and the
  variable (never a value);
* ``${NAME:-default}`` — the default when the variable is unset or empty;
* ``$${`` — a literal ``${`` (any other ``$`` is kept as written, so ``pa$$word`` needs no escaping).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from deploy_fetcher.config._problems import Loc, Problem, format_path
from deploy_fetcher.config._yaml import ConfigFileError

__all__ = ["MAX_VALUES", "interpolate"]

#: Values visited, aliases counted at every use: bounds the work a "billion laughs" file can cause.
MAX_VALUES: Final = 100_000

_TOKEN = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)(?P<close>\})?")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYNTAX = "use ${NAME} or ${NAME:-default}, and $${ for a literal ${"


class _Interpolator:
    def __init__(self, environ: Mapping[str, str], file: str) -> None:
        self.environ = environ
        self.file = file
        self.problems: list[Problem] = []
        self.visited = 0

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(format_path(loc), message, self.file))

    def walk(self, value: Any, loc: Loc) -> Any:
        self.visited += 1
        if self.visited > MAX_VALUES:
            message = (
                f"the configuration holds more than {MAX_VALUES} values (aliases count at each use)"
            )
            raise ConfigFileError(Problem("", message, self.file))
        if isinstance(value, str):
            return self.expand(value, loc)
        if isinstance(value, dict):
            return {key: self.walk(item, (*loc, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.walk(item, (*loc, index)) for index, item in enumerate(value)]
        return value

    def expand(self, text: str, loc: Loc) -> str:
        if "${" not in text:
            return text
        out: list[str] = []
        position = 0
        for match in _TOKEN.finditer(text):
            out.append(text[position : match.start()])
            position = match.end()
            if match.group("body") is None:  # the $${ escape
                out.append("${")
                continue
            replacement = self.reference(match.group("body"), match.group("close") is not None, loc)
            if replacement is None:
                return text
            out.append(replacement)
        out.append(text[position:])
        return "".join(out)

    def reference(self, body: str, closed: bool, loc: Loc) -> str | None:
        name, has_default, default = body.partition(":-")
        if not closed:
            self.problem(loc, f"unterminated ${{ ({_SYNTAX})")
            return None
        if not _VARIABLE.fullmatch(name):
            self.problem(loc, f"not a variable reference: ${{{name}…}} ({_SYNTAX})")
            return None
        if "${" in default:
            self.problem(loc, f"nested references are not supported in ${{{name}:-…}}")
            return None
        value = self.environ.get(name)
        if has_default and not value:
            return default
        if value is None:
            self.problem(
                loc,
                f"environment variable {name} is not set (set it, or give a default: ${{{name}:-…}})",
            )
            return None
        return value


def interpolate(tree: Any, environ: Mapping[str, str], file: str) -> tuple[Any, list[Problem]]:
    """Return a copy of ``tree`` with every reference replaced, and the problems found on the way.

    A string with a problem is left as written, so later stages still see the rest of the tree;
    the caller reports the problems before validating anything.
    """
    interpolator = _Interpolator(environ, file)
    return interpolator.walk(tree, ()), interpolator.problems

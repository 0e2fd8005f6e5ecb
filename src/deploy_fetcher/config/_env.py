"""``FETCHER_<SECTION>__<KEY>`` environment overrides of the scalar sections.

A container image ships one configuration file and each deployment adjusts a few values
(``FETCHER_SERVER__PORT=9000``, ``FETCHER_DEFAULTS__INTERVAL=2m``, ``FETCHER_STATE__PATH=/data/s.db``).
pydantic-settings does the reading: :class:`EnvOverrides` is a ``BaseSettings`` over the sections
``state``, ``server``, ``log`` and ``defaults``, read by its environment source from the mapping handed
to the loader (``os.environ`` in production, a plain dict in tests). Keys set that way win over the file.

Variables naming anything else (``FETCHER_CONFIG``, ``FETCHER_FOO``) are ignored; an unknown key
inside a known section (``FETCHER_SERVER__PROT``) is an error, as it would be in the file. Empty
variables are ignored, because orchestrators often define a variable without a value.

Each override is checked on its own, against its field's type and validators, so a bad value is
reported with the variable that set it. Checks across the keys of a section (``state.backend`` and
``state.dashboard_sink`` go together) are left to the whole configuration, once the overrides are
merged into the file's tree: the file may hold the rest of the section.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from deploy_fetcher.config._models import DefaultsConfig, LogConfig, ServerConfig, StateConfig
from deploy_fetcher.config._problems import Loc, Problem, format_path
from deploy_fetcher.config._validation import problems_from

__all__ = ["ENV_PREFIX", "EnvOverrides", "Overrides", "read_overrides"]

ENV_PREFIX = "FETCHER_"
_DELIMITER = "__"
_FIELD_IN_ERROR = re.compile(r'field "([^"]+)"')
#: Errors about a section's shape (not a mapping): the override's own fault, reported here.
_SHAPE_ERRORS = frozenset({"model_type", "dict_type", "model_attributes_type"})


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._mapping = environ  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in self._mapping.items()
            if not (self.env_ignore_empty and value == "")
        }


class EnvOverrides(BaseSettings):
    """The scalar sections as pydantic-settings reads them from ``FETCHER_…`` variables.

    Never instantiated: :class:`_MappingEnvSource` reads the variables by its fields and settings,
    and each section's own model checks them (see :func:`read_overrides`).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=_DELIMITER,
        case_sensitive=False,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    state: StateConfig = StateConfig()
    server: ServerConfig = ServerConfig()
    log: LogConfig = LogConfig()
    defaults: DefaultsConfig = DefaultsConfig()


class Overrides:
    """What the environment overrides: values per section, and which variable set each location."""

    def __init__(self, values: dict[str, dict[str, Any]], origins: dict[Loc, str]) -> None:
        self.values = values
        self.origins = origins

    def apply(self, tree: dict[Any, Any]) -> dict[Any, Any]:
        """A copy of ``tree`` with the overridden keys replaced.

        A section that is not a mapping in the file is left alone: validation reports it there.
        """
        out = dict(tree)
        for section, values in self.values.items():
            current = out.get(section)
            if current is None:
                out[section] = dict(values)
            elif isinstance(current, dict):
                out[section] = {**current, **values}
        return out


def _variable(environ: Mapping[str, str], loc: Loc) -> str:
    """The name of the variable that set ``loc`` (as the admin spelled it)."""
    spelled = {name.upper(): name for name in environ}
    candidates = [
        ENV_PREFIX + _DELIMITER.join(str(part) for part in loc[:depth]).upper()
        for depth in range(len(loc), 0, -1)
    ]
    for candidate in candidates:
        if candidate in spelled:
            return spelled[candidate]
    return candidates[0]


def _origins(environ: Mapping[str, str], raw: Mapping[str, Any]) -> dict[Loc, str]:
    """Which variable set each leaf of ``raw`` (the settings source's nested output)."""
    origins: dict[Loc, str] = {}

    def visit(loc: Loc, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                visit((*loc, key), item)
        else:
            origins[loc] = _variable(environ, loc)

    for section, values in raw.items():
        visit((section,), values)
    return origins


def _json_problem(environ: Mapping[str, str], exc: SettingsError) -> Problem:
    match = _FIELD_IN_ERROR.search(str(exc))
    section = match.group(1) if match else ""
    variable = _variable(environ, (section,)) if section else f"a {ENV_PREFIX} variable"
    example = f"{ENV_PREFIX}{section.upper() or 'SECTION'}{_DELIMITER}KEY=value"
    return Problem(
        format_path((section,)) if section else "",
        f"from {variable}: not a JSON object (set one key at a time: {example})",
    )


def _is_cross_check(error: ErrorDetails) -> bool:
    """Whether ``error`` is a section's check across its keys (at the section itself, not its shape).

    Run on one override, such a check sees the section's defaults where the file may hold other
    values; the whole configuration runs it again on the merged tree, so nothing escapes it.
    """
    return error["loc"] == () and error["type"] not in _SHAPE_ERRORS


def _check(section: str, value: Any, origins: Mapping[Loc, str]) -> list[Problem]:
    """The problems of one override (a key, or a section given as a JSON object) on its own."""
    model = cast("type[BaseModel]", EnvOverrides.model_fields[section].annotation)
    try:
        model.model_validate(value)
    except ValidationError as exc:
        # Field errors stop pydantic before the checks across keys run: never both at once.
        if all(_is_cross_check(error) for error in exc.errors()):
            return []
        inside = {loc[1:]: name for loc, name in origins.items() if loc[:1] == (section,)}
        return problems_from(exc, model=model, data=value, prefix=(section,), origins=inside)
    return []


def read_overrides(environ: Mapping[str, str]) -> tuple[Overrides, list[Problem]]:
    """The overrides found in ``environ``, or the problems that keep them from being used."""
    try:
        raw = _MappingEnvSource(EnvOverrides, environ)()
    except SettingsError as exc:
        return Overrides({}, {}), [_json_problem(environ, exc)]
    origins = _origins(environ, raw)
    problems: list[Problem] = []
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                problems += _check(section, {key: value}, origins)
        else:
            problems += _check(section, values, origins)
    if problems:
        return Overrides({}, {}), problems
    # The values stay as read: the whole configuration coerces them as the check above did.
    return Overrides(raw, origins), []

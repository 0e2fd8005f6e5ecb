"""``FETCHER_<SECTION>__<KEY>`` environment overrides of the scalar sections.

A container image ships one configuration file and each deployment adjusts a few values
(``FETCHER_SERVER__PORT=9000``, ``FETCHER_DEFAULTS__INTERVAL=2m``, ``FETCHER_STATE__PATH=/data/s.db``).
pydantic-settings does the reading: :class:`EnvOverrides` is a ``BaseSettings`` over the sections
``state``, ``server``, ``log`` and ``defaults`` whose only source reads the mapping handed to the
loader (``os.environ`` in production, a plain dict in tests). Keys set that way win over the file.

Variables naming anything else (``FETCHER_CONFIG``, ``FETCHER_FOO``) are ignored; an unknown key
inside a known section (``FETCHER_SERVER__PROT``) is an error, as it would be in the file. Empty
variables are ignored, because orchestrators often define a variable without a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from deploy_fetcher.config._models import Defaults, LogConfig, ServerConfig, StateConfig
from deploy_fetcher.config._problems import Loc, Problem, format_path
from deploy_fetcher.config._validation import problems_from

__all__ = ["ENV_PREFIX", "EnvOverrides", "Overrides", "read_overrides"]

ENV_PREFIX = "FETCHER_"
_DELIMITER = "__"
_FIELD_IN_ERROR = re.compile(r'field "([^"]+)"')

#: The mapping the settings source reads; set only while :func:`read_overrides` runs.
_environ: ContextVar[Mapping[str, str]] = ContextVar("fetcher_environ")


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
    """The scalar sections as pydantic-settings reads them from ``FETCHER_…`` variables."""

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
    defaults: Defaults = Defaults()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - the hook's fixed signature
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read only the loader's mapping: no ``os.environ``, no dotenv file, no secrets directory."""
        return (_MappingEnvSource(settings_cls, _environ.get()),)


@contextmanager
def _reading(environ: Mapping[str, str]) -> Iterator[None]:
    token = _environ.set(environ)
    try:
        yield
    finally:
        _environ.reset(token)


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


def read_overrides(environ: Mapping[str, str]) -> tuple[Overrides, list[Problem]]:
    """The overrides found in ``environ``, or the problems that keep them from being used."""
    try:
        raw = _MappingEnvSource(EnvOverrides, environ)()
    except SettingsError as exc:
        return Overrides({}, {}), [_json_problem(environ, exc)]
    origins = _origins(environ, raw)
    with _reading(environ):
        try:
            settings = EnvOverrides()
        except ValidationError as exc:
            problems = problems_from(exc, model=EnvOverrides, data=raw, origins=origins)
            return Overrides({}, {}), problems
    return Overrides(settings.model_dump(exclude_unset=True), origins), []

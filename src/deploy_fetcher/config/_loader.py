"""From a YAML file to one validated :class:`FetcherConfig`, or one ConfigError listing every problem.

The stages, each reporting problems rather than stopping at the first:

1. read the file and parse it (``yaml.SafeLoader``, duplicate keys refused);
2. ``${VAR}`` interpolation inside string values;
3. ``FETCHER_<SECTION>__<KEY>`` overrides from the environment (pydantic-settings);
4. each ``sources[i]`` / ``sinks[i]`` validated with the model of the plugin its ``provider`` /
   ``type`` names, found by the resolvers the caller passes in (the installed plugins, see
   :func:`deploy_fetcher.plugins.load_config`, or test doubles): the configuration sits below the
   plugins and never imports them;
5. the whole tree validated, including the cross-checks (unique names, sink references).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from pydantic import ValidationError

from deploy_fetcher.config._env import read_overrides
from deploy_fetcher.config._interpolate import interpolate
from deploy_fetcher.config._models import FetcherConfig, Section, SinkConfig, SourceConfig
from deploy_fetcher.config._problems import Problem, format_path, raise_problems
from deploy_fetcher.config._validation import kind_of, problems_from
from deploy_fetcher.config._yaml import ConfigFileError, parse_yaml, read_text
from deploy_fetcher.errors import ConfigError, PluginError

__all__ = [
    "CONFIG_ENV",
    "EXTENSION_PREFIX",
    "ProviderResolver",
    "SinkResolver",
    "load_config",
    "parse_config",
]

#: The environment variable naming the configuration file when no path is given.
CONFIG_ENV: Final = "FETCHER_CONFIG"

#: Top-level keys starting with this are ignored: room for YAML anchors and the admin's notes.
EXTENSION_PREFIX: Final = "x-"

_SECTIONS: Final = tuple(FetcherConfig.model_fields)


class SourcePlugin(Protocol):
    """What the loader needs of a provider class: the model of its ``sources[]`` entries."""

    @property
    def config_model(self) -> type[SourceConfig]:
        """The SourceConfig subclass validating the entry."""
        ...


class SinkPlugin(Protocol):
    """What the loader needs of a sink class: the model of its ``sinks[]`` entries."""

    @property
    def config_model(self) -> type[SinkConfig]:
        """The SinkConfig subclass validating the entry."""
        ...


ProviderResolver = Callable[[str], SourcePlugin]
SinkResolver = Callable[[str], SinkPlugin]


class _Entries:
    """Validates the entries of ``sources`` or ``sinks`` with the model their plugin declares."""

    def __init__(
        self,
        section: str,
        key: str,
        base: type[Section],
        resolver: Callable[[str], Any],
        file: str,
    ) -> None:
        self.section = section
        self.key = key
        self.base = base
        self.resolver = resolver
        self.file = file
        self.models: dict[str, type[Section] | str] = {}
        self.problems: list[Problem] = []

    def problem(self, index: int, message: str, *, key: str | None = None) -> None:
        loc = (self.section, index) if key is None else (self.section, index, key)
        self.problems.append(Problem(format_path(loc), message, self.file))

    def model_for(self, name: str) -> type[Section] | str:
        """The entry model of plugin ``name``, or why there is none (resolved once per load)."""
        if name not in self.models:
            try:
                plugin = self.resolver(name)
            except PluginError as exc:
                self.models[name] = str(exc)
            else:
                model = getattr(plugin, "config_model", None)
                if isinstance(model, type) and issubclass(model, self.base):
                    self.models[name] = model
                else:
                    self.models[name] = f"{name!r} declares no {self.base.__name__} model"
        return self.models[name]

    def validate(self, entries: list[Any]) -> list[Section]:
        """The validated entries; problems (if any) are collected in ``self.problems``."""
        out: list[Section] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.problem(index, f"must be a mapping, not {kind_of(entry)}")
                continue
            name = entry.get(self.key)
            if name is None:
                self.problem(index, "required key is missing", key=self.key)
                continue
            if not isinstance(name, str):
                self.problem(index, f"must be a string, not {kind_of(name)}", key=self.key)
                continue
            model = self.model_for(name)
            if isinstance(model, str):
                self.problem(index, model, key=self.key)
                continue
            try:
                out.append(model.model_validate(entry))
            except ValidationError as exc:
                self.problems += problems_from(
                    exc, model=model, data=entry, prefix=(self.section, index), file=self.file
                )
        return out


def _rank(problem: Problem) -> int:
    """Order problems as the sections are documented (the file's own order is not known here)."""
    head = problem.path.split(".", 1)[0].split("[", 1)[0]
    return _SECTIONS.index(head) if head in _SECTIONS else len(_SECTIONS)


def _build(
    tree: dict[Any, Any],
    *,
    file: str,
    environ: Mapping[str, str],
    provider_resolver: ProviderResolver,
    sink_resolver: SinkResolver,
) -> FetcherConfig:
    # An empty section (``sources:`` with every entry commented out) means "the defaults"; top-level
    # ``x-…`` keys are the admin's own, e.g. anchors shared by several sources (as in Compose files).
    tree = {
        key: value
        for key, value in tree.items()
        if not (key in _SECTIONS and value is None)
        and not (isinstance(key, str) and key.startswith(EXTENSION_PREFIX))
    }
    overrides, env_problems = read_overrides(environ)
    tree = overrides.apply(tree)

    data = dict(tree)
    problems: list[Problem] = []
    checkers = {
        "sinks": _Entries("sinks", "type", SinkConfig, sink_resolver, file),
        "sources": _Entries("sources", "provider", SourceConfig, provider_resolver, file),
    }
    for section, checker in checkers.items():
        if isinstance(tree.get(section), list):
            data[section] = checker.validate(tree[section])
            problems += checker.problems
    if problems:  # cross-checks over partial lists would report shifted indexes: leave them out
        for section in checkers:
            if isinstance(tree.get(section), list):
                data[section] = []

    config: FetcherConfig | None = None
    try:
        config = FetcherConfig.model_validate(data)
    except ValidationError as exc:
        problems += problems_from(
            exc, model=FetcherConfig, data=data, file=file, origins=overrides.origins
        )
    problems = sorted(problems, key=_rank) + env_problems
    raise_problems(problems)
    if config is None:  # pragma: no cover - a failed validation always leaves a problem
        raise ConfigError("the configuration is invalid", file=file)
    return config


def parse_config(
    text: str,
    *,
    file: str = "<string>",
    environ: Mapping[str, str] | None = None,
    provider_resolver: ProviderResolver,
    sink_resolver: SinkResolver,
) -> FetcherConfig:
    """Validate configuration ``text`` (YAML); ``file`` is the name its errors carry.

    ``environ`` feeds interpolation and overrides (``os.environ`` when None); the resolvers give the
    plugin class (its ``config_model``) for a ``provider`` or sink ``type`` name. Raises
    :class:`~deploy_fetcher.errors.ConfigError` naming every problem, the first one on its first line.
    """
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    tree: Any = None
    try:
        tree, problems = interpolate(parse_yaml(text, file), env, file)
    except ConfigFileError as exc:
        problems = [exc.problem]
    raise_problems(problems)
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        sections = ", ".join(_SECTIONS)
        message = f"the top level must be a mapping of sections ({sections}), not {kind_of(tree)}"
        raise ConfigError(message, file=file)
    return _build(
        tree,
        file=file,
        environ=env,
        provider_resolver=provider_resolver,
        sink_resolver=sink_resolver,
    )


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    provider_resolver: ProviderResolver,
    sink_resolver: SinkResolver,
) -> FetcherConfig:
    """Load, interpolate, override and validate the configuration file.

    ``path`` None means the file named by ``FETCHER_CONFIG`` in ``environ`` (``os.environ`` when
    None). Raises :class:`~deploy_fetcher.errors.ConfigError` naming every problem, the first one on
    its first line; an empty file is a configuration of defaults.
    """
    env = os.environ if environ is None else environ
    if path is None:
        named = env.get(CONFIG_ENV, "")
        if not named:
            message = f"no configuration file: give its path or set {CONFIG_ENV}"
            raise ConfigError(message)
        path = named
    file_path = Path(path)
    problems: list[Problem] = []
    text = ""
    try:
        text = read_text(file_path)
    except ConfigFileError as exc:
        problems = [exc.problem]
    raise_problems(problems)
    return parse_config(
        text,
        file=str(file_path),
        environ=env,
        provider_resolver=provider_resolver,
        sink_resolver=sink_resolver,
    )

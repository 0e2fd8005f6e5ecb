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
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Protocol

from pydantic import ValidationError

from deploy_fetcher.config._env import read_overrides
from deploy_fetcher.config._interpolate import interpolate
from deploy_fetcher.config._models import FetcherConfig, Section, SinkConfig, SourceConfig
from deploy_fetcher.config._problems import Problem, format_path, raise_problems
from deploy_fetcher.config._validation import kind_of, problems_from
from deploy_fetcher.config._yaml import ConfigFileError, parse_yaml, positions, read_text
from deploy_fetcher.errors import ConfigError, PluginError

__all__ = [
    "CONFIG_ENV",
    "EXTENSION_PREFIX",
    "STATE_PATH_ENV",
    "ProviderResolver",
    "SinkResolver",
    "anchor_state_path",
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
        self.warnings: list[Problem] = []

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

    def warn_deprecated(self, index: int, model: type[Section], entry: dict[Any, Any]) -> None:
        """One warning per deprecated key the entry uses (giving the new key too is the model's error)."""
        for old, new in model.deprecated_keys.items():
            if old in entry and new not in entry:
                path = format_path((self.section, index, old))
                message = f"deprecated key: use {new} instead ({old} still works for now)"
                self.warnings.append(Problem(path, message, self.file))

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
            self.warn_deprecated(index, model, entry)
            try:
                out.append(model.model_validate(entry))
            except ValidationError as exc:
                self.problems += problems_from(
                    exc, model=model, data=entry, prefix=(self.section, index), file=self.file
                )
        return out


def _locate(problem: Problem, where: Mapping[str, tuple[int, int]]) -> tuple[int, int, int]:
    """A sort key putting problems in the order of the file.

    A problem sits where its path (or, for a missing key, the nearest enclosing path) starts;
    problems about the file as a whole come first, those set by environment variables last.
    """
    if not problem.file:
        return (2, 0, 0)
    candidate = problem.path
    while candidate:
        if candidate in where:
            return (1, *where[candidate])
        cut = max(candidate.rfind("."), candidate.rfind("["))
        candidate = candidate[:cut] if cut > 0 else ""
    return (0, 0, 0)


def _build(
    tree: dict[Any, Any],
    *,
    file: str,
    environ: Mapping[str, str],
    provider_resolver: ProviderResolver,
    sink_resolver: SinkResolver,
) -> tuple[FetcherConfig | None, list[Problem], list[Problem]]:
    """The validated configuration (None when invalid), every problem and every warning, unordered."""
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
    warnings: list[Problem] = []
    checkers = {
        "sinks": _Entries("sinks", "type", SinkConfig, sink_resolver, file),
        "sources": _Entries("sources", "provider", SourceConfig, provider_resolver, file),
    }
    for section, checker in checkers.items():
        if isinstance(tree.get(section), list):
            data[section] = checker.validate(tree[section])
            problems += checker.problems
            warnings += checker.warnings
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
    return config, problems + env_problems, warnings


def _entry_name(entry: Any) -> Any:
    return entry.get("name") if isinstance(entry, dict) else None


def _select_sources(
    raw: Any, only: Collection[str], file: str
) -> tuple[Any, dict[int, int], set[int]]:
    """Keep the ``sources[]`` entries named in ``only``.

    Returns the tree, the kept entries' new index → their index in the file (problems must name
    the file's index), and the indexes left out (their unset variables are no problem here).
    """
    if not isinstance(raw, dict):
        names: list[Any] = []
    elif not isinstance(raw.get("sources"), list):
        names = []
    else:
        names = [_entry_name(entry) for entry in raw["sources"]]
    unknown = sorted(set(only) - {n for n in names if isinstance(n, str)})
    if unknown:
        have = ", ".join(n for n in names if isinstance(n, str)) or "none"
        raise ConfigError(f"no source named {', '.join(unknown)} (configured: {have})", file=file)
    kept = [index for index, name in enumerate(names) if name in only]
    left_out = set(range(len(names))) - set(kept)
    if not isinstance(raw, dict):  # an empty file: nothing to select from
        return raw, {}, left_out
    tree = {**raw, "sources": [raw["sources"][index] for index in kept]}
    return tree, dict(enumerate(kept)), left_out


_SOURCE_INDEX = re.compile(r"\bsources\[(\d+)\]")


def _renumber(problems: list[Problem], index_map: Mapping[int, int]) -> list[Problem]:
    """Problems of selected sources under the index the file gives them (paths and messages)."""
    if not index_map:
        return problems

    def fix(text: str) -> str:
        return _SOURCE_INDEX.sub(
            lambda m: f"sources[{index_map.get(int(m.group(1)), int(m.group(1)))}]", text
        )

    return [replace(p, path=fix(p.path), message=fix(p.message)) for p in problems]


def parse_config(
    text: str,
    *,
    file: str = "<string>",
    environ: Mapping[str, str] | None = None,
    provider_resolver: ProviderResolver,
    sink_resolver: SinkResolver,
    sources: Collection[str] | None = None,
) -> FetcherConfig:
    """Validate configuration ``text`` (YAML); ``file`` is the name its errors carry.

    ``environ`` feeds interpolation and overrides (``os.environ`` when None); the resolvers give the
    plugin class (its ``config_model``) for a ``provider`` or sink ``type`` name. ``sources`` keeps
    only the sources of those names (``fetcher check --source``): the others are neither
    interpolated nor validated, so their secrets need not be set. Raises
    :class:`~deploy_fetcher.errors.ConfigError` naming every problem, the first one on its first line.
    """
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    tree: Any = None
    index_map: dict[int, int] = {}
    try:
        raw = parse_yaml(text, file)
        if sources is not None:
            raw, index_map, _ = _select_sources(raw, sources, file)
        tree, problems = interpolate(raw, env, file)
    except ConfigFileError as exc:
        raise_problems([exc.problem])
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        sections = ", ".join(_SECTIONS)
        message = f"the top level must be a mapping of sections ({sections}), not {kind_of(tree)}"
        raise ConfigError(message, file=file)
    # Validation goes on past an unset variable (its value is left as written), so one run names
    # every problem; a value that failed to interpolate is not reported a second time.
    config, found, warnings = _build(
        tree,
        file=file,
        environ=env,
        provider_resolver=provider_resolver,
        sink_resolver=sink_resolver,
    )
    unresolved = {problem.path for problem in problems}
    problems += [p for p in found if p.path not in unresolved or not p.file]
    where = positions(text)
    raise_problems(_in_file_order(_renumber(problems, index_map), where))
    if config is None:  # pragma: no cover - a failed validation always leaves a problem
        raise ConfigError("the configuration is invalid", file=file)
    config._warnings = tuple(_in_file_order(_renumber(warnings, index_map), where))  # noqa: SLF001 - set once, by its loader
    return config


def _in_file_order(problems: list[Problem], where: Mapping[str, tuple[int, int]]) -> list[Problem]:
    return [p for _, p in sorted(enumerate(problems), key=lambda i: (_locate(i[1], where), i[0]))]


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    provider_resolver: ProviderResolver,
    sink_resolver: SinkResolver,
    sources: Collection[str] | None = None,
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
    config = parse_config(
        text,
        file=str(file_path),
        environ=env,
        provider_resolver=provider_resolver,
        sink_resolver=sink_resolver,
        sources=sources,
    )
    return anchor_state_path(config, file_path, env)


#: The variable that overrides ``state.path`` (a relative value there means the working directory).
STATE_PATH_ENV: Final = "FETCHER_STATE__PATH"


def anchor_state_path(
    config: FetcherConfig, file: Path, environ: Mapping[str, str]
) -> FetcherConfig:
    """``state.path`` made absolute: relative to the configuration file's directory.

    A relative default (``fetcher-state.db``) read against the working directory would give each
    directory a command is run from a state file of its own, and a ``fetcher sync`` run elsewhere
    would re-send everything already delivered. A path from ``FETCHER_STATE__PATH`` is resolved
    against the working directory, as any path in an environment variable is.
    """
    path = config.state.path.expanduser()
    if not path.is_absolute():
        base = Path.cwd() if environ.get(STATE_PATH_ENV) else file.expanduser().absolute().parent
        path = base / path
    path = Path(os.path.normpath(path))
    if path == config.state.path:
        return config
    state = config.state.model_copy(update={"path": path})
    return config.model_copy(update={"state": state})

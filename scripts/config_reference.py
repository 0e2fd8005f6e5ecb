"""Renders ``docs/configuration.md`` from the configuration models, so the reference cannot drift.

Tables come from the models (field name, type, default, the field's docstring); the examples of
error messages come from running the loader on small snippets. A test compares the committed file
with :func:`render`; after changing a model, regenerate it::

    python scripts/config_reference.py docs/configuration.md
"""

from __future__ import annotations

import enum
import inspect
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, BeforeValidator, ByteSize, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from deploy_fetcher.config._env import ENV_PREFIX, EnvOverrides
from deploy_fetcher.config._loader import CONFIG_ENV, EXTENSION_PREFIX, parse_config
from deploy_fetcher.config._models import (
    MAX_SECRET_FILE_BYTES,
    AzureDevOpsNudges,
    DefaultsConfig,
    Filter,
    GitHubNudges,
    GitLabNudges,
    HttpSourceConfig,
    LogConfig,
    NameRule,
    NudgesConfig,
    RulesConfig,
    ServerConfig,
    SinkConfig,
    SourceConfig,
    StateConfig,
)
from deploy_fetcher.config._types import check_url, format_duration, parse_duration
from deploy_fetcher.errors import ConfigError, PluginError
from deploy_fetcher.providers.kit import DEFAULT_SERVICE

__all__ = ["main", "render"]

_SCALARS: Final[dict[Any, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
    SecretStr: "secret",
    timedelta: "duration",
    ByteSize: "size",
}
#: Models documented in their own section, linked from the tables that use them.
_LINKED: Final[dict[type[BaseModel], str]] = {Filter: "filter", NameRule: "name-rule"}


def _markdown(text: str) -> str:
    """Docstring text as one markdown paragraph: RST literals become code spans."""
    return re.sub(r"``(.+?)``", r"`\1`", " ".join(text.split()))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _bounds(metadata: list[Any]) -> str:
    words = {
        annotated_types.Ge: "≥",
        annotated_types.Gt: ">",
        annotated_types.Le: "≤",
        annotated_types.Lt: "<",
    }
    parts = [
        f"{symbol} {getattr(item, kind.__name__.lower())}"
        for item in metadata
        for kind, symbol in words.items()
        if isinstance(item, kind)
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _type(annotation: Any) -> str:  # noqa: PLR0911 - one branch per kind of annotation
    """A reader's name for a field type: ``duration``, ``list of string``, ``[filter](#filter)``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = get_args(annotation)
        funcs = {item.func for item in metadata if isinstance(item, BeforeValidator)}
        if parse_duration in funcs:
            return "duration"
        if check_url in funcs:
            return "http(s) URL"
        return _type(inner) + _bounds(metadata)
    if origin is Union or origin is types.UnionType:
        return " or ".join(_type(arg) for arg in get_args(annotation) if arg is not type(None))
    if origin is Literal:
        return " | ".join(f"`{value}`" for value in get_args(annotation))
    if origin is list:
        return f"list of {_type(get_args(annotation)[0])}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping of {_type(key)} to {_type(value)}"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(f"`{member.value}`" for member in annotation)
    if annotation in _LINKED:
        return f"[{_LINKED[annotation]}](#{_LINKED[annotation]})"
    return _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, timedelta):
        value = format_duration(value)
    elif isinstance(value, ByteSize):
        value = f"{value // 1024**2}MiB" if value % 1024**2 == 0 else str(int(value))
    elif isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"


def _field_type(field: FieldInfo) -> str:
    if field.metadata:
        return _type(Annotated[(field.annotation, *field.metadata)])
    return _type(field.annotation)


def _table(model: type[BaseModel], *, skip: tuple[str, ...] = ()) -> Iterator[str]:
    yield "| key | type | default | description |"
    yield "|---|---|---|---|"
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        description = _markdown(field.description or "")
        cells = (f"`{name}`", _field_type(field), _default(field), description)
        yield "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _model_section(
    heading: str, model: type[BaseModel], *, extra: str = "", skip: tuple[str, ...] = ()
) -> Iterator[str]:
    yield f"### {heading}"
    yield ""
    yield _markdown(inspect.cleandoc(model.__doc__ or ""))
    if extra:
        yield ""
        yield extra
    yield ""
    yield from _table(model, skip=skip)
    yield ""


@dataclass(frozen=True)
class _Plugin:
    """Stands in for a plugin in the examples: validates only the keys every entry shares."""

    config_model: Any


def _provider(name: str) -> _Plugin:
    if name in {"github", "gitlab", "azure-devops"}:
        return _Plugin(HttpSourceConfig)
    raise PluginError(f"unknown provider {name!r} (installed: azure-devops, github, gitlab)")


def _sink(name: str) -> _Plugin:
    del name  # every sink type validates as the common keys in the examples
    return _Plugin(SinkConfig)


_EXAMPLE = """\
state:
  path: /var/lib/fetcher/state.db
server:
  host: 0.0.0.0
defaults:
  interval: 2m
  lookback: 14d
rules:
  environment:
    rename: {production: prod}
  promotion:
    "*": [dev, staging, prod]
sinks:
  - name: dashboard
    type: deployment-dashboard
    url: ${DASHBOARD_URL:-http://dashboard.internal:8000}
    api_key_file: /run/secrets/dashboard_api_key
sources:
  - name: octo
    provider: github
    repos: [octo/*]
    token: ${GITHUB_TOKEN}
    sinks: [dashboard]
"""

_DANGLING = """\
sinks:
  - {name: dashboard, type: deployment-dashboard}
sources:
  - {name: api, provider: github, sinks: [dashbaord]}
  - {name: api, provider: gitlab}
"""

_SEVERAL = """\
defaults:
  interval: 0s
sinks:
  - {name: dashboard, type: deployment-dashboard, timeout: soon}
sources:
  - {name: api, provider: gitlub}
"""

_ERROR_EXAMPLES: Final[tuple[tuple[str, str, dict[str, str]], ...]] = (
    ("A misspelt key is refused, with the closest known key:", "sever:\n  port: 9000\n", {}),
    ("A value that is not a duration:", "defaults:\n  interval: 5 minutes\n", {}),
    ("An environment variable that is not set:", "state:\n  path: ${STATE_DIR}/state.db\n", {}),
    ("A YAML syntax error:", "server:\n  port: 9000\n   host: 0.0.0.0\n", {}),
    (
        "A bad environment override names the variable:",
        "server:\n  port: 9000\n",
        {"FETCHER_SERVER__PORT": "nine"},
    ),
    ("Names must be unique, and a source may only feed configured sinks:", _DANGLING, {}),
    (
        "A key renamed since an earlier version is answered with its new name:",
        "sources:\n  - {name: api, provider: gitlab, verify_tls: false}\n",
        {},
    ),
    ("Several problems are reported together, the first one on the first line:", _SEVERAL, {}),
)


def _error_examples() -> Iterator[str]:
    for intro, snippet, environ in _ERROR_EXAMPLES:
        yield intro
        yield ""
        if environ:
            yield "```sh"
            yield from (f"{name}={value}" for name, value in environ.items())
            yield "```"
            yield ""
        yield "```yaml"
        yield snippet.rstrip("\n")
        yield "```"
        yield ""
        try:
            parse_config(
                snippet,
                file="fetcher.yaml",
                environ=environ,
                provider_resolver=_provider,
                sink_resolver=_sink,
            )
        except ConfigError as exc:
            message = str(exc)
        else:  # pragma: no cover - every example is wrong on purpose
            message = "(accepted)"
        yield "```text"
        yield message
        yield "```"
        yield ""


def _env_table() -> Iterator[str]:
    yield "| variable | type |"
    yield "|---|---|"
    for section, holder in EnvOverrides.model_fields.items():
        model = holder.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):  # pragma: no cover
            continue
        for name, field in model.model_fields.items():
            variable = f"{ENV_PREFIX}{section}__{name}".upper()
            yield f"| `{variable}` | {_cell(_field_type(field))} |"


def _editor_section() -> Iterator[str]:
    """How to wire the JSON Schema into an editor."""
    yield "## Editor validation"
    yield ""
    yield (
        "`docs/fetcher.schema.json` is a JSON Schema of this file, generated from the same models "
        "as this page (`fetcher config schema` prints the one for the providers and sinks "
        "installed where you run it). An editor with a YAML language server (VS Code's YAML "
        "extension, Neovim or Helix with `yaml-language-server`, IntelliJ) then completes keys, "
        "shows these descriptions and flags unknown keys and bad durations as you type. Point the "
        "file at it with a first-line comment:"
    )
    yield ""
    yield "```yaml"
    yield "# yaml-language-server: $schema=./fetcher.schema.json"
    yield "```"
    yield ""
    yield (
        "(after `fetcher config schema > fetcher.schema.json` beside it), or map file names to it "
        "in VS Code's `settings.json`: "
        '`"yaml.schemas": {"./fetcher.schema.json": ["fetcher.yaml", "*.fetcher.yaml"]}`. The '
        "schema is looser than the loader where JSON Schema cannot say more (a sink named in "
        "`sources[].sinks` exists, a template renders, a secret file is readable, the value a "
        "`${VAR}` standing for a number, a boolean or a duration will have): "
        "`fetcher check` has the last word."
    )
    yield ""


def _lines() -> Iterator[str]:
    yield "# Configuration reference"
    yield ""
    yield (
        "<!-- Generated by `python scripts/config_reference.py docs/configuration.md` "
        "from the configuration models; edit the models, not this file. -->"
    )
    yield ""
    yield (
        "deploy-fetcher reads one YAML file: the one given with `--config` or, failing that, "
        f"the one named by the `{CONFIG_ENV}` environment variable. Every key is optional unless "
        "marked **required**, and an empty file runs with every default. Unknown keys are errors, "
        "never ignored: a typo fails at start-up instead of silently falling back to a default. "
        "A section left empty (`sources:` with every entry commented out) means its defaults. "
        f"Top-level keys starting with `{EXTENSION_PREFIX}` are ignored: they can hold YAML anchors "
        "shared by several entries (`x-github: &github {provider: github, token: ${GITHUB_TOKEN}}`, "
        "then `- {<<: *github, name: octo, repos: [octo/*]}`)."
    )
    yield ""
    yield "```yaml"
    yield _EXAMPLE.rstrip("\n")
    yield "```"
    yield ""
    yield (
        "**Durations** are written `500ms`, `30s`, `5m`, `2h`, `7d`, `1w` or combined (`1h30m`); "
        "a bare number is seconds. **`state.path`**, when relative, is resolved against the "
        "directory of the configuration file (so every command run with the same file uses the "
        "same state, wherever it is run from); other relative paths start in the working directory."
    )
    yield ""
    yield from _editor_section()
    yield "## Sections"
    yield ""
    sections = (
        ("`state`", StateConfig),
        ("`server`", ServerConfig),
        ("`log`", LogConfig),
        ("`defaults`", DefaultsConfig),
        ("`rules`", RulesConfig),
        ("`nudges`", NudgesConfig),
        ("`nudges.github`", GitHubNudges),
        ("`nudges.gitlab`", GitLabNudges),
        ("`nudges.azure_devops`", AzureDevOpsNudges),
    )
    for heading, model in sections:
        yield from _model_section(heading, model)
    yield from _model_section(
        "`sources[]`: keys every source shares",
        SourceConfig,
        extra=(
            "`provider` selects the plugin; each provider adds its own keys (repositories, "
            "credentials, …), documented with the provider. Per-source `interval`, `jitter`, "
            "`lookback` and `overlap` override the `defaults` section."
        ),
    )
    yield from _model_section(
        "`sources[]` of HTTP providers: keys they all share",
        HttpSourceConfig,
        extra=(
            "GitHub, GitLab and Azure DevOps (and any provider built on the provider kit) take "
            "these keys with the same meaning; each request is bounded by `timeout` as a whole, "
            "from connecting to the last byte, and by `max_response_size`."
        ),
        skip=tuple(SourceConfig.model_fields),
    )
    yield from _service_names()
    yield from _model_section(
        "`sinks[]`: keys every sink shares",
        SinkConfig,
        extra=(
            "`type` selects the plugin; each sink adds its own keys (URL, credential, …), "
            "documented with the sink."
        ),
    )
    yield from _model_section("filter", Filter)
    yield from _model_section("name rule", NameRule)
    yield "## Interpolation"
    yield ""
    yield (
        "String values may refer to environment variables. Interpolation happens after the YAML "
        "is parsed and only inside string values, so a variable's content is always one string: "
        "it can never add keys or YAML syntax. Keys are never interpolated. Interpolated values "
        "are converted like any other (`port: ${PORT}` gives an integer)."
    )
    yield ""
    yield "| written | gives |"
    yield "|---|---|"
    yield "| `${NAME}` | the variable's value; an error naming the YAML path when it is not set |"
    yield "| `${NAME:-default}` | `default` when the variable is unset or empty |"
    yield "| `$${` | a literal `${` (any other `$` is kept as written) |"
    yield ""
    yield "## Secrets in files"
    yield ""
    yield (
        "Any secret key (type *secret*, such as a token) may instead be given as `<key>_file`: the "
        "path of a file holding the secret, as Docker and Kubernetes mount them "
        "(`token_file: /run/secrets/github_token`). The file's content, stripped of surrounding "
        f"whitespace, becomes the value. A missing, unreadable, empty or larger than "
        f"{MAX_SECRET_FILE_BYTES // 1024} KiB file is an error at the `<key>_file` path; giving "
        "both `<key>` and `<key>_file` is an error too. Secrets never appear in logs, error "
        "messages or the configuration's `repr`."
    )
    yield ""
    yield "## Environment overrides"
    yield ""
    yield (
        f"`{ENV_PREFIX}<SECTION>__<KEY>` overrides one key of the sections `state`, `server`, `log` "
        "and `defaults`, and wins over the file, so one image and one file serve several "
        "deployments. Names are case-insensitive, empty variables are ignored, and "
        f"`{ENV_PREFIX}<SECTION>` may hold a JSON object of several keys. An unknown key inside "
        f"these sections is an error; other `{ENV_PREFIX}` variables (such as `{CONFIG_ENV}`) are "
        "not overrides and are ignored. Sources, sinks and rules are only configured in the file "
        "(with interpolation)."
    )
    yield ""
    yield from _env_table()
    yield ""
    yield "## Error messages"
    yield ""
    yield (
        "Every problem is reported with the file and the YAML path of the offending key "
        "(`sources[2].repos[0]`, `defaults.interval`), or with the environment variable that set "
        "it. All problems are reported at once, one per line in the order of the file (an unset "
        "variable does not hide the others); `fetcher check` prints them and exits "
        "with status 2. Values of secret keys never appear in a message."
    )
    yield ""
    yield from _error_examples()


def _service_names() -> Iterator[str]:
    """The one rule by which every provider names a deployment's service."""
    yield "### Service names"
    yield ""
    yield (
        "Every provider names a deployment's service by the same rule and with the same two keys, "
        "so one service read from several CI systems is spelt once on the dashboard:"
    )
    yield ""
    yield (
        "1. `service_map`, when one of its keys names what is watched: the repository or project "
        "(full path, then short name) or the workflow / pipeline. Exact keys first, then glob keys "
        '(`"team-*"`) in file order. Keys compare case-sensitively with the names as the API '
        "returns them (GitHub's `Octo/API`, not `octo/api`), although the CI systems themselves "
        "ignore case in those names: copy them as the API or the web page shows them."
    )
    yield (
        f"2. Else the `service` template, by default `{DEFAULT_SERVICE}`: the short name of the "
        "repository (GitHub), of the project (GitLab: its own path, `api` for `group/sub/api`) or "
        "of the repository the run checked out (Azure DevOps; the pipeline's or release "
        "definition's name for a run without one)."
    )
    yield "3. Else, when the template renders empty, that same short name."
    yield ""
    yield (
        "Each provider's page lists its template fields; `{repo_name}`, `{repo}` and "
        "`{environment}` mean the same everywhere. `rules.service` then applies to every event, "
        "and a sink's `rename.services` last. Earlier versions named GitHub services after the "
        'workflow (`service: "{workflow}"` keeps that) and Azure DevOps ones after the pipeline '
        '(`service: "{pipeline}"`). The old keys `services` (GitLab) and `service_template` '
        "(Azure DevOps) still work for now: loading warns once, naming the new key, and "
        "`fetcher check` lists the warning; giving an old and a new key together is an error."
    )
    yield ""


def render() -> str:
    """The whole configuration reference, as markdown."""
    return "\n".join(_lines()).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference to the file named in ``argv`` (standard output without one)."""
    args = sys.argv[1:] if argv is None else argv
    if any(arg.startswith("-") for arg in args):  # ``--help`` is not a file to write
        sys.stdout.write(f"usage: python {Path(__file__).name} [OUTPUT.md]\n")
        return 0 if set(args) <= {"-h", "--help"} else 2
    text = render()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

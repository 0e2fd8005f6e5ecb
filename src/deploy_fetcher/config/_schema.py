"""A JSON Schema of the configuration file, generated from the models, for editors.

The schema says what the loader accepts, as far as JSON Schema can: every key of every section and of
every installed provider and sink (an entry is checked against the model its ``provider`` / ``type``
names), the durations' syntax, ``<secret>_file`` instead of any secret, ``x-`` keys at the top,
empty sections, and ``${VAR}`` in place of any number, boolean or constrained string (the loader
substitutes before it validates). What only the loader can check (a sink named in a source exists, a template renders,
a secret file is readable) is left to ``fetcher check``.

``docs/fetcher.schema.json`` is this module's output for the bundled plugins (the configuration
package knows no plugin: :func:`deploy_fetcher.plugins.config_schema` hands it the installed
ones); a test keeps it current. Regenerate it with::

    fetcher config schema > docs/fetcher.schema.json
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from deploy_fetcher.config._models import FetcherConfig, SinkConfig, SourceConfig
from deploy_fetcher.config._types import format_duration, is_secret_annotation

__all__ = ["SCHEMA_ID", "json_schema", "render"]

SCHEMA_ID: Final = "https://deploy-fetcher.github.io/schema/fetcher.schema.json"
_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_REF: Final = "#/$defs/{model}"


class _Generator(GenerateJsonSchema):
    """Defaults as a configuration file writes them (``30s``, not ``PT30S``)."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def _markdown(text: str) -> str:
    """Docstrings use RST literals; editors render markdown in their hovers."""
    return re.sub(r"``(.+?)``", r"`\1`", " ".join(text.split()))


def _tidy(node: Any) -> None:
    """Descriptions in markdown; pydantic's generated titles dropped (the key is its own title)."""
    if isinstance(node, dict):
        node.pop("title", None)
        if isinstance(node.get("description"), str):
            node["description"] = _markdown(node["description"])
        for key, value in node.items():
            if key != "properties":
                _tidy(value)
            else:
                for item in value.values():
                    _tidy(item)
    elif isinstance(node, list):
        for item in node:
            _tidy(item)


def _secret_files(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """Each secret key may be given as ``<key>_file``; a required secret needs one of the two."""
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    alternatives = []
    for name, field in model.model_fields.items():
        if not is_secret_annotation(field.annotation) or name not in properties:
            continue
        properties[f"{name}_file"] = {
            "type": "string",
            "description": f"Path of a file holding `{name}` (a Docker or Kubernetes secret), "
            f"instead of `{name}` itself.",
        }
        if name in required:
            required.remove(name)
            alternatives.append({"anyOf": [{"required": [name]}, {"required": [f"{name}_file"]}]})
    if not required:
        schema.pop("required", None)
    if alternatives:
        schema.setdefault("allOf", []).extend(alternatives)


def _deprecated_keys(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """A deprecated key is still taken: the new key's schema, marked ``deprecated`` for editors."""
    properties = schema.get("properties", {})
    for old, new in getattr(model, "deprecated_keys", {}).items():
        if new in properties:
            described = f"Deprecated: the old name of `{new}` (give one of the two)."
            properties[old] = {**properties[new], "deprecated": True, "description": described}
            properties[old].pop("default", None)


#: Model validators of :class:`Section` itself, which never turn a scalar into a mapping.
_SECTION_VALIDATORS: Final = frozenset({"_read_secret_files", "_deprecated_keys"})

#: Scalars a ``mode="before"`` validator may turn into a mapping or a list (a shorthand).
_SHORTHAND: Final = ({"type": "string"}, {"type": "integer"})


def _loosen_shorthands(
    model: type[BaseModel], schema: dict[str, Any], defs: dict[str, Any]
) -> None:
    """Accept the scalars a model's own ``before`` validators may expand (``- octo/*`` for an entry).

    The schema may be looser than the loader, never stricter: an editor must not flag a file the
    fetcher runs with. A model validator that runs before validation can take any input, so the
    model also accepts a scalar; a field validator that runs before validation, a scalar item.
    """
    decorators = model.__pydantic_decorators__
    own = [
        d
        for name, d in decorators.model_validators.items()
        if d.info.mode == "before" and name not in _SECTION_VALIDATORS
    ]
    if own:
        name = next(k for k, v in defs.items() if v is schema)
        defs[name] = {"anyOf": [schema, *_SHORTHAND]}
    for validator in decorators.field_validators.values():
        if validator.info.mode != "before":
            continue
        for field in validator.info.fields:
            prop = schema.get("properties", {}).get(field)
            if isinstance(prop, dict) and isinstance(prop.get("items"), dict):
                prop["items"] = {"anyOf": [prop["items"], *_SHORTHAND]}


#: A value the loader will interpolate: any string holding a ``${NAME}`` or ``${NAME:-default}``.
_INTERPOLATED_NAME: Final = "Interpolated"
_INTERPOLATED: Final = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "`${VAR}` interpolation: the variable's value is checked once substituted.",
}
_CONSTRAINTS: Final = ("enum", "const", "pattern", "format", "minimum", "maximum", "minLength")


def _constrained_leaf(node: Mapping[str, Any]) -> bool:
    """A scalar a plain ``${VAR}`` string would not pass: not a free string, not a container."""
    if any(key in node for key in ("properties", "items", "anyOf", "oneOf", "allOf", "$ref")):
        return False
    kinds = node.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    if kinds & {"object", "array", "null"}:
        return False
    return bool(kinds & {"integer", "number", "boolean"}) or any(k in node for k in _CONSTRAINTS)


def _interpolable(node: Any) -> Any:
    """Let every constrained scalar also be a ``${VAR}`` string, as the loader substitutes first.

    Interpolation runs before validation, in every string of the file: ``retries: ${RETRIES}`` or
    ``tls_verify: ${TLS_VERIFY}`` is a string in the YAML and an integer or a boolean once
    substituted. An editor must not flag it.
    """
    ref = {"$ref": _REF.format(model=_INTERPOLATED_NAME)}
    if isinstance(node, list):
        return [_interpolable(item) for item in node]
    if not isinstance(node, dict):
        return node
    if _constrained_leaf(node):
        return {"anyOf": [node, ref]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: _interpolable(item) for name, item in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _interpolable(value)
        elif key in ("anyOf", "oneOf"):
            out[key] = _alternatives(value, ref)
        else:
            out[key] = value
    return out


def _alternatives(value: list[Any], ref: dict[str, str]) -> list[Any]:
    """An anyOf's members loosened, flattened, with the ``${VAR}`` alternative once, last."""
    members: list[Any] = []
    for member in value:
        loosened = _interpolable(member)
        if isinstance(loosened, dict) and loosened.get("anyOf", [None])[-1] == ref:
            members += [m for m in loosened["anyOf"] if m not in members]
        elif loosened not in members:
            members.append(loosened)
    return [m for m in members if m != ref] + ([ref] if ref in members else [])


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """``root`` and every model reachable from its fields."""
    found: list[type[BaseModel]] = []
    pending = [root]
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            pending += [m for m in _nested(field.annotation) if m not in found]
    return found


def _nested(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = getattr(annotation, "__args__", ()) or ()
    metadata = getattr(annotation, "__metadata__", None)
    if metadata is not None:
        args = (getattr(annotation, "__origin__", None), *args)
    return [model for arg in args if arg is not None for model in _nested(arg)]


def _dispatch(key: str, refs: Mapping[str, str], what: str) -> dict[str, Any]:
    """An entry of ``sources`` / ``sinks``: checked against the model its ``key`` names."""
    return {
        "type": "object",
        "description": f"One {what}; `{key}` picks the plugin and the keys it accepts.",
        "required": [key, "name"],
        "properties": {key: {"enum": sorted(refs)}},
        "allOf": [
            {
                "if": {"properties": {key: {"const": name}}, "required": [key]},
                "then": {"$ref": ref},
            }
            for name, ref in sorted(refs.items())
        ],
    }


def json_schema(
    providers: Mapping[str, type[SourceConfig]], sinks: Mapping[str, type[SinkConfig]]
) -> dict[str, Any]:
    """The schema of a configuration file with these provider and sink models installed."""
    roots: list[type[BaseModel]] = [FetcherConfig, *providers.values(), *sinks.values()]
    every: list[type[BaseModel]] = []
    for root in roots:
        every += [m for m in _models(root) if m not in every]
    keys, generated = models_json_schema(
        [(model, "validation") for model in every], ref_template=_REF, schema_generator=_Generator
    )
    defs: dict[str, Any] = generated["$defs"]
    names = {model: keys[(model, "validation")]["$ref"] for model in every}
    for model, ref in names.items():
        _secret_files(model, defs[ref.rsplit("/", 1)[1]])
        _deprecated_keys(model, defs[ref.rsplit("/", 1)[1]])
    for model, ref in names.items():
        _loosen_shorthands(model, defs[ref.rsplit("/", 1)[1]], defs)
    defs = {name: _interpolable(model) for name, model in defs.items()}
    defs[_INTERPOLATED_NAME] = dict(_INTERPOLATED)
    core = defs.pop(names[FetcherConfig].rsplit("/", 1)[1])
    properties = core["properties"]
    properties["sources"] = {
        "type": "array",
        "description": properties["sources"].get("description", ""),
        "items": _dispatch("provider", {n: names[m] for n, m in providers.items()}, "source"),
    }
    properties["sinks"] = {
        "type": "array",
        "description": properties["sinks"].get("description", ""),
        "items": _dispatch("type", {n: names[m] for n, m in sinks.items()}, "sink"),
    }
    for name, value in list(properties.items()):
        # An empty section (every entry commented out) means the defaults.
        properties[name] = {"anyOf": [value, {"type": "null"}]}
    schema: dict[str, Any] = {
        "$schema": _DIALECT,
        "$id": SCHEMA_ID,
        "title": "deploy-fetcher configuration",
        "description": _markdown(
            "The configuration file of deploy-fetcher (`fetcher.yaml`). `${VAR}` interpolation"
            " happens before validation; keys starting with `x-` at the top are ignored."
        ),
        "type": ["object", "null"],
        "properties": properties,
        "patternProperties": {"^x-": {}},
        "additionalProperties": False,
        "$defs": defs,
    }
    _tidy(schema)
    schema["title"] = "deploy-fetcher configuration"
    return schema


def render(schema: Mapping[str, Any]) -> str:
    """The schema as the committed file holds it (sorted keys, two-space indent)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

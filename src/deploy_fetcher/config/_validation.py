"""Turning pydantic's validation errors into problems an admin can act on.

Pydantic reports a location made of field names, list indexes and, for unions and dict keys, internal
tags (``function-after[...]``, ``[key]``); its messages are written for developers ("Extra inputs are
not permitted", "Value error, …"). Here each error is re-anchored on the YAML the admin wrote: the
location is walked through the input data, tags are dropped, and the message is rewritten in the
words of a configuration file. Values of secret fields never reach a message.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Collection, Iterator, Mapping
from typing import Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from deploy_fetcher.config._problems import Loc, Problem, format_path
from deploy_fetcher.config._types import is_secret_annotation, quote_value

__all__ = ["REDACTED", "kind_of", "problems_from", "secret_values"]

REDACTED: Final = "**********"
#: Shorter secrets are only redacted where they appear quoted; bare, they would mangle messages.
_MIN_BARE_SECRET: Final = 6
_MAPPING_ERRORS: Final = frozenset({"model_type", "dict_type", "model_attributes_type"})
_PREFIXES: Final = ("Value error, ", "Assertion failed, ")


def _members(annotation: Any) -> Iterator[Any]:
    """The concrete types an annotation may hold: ``Annotated`` stripped, unions flattened, no None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _members(get_args(annotation)[0])
    elif origin is Union or origin is types.UnionType:
        for arg in get_args(annotation):
            yield from _members(arg)
    elif annotation is not type(None):
        yield annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _step(annotation: Any, key: object) -> list[Any]:
    """The annotations found one level below ``annotation`` at ``key``."""
    found: list[Any] = []
    for member in _members(annotation):
        if _is_model(member) and isinstance(key, str) and key in member.model_fields:
            found.append(member.model_fields[key].annotation)
        elif get_origin(member) is list and isinstance(key, int):
            found.extend(get_args(member)[:1])
        elif get_origin(member) is dict:
            found.extend(get_args(member)[1:2])
    return found


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys accepted by the mapping at ``loc`` (empty when it is not a model)."""
    annotations: list[Any] = [model]
    for key in loc:
        annotations = [found for annotation in annotations for found in _step(annotation, key)]
    keys: list[str] = []
    for annotation in annotations:
        for member in _members(annotation):
            if _is_model(member):
                for name, field in member.model_fields.items():
                    keys.append(name)
                    if is_secret_annotation(field.annotation):
                        keys.append(f"{name}_file")
    return list(dict.fromkeys(keys))


def _children(annotation: Any, value: Any) -> Iterator[tuple[Any, Any]]:
    """The (annotation, value) pairs one level below ``value``, as ``annotation`` types them."""
    for member in _members(annotation):
        origin = get_origin(member)
        if _is_model(member) and isinstance(value, dict):
            fields = member.model_fields
            yield from (
                (fields[key].annotation, item) for key, item in value.items() if key in fields
            )
        elif origin is list and isinstance(value, list):
            yield from ((get_args(member)[0], item) for item in value)
        elif origin is dict and isinstance(value, dict):
            yield from ((get_args(member)[1], item) for item in value.values())


def secret_values(model: type[BaseModel], data: Any) -> set[str]:
    """Every string the input gives to a ``SecretStr`` field of ``model`` (at any depth)."""
    found: set[str] = set()
    pending: list[tuple[Any, Any]] = [(model, data)]
    while pending:
        annotation, value = pending.pop()
        if isinstance(value, str):
            if is_secret_annotation(annotation):
                found.add(value)
        else:
            pending.extend(_children(annotation, value))
    return found


_KINDS: Final = (
    (bool, "a boolean"),
    (int | float, "a number"),
    (str, "a string"),
    (list, "a list"),
)


def kind_of(value: Any) -> str:
    """How a message names the type of a value it must not quote (``a list``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    return next(
        (name for kind, name in _KINDS if isinstance(value, kind)), f"a {type(value).__name__}"
    )


def _anchor(loc: Loc, data: Any, error_type: str) -> tuple[Loc, bool]:
    """Walk ``loc`` through ``data``; return the YAML location and whether a mapping key is at fault.

    Segments that do not index the data are pydantic's internal tags and are dropped, except the last
    segment of a "missing" error (the absent key itself) and a secret given as ``<name>_file``.
    """
    node = data
    out: list[object] = []
    at_key = False
    for index, part in enumerate(loc):
        indexes_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if indexes_list or (isinstance(node, dict) and part in node):
            out.append(part)
            node = node[part]
        elif part == "[key]":
            at_key = True
        elif isinstance(node, dict) and isinstance(part, str) and f"{part}_file" in node:
            out.append(f"{part}_file")
            node = None
        elif error_type == "missing" and index == len(loc) - 1:
            out.append(part)
    return tuple(out), at_key


def _renamed(model: type[BaseModel], loc: Loc) -> str | None:
    """The key that replaced the unknown key at ``loc``, when a model there declares the rename.

    Only a key the model has: an old name shared by several models (``renamed_keys`` of a base)
    is not answered with a key this one does not take (GitLab has no ``open_max``).
    """
    annotations: list[Any] = [model]
    for key in loc[:-1]:
        annotations = [found for annotation in annotations for found in _step(annotation, key)]
    for annotation in annotations:
        for member in _members(annotation):
            renamed = getattr(member, "renamed_keys", None) if _is_model(member) else None
            if isinstance(renamed, dict) and loc and loc[-1] in renamed:
                new = str(renamed[loc[-1]])
                if new in member.model_fields:
                    return new
    return None


def _unknown_key(model: type[BaseModel], loc: Loc) -> str:
    new = _renamed(model, loc)
    if new is not None:
        return f"renamed key (did you mean {new!r}?)"
    known = _known_keys(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]) if loc else "", known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (known keys: {', '.join(known)})" if known else "unknown key"


#: Messages that name the expected shape, in a file's words, and the type of what was found.
_SHAPES: Final = {
    **dict.fromkeys(_MAPPING_ERRORS, "must be a mapping, not {kind}"),
    "list_type": "must be a list, not {kind}",
    "string_type": "must be a string, not {kind}",
    "missing": "required key is missing",
}


def _message(error: ErrorDetails, model: type[BaseModel], loc: Loc) -> str:
    if error["type"] == "extra_forbidden":
        return _unknown_key(model, loc)
    if error["type"] in _SHAPES:
        value = error.get("input")
        message = _SHAPES[error["type"]].format(kind=kind_of(value))
        if error["type"] == "string_type" and isinstance(value, bool):
            message += " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"
        return message
    message = error["msg"]
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    return message


def _redact(message: str, secrets: Collection[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if not secret:
            continue
        message = message.replace(quote_value(secret), repr(REDACTED))
        message = message.replace(repr(secret), repr(REDACTED))
        if len(secret) >= _MIN_BARE_SECRET:
            message = message.replace(secret, REDACTED)
    return message


def problems_from(
    error: ValidationError,
    *,
    model: type[BaseModel],
    data: Any,
    prefix: Loc = (),
    file: str = "",
    origins: Mapping[Loc, str] | None = None,
) -> list[Problem]:
    """The problems in ``error``, raised while validating ``data`` with ``model``.

    ``prefix`` is where ``data`` sits in the file (``("sources", 2)``); ``origins`` maps locations
    set by environment variables to the variable's name, so such a problem names the variable
    instead of the file.
    """
    secrets = secret_values(model, data)
    found: list[tuple[Loc, str]] = []
    for details in error.errors(include_url=False):
        loc: Loc = tuple(details["loc"])
        context = details.get("ctx") or {}
        if details["type"] == "config_problems":
            anchored, _ = _anchor(loc, data, details["type"])
            found.extend(((*anchored, *sub), message) for sub, message in context["problems"])
            continue
        anchored, at_key = _anchor(loc, data, details["type"])
        if details["type"] == "secret_file":
            found.append(((*anchored, context["key"]), details["msg"]))
            continue
        message = _message(details, model, anchored)
        found.append((anchored, f"key {message}" if at_key else message))
    problems: list[Problem] = []
    for loc, message in found:
        variable = next(
            (name for at, name in (origins or {}).items() if loc[: len(at)] == at), None
        )
        text = _redact(message, secrets)
        if variable is not None:
            problems.append(Problem(format_path((*prefix, *loc)), f"from {variable}: {text}"))
        else:
            problems.append(Problem(format_path((*prefix, *loc)), text, file))
    return problems

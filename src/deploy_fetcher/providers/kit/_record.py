"""Cursor records: dataclasses that write themselves as compact JSON and read it back strictly.

A cursor is stored after every page, read back on every poll, and may be damaged (edited by hand,
written by another version). So reading is strict — a value of the wrong type is a
:class:`CursorMismatch` naming the field, and the target starts over — and writing is compact: a
field equal to its default is left out, and a field may take a short key
(``etag: str | None = field(default=None, metadata=short("e"))``). A field whose metadata says
``short(None)`` is not stored at all (the cursor's scope, which the seal carries).

Types understood: ``str``, ``int``, ``bool``, ``datetime`` (RFC 3339, millisecond precision),
``X | None``, ``list[X]``, ``dict[str, X]``, ``Any`` (as is), and any class with ``to_json`` and a
``from_json`` classmethod (other records, the kit's open and done sets).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from typing import Any, ClassVar, Self, Union

import structlog

from deploy_fetcher.model import format_rfc3339, parse_timestamp

__all__ = ["CursorMismatch", "Record", "Sealed", "short"]

_log = structlog.get_logger(__name__)

_KEY = "deploy_fetcher_json_key"
_SKIP = object()


class CursorMismatch(ValueError):
    """A stored cursor that cannot be continued (another mode, selection or version, or damaged)."""


def short(key: str | None) -> dict[str, Any]:
    """Field metadata: store the field under ``key`` (None: do not store it)."""
    return {_KEY: key if key is not None else _SKIP}


def _write(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_rfc3339(value)
    if isinstance(value, list):
        return [_write(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _write(item) for key, item in value.items()}
    to_json = getattr(value, "to_json", None)
    return to_json() if callable(to_json) else value


def _read(kind: Any, value: Any, where: str) -> Any:  # noqa: C901, PLR0911, PLR0912 - one branch per kind
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _read(inner, value, where)
    if kind is Any:
        return value
    if kind is datetime:
        if isinstance(value, str):
            try:
                return parse_timestamp(value)
            except ValueError:
                pass
        msg = f"{where}: not a timestamp: {value!r}"
        raise CursorMismatch(msg)
    if kind is bool:
        if isinstance(value, bool | int):
            return bool(value)
    elif kind in (int, str):
        if isinstance(value, kind) and not isinstance(value, bool):
            return value
    elif origin is list and isinstance(value, list):
        return [_read(args[0], item, f"{where}[]") for item in value]
    elif origin is dict and isinstance(value, dict):
        if args[0] is int and not all(str(k).isdigit() for k in value):
            msg = f"{where}: keys are not ids"
            raise CursorMismatch(msg)
        convert = int if args[0] is int else str
        return {convert(k): _read(args[1], item, f"{where}.{k}") for k, item in value.items()}
    elif callable(getattr(kind, "from_json", None)):
        return kind.from_json(value)
    msg = f"{where}: not a {getattr(kind, '__name__', kind)}: {value!r}"[:200]
    raise CursorMismatch(msg)


class Record:
    """Mix into a dataclass to read and write it as compact JSON (see the module docstring)."""

    _hints: ClassVar[dict[type, dict[str, Any]]] = {}

    @classmethod
    def _fields(cls) -> list[tuple[dataclasses.Field[Any], str, Any]]:
        if cls not in Record._hints:
            Record._hints[cls] = typing.get_type_hints(cls)
        hints = Record._hints[cls]
        out = []
        for item in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = item.metadata.get(_KEY, item.name)
            if key is not _SKIP:
                out.append((item, key, hints[item.name]))
        return out

    def to_json(self) -> dict[str, Any]:
        """The stored fields, those equal to their default left out."""
        out: dict[str, Any] = {}
        for item, key, _ in self._fields():
            value = getattr(self, item.name)
            if item.default is not dataclasses.MISSING and value == item.default:
                continue
            if item.default_factory is not dataclasses.MISSING and value == item.default_factory():
                continue
            out[key] = _write(value)
        return out

    @classmethod
    def from_json(cls, data: Any, **given: Any) -> Self:
        """Inverse of :meth:`to_json`; ``given`` supplies the fields that are not stored."""
        if not isinstance(data, dict):
            msg = f"{cls.__name__}: not an object"
            raise CursorMismatch(msg)
        values = dict(given)
        for item, key, kind in cls._fields():
            if key in data:
                values[item.name] = _read(kind, data[key], f"{cls.__name__}.{key}")
            elif (
                item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
            ):
                msg = f"{cls.__name__}: {key} missing"
                raise CursorMismatch(msg)
        return cls(**values)


class Sealed(Record):
    """A record stored as a target's cursor: with its version, its mode and the source's scope.

    Subclasses are dataclasses with a ``scope`` field (``metadata=short(None)``: the seal carries
    it) and set ``VERSION`` and ``MODE``.
    """

    VERSION: ClassVar[int] = 1
    MODE: ClassVar[str] = ""
    scope: str

    def sealed(self) -> dict[str, Any]:
        """The JSON object the store keeps."""
        return {"v": self.VERSION, "mode": self.MODE, "scope": self.scope, **self.to_json()}

    @classmethod
    def load(cls, data: Any, *, scope: str, **given: Any) -> Self:
        """Inverse of :meth:`sealed`; CursorMismatch when the cursor is not this source's or damaged."""
        if not isinstance(data, dict):
            msg = "cursor is not an object"
            raise CursorMismatch(msg)
        if data.get("v") != cls.VERSION:
            msg = f"cursor version {data.get('v')!r}, expected {cls.VERSION}"
            raise CursorMismatch(msg)
        if data.get("mode") != cls.MODE:
            msg = f"cursor of mode {data.get('mode')!r}, the source now uses {cls.MODE!r}"
            raise CursorMismatch(msg)
        if data.get("scope") != scope:
            msg = "the source's selection changed since the cursor was written"
            raise CursorMismatch(msg)
        return cls.from_json(data, scope=scope, **given)

    @classmethod
    def resume(
        cls, data: Any, *, scope: str, log_name: str, target: str, **given: Any
    ) -> Self | None:
        """The stored cursor to continue from, or None: the target then starts at ``now − lookback``.

        No cursor is a new target. A cursor written for another version, mode or selection is
        logged ``<log_name>.cursor_reset`` (info: the old mark says nothing about what the source
        asks for now); one of this source that cannot be read, with a warning (damaged).
        """
        if data is None:
            return None
        header = (cls.VERSION, cls.MODE, scope)
        ours = (
            isinstance(data, dict)
            and (data.get("v"), data.get("mode"), data.get("scope")) == header
        )
        try:
            return cls.load(data, scope=scope, **given)
        except (ValueError, TypeError, KeyError) as exc:  # CursorMismatch, or a payload's own check
            log = _log.warning if ours else _log.info
            log(f"{log_name}.cursor_reset", target=target, reason=str(exc))
            return None

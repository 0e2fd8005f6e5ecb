"""Reading the configuration file into plain Python values.

PyYAML's safe loader is used (no object construction from tags), with one strictness added: a key
given twice in one mapping is an error instead of the last one silently winning, because that is
exactly the kind of mistake that goes unnoticed for months. Merge keys (``<<: *defaults``) still
override as YAML intends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from deploy_fetcher.config._problems import Problem, format_path

__all__ = ["MAX_FILE_BYTES", "ConfigFileError", "parse_yaml", "positions", "read_text"]

#: A configuration file larger than this is not a configuration file.
MAX_FILE_BYTES: Final = 4 * 1024 * 1024

_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
#: Bounds of the position map (aliases can make a small file describe a huge tree).
_MAX_DEPTH: Final = 64
_MAX_POSITIONS: Final = 100_000


class ConfigFileError(Exception):
    """The file cannot be read or parsed; carries the one problem to report."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.line())
        self.problem = problem


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated within one mapping."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: the safe loader reports it in its own words
                continue
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_text(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark tolerated), or a ConfigFileError saying why not."""
    file = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigFileError(
            Problem("", f"cannot read the configuration: {reason}", file)
        ) from None
    if len(data) > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES // (1024 * 1024)
        message = f"the configuration is larger than {limit} MiB"
        raise ConfigFileError(Problem("", message, file))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (invalid byte at offset {exc.start})"
        raise ConfigFileError(Problem("", message, file)) from None


def _position(mark: yaml.Mark | None) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def parse_yaml(text: str, file: str) -> Any:
    """Parse ``text``; a syntax error becomes a ConfigFileError naming the line and column.

    The message keeps PyYAML's description of the problem but not its excerpt of the file, which
    could show a secret written next to the mistake.
    """
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        message = f"invalid YAML{_position(mark)}: {what}"
        raise ConfigFileError(Problem("", message, file)) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(Problem("", f"invalid YAML: {exc}", file)) from None
    except ValueError as exc:  # e.g. a timestamp-looking value such as 2026-13-01
        raise ConfigFileError(Problem("", f"invalid YAML value: {exc}", file)) from None
    except RecursionError:
        message = "invalid YAML: nested too deeply"
        raise ConfigFileError(Problem("", message, file)) from None
    finally:
        loader.dispose()


def positions(text: str) -> dict[str, tuple[int, int]]:
    """Where each YAML path starts in ``text``: ``{"sources[1].repos[0]": (line, column)}``.

    Used to report problems in the order of the file. Paths under an alias point at the anchor's
    place; a text that does not parse gives an empty map (its problem is reported on its own).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, ValueError, RecursionError):
        return {}
    found: dict[str, tuple[int, int]] = {}
    pending: list[tuple[Node, tuple[object, ...], int]] = [(root, (), 0)] if root else []
    while pending:
        node, loc, depth = pending.pop()
        found.setdefault(format_path(loc), (node.start_mark.line, node.start_mark.column))
        if depth > _MAX_DEPTH or len(found) > _MAX_POSITIONS:
            continue
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                    key: object = key_node.value
                    with_key = (*loc, key)
                    found.setdefault(
                        format_path(with_key),
                        (key_node.start_mark.line, key_node.start_mark.column),
                    )
                    pending.append((value_node, with_key, depth + 1))
        elif isinstance(node, SequenceNode):
            pending += [(item, (*loc, index), depth + 1) for index, item in enumerate(node.value)]
    return found

"""A small Dockerfile parser, enough to check the properties the image promises.

It follows the Dockerfile reference for what our file uses: parser directives (``# syntax=``,
``# escape=``), comments, line continuations (comment lines inside a continuation are dropped, as
BuildKit does), exec (JSON) and shell forms, ``--flag=value`` options, stages with ``AS`` names and
global ``ARG`` defaults substituted into ``FROM``. Heredocs are refused rather than misread.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Dockerfile", "Instruction", "Stage", "expand", "parse", "parse_file"]

_DIRECTIVE = re.compile(r"^#\s*([A-Za-z]+)\s*=\s*(\S+)\s*$")
_FLAG = re.compile(r"^--([a-z-]+)(?:=(\S*))?$")
_HEREDOC = re.compile(r"<<-?\s*[\"']?[A-Za-z_][A-Za-z0-9_]*[\"']?")
_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
#: Instructions whose leading ``--name=value`` words are options, not arguments.
_TAKES_FLAGS = {"FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"}


@dataclass(frozen=True)
class Instruction:
    """One instruction after continuation lines are joined."""

    keyword: str
    args: str
    line: int
    flags: dict[str, str] = field(default_factory=dict)

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, None in shell form."""
        return _exec_form(self.args)

    def pairs(self) -> dict[str, str]:
        """``key=value`` arguments (LABEL, ENV, ARG), quotes removed; legacy ``ENV key value`` too."""
        words = shlex.split(self.args)
        if words and "=" not in words[0]:
            return {words[0]: " ".join(words[1:])}
        out: dict[str, str] = {}
        for word in words:
            key, sep, value = word.partition("=")
            out[key] = value if sep else ""
        return out


@dataclass
class Stage:
    """A ``FROM`` and the instructions up to the next one."""

    base: str
    name: str | None
    index: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """Every instruction with this keyword, in order."""
        return [i for i in self.instructions if i.keyword == keyword.upper()]

    def last(self, keyword: str) -> Instruction | None:
        """The instruction that takes effect (Docker keeps the last one of CMD, USER, …)."""
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """Every ENV of the stage, later ones winning."""
        out: dict[str, str] = {}
        for instruction in self.all("ENV"):
            out.update(instruction.pairs())
        return out

    def args(self, global_args: dict[str, str]) -> dict[str, str]:
        """The stage's ARG values: its own defaults, or the global value for a bare redeclaration."""
        out: dict[str, str] = {}
        for instruction in self.all("ARG"):
            for key, value in instruction.pairs().items():
                out[key] = value if "=" in instruction.args else global_args.get(key, "")
        return out

    def labels(self) -> dict[str, str]:
        """Every LABEL of the stage, later ones winning."""
        out: dict[str, str] = {}
        for instruction in self.all("LABEL"):
            out.update(instruction.pairs())
        return out


@dataclass
class Dockerfile:
    """A parsed Dockerfile."""

    directives: dict[str, str]
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        """The stage the image is made of (the last one)."""
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        """A stage by its ``AS`` name."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def expand(text: str, variables: dict[str, str]) -> str:
    """Substitute ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` the way Docker does in FROM."""

    def _sub(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        value = variables.get(name, "")
        if value == "" and match.group("default") is not None:
            return match.group("default")
        return value

    return _VAR.sub(_sub, text)


def _exec_form(args: str) -> list[str] | None:
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _logical_lines(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Parser directives, then (first line number, joined text) of every instruction."""
    lines = text.splitlines()
    directives: dict[str, str] = {}
    start = 0
    while start < len(lines) and (match := _DIRECTIVE.match(lines[start].strip())):
        directives[match.group(1).lower()] = match.group(2)
        start += 1
    escape = directives.get("escape", "\\")
    out: list[tuple[int, str]] = []
    buffer: list[str] = []
    first = 0
    for number, raw in enumerate(lines[start:], start=start + 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue
        if not stripped:
            continue  # empty lines inside a continuation are allowed (and ignored)
        if not buffer:
            first = number
        if stripped.endswith(escape):
            buffer.append(stripped[: -len(escape)].strip())
            continue
        buffer.append(stripped)
        out.append((first, " ".join(part for part in buffer if part)))
        buffer = []
    if buffer:
        msg = f"line {first}: the file ends inside a line continuation"
        raise ValueError(msg)
    return directives, out


def _split_flags(keyword: str, rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    if keyword not in _TAKES_FLAGS:
        return flags, rest
    while rest.startswith("--"):
        word, _, remainder = rest.partition(" ")
        match = _FLAG.match(word)
        if not match:
            break
        flags[match.group(1)] = match.group(2) or ""
        rest = remainder.lstrip()
    return flags, rest


def parse(text: str) -> Dockerfile:
    """Parse Dockerfile text."""
    directives, lines = _logical_lines(text)
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword in {"RUN", "COPY", "ADD"} and _HEREDOC.search(rest):
            msg = f"line {number}: heredocs are not supported by this parser"
            raise ValueError(msg)
        flags, rest = _split_flags(keyword, rest)
        instruction = Instruction(keyword, rest, number, flags)
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(expand(words[0], global_args), name, len(stages), [instruction]))
        elif not stages:
            if keyword != "ARG":
                msg = f"line {number}: only ARG may come before the first FROM, not {keyword}"
                raise ValueError(msg)
            global_args.update(instruction.pairs())
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        msg = "no FROM instruction"
        raise ValueError(msg)
    return Dockerfile(directives, global_args, stages)


def parse_file(path: Path) -> Dockerfile:
    """Parse a Dockerfile on disk."""
    return parse(path.read_text(encoding="utf-8"))

"""Loading the YAML files under deploy/ and finding Kubernetes objects in them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["find", "load_documents", "parse_quantity"]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def load_documents(path: Path) -> list[Any]:
    """Every YAML document of a file, empty documents dropped."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``); fails loudly when there is not exactly one."""
    found = [
        o
        for o in objects
        if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)
    ]
    if len(found) != 1:
        msg = f"expected one {kind} {name or ''}, found {len(found)}"
        raise LookupError(msg)
    return found[0]


def parse_quantity(value: str | float) -> float:
    """A Kubernetes resource quantity (``50m``, ``1``, ``128Mi``, ``1G``) as a plain number."""
    text = str(value)
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    for suffix, factor in _DECIMAL.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)

"""Validating emulator responses against the services' published schemas (kept as fixtures)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import jsonschema


def openapi_to_jsonschema(node: Any, *, nulls: bool = False) -> Any:
    """An OpenAPI 3.0 / Swagger 2.0 schema as JSON Schema.

    ``nullable`` becomes a null type; vendor extensions, ``example`` and ``format`` are left out
    (formats are not asserted); ``$ref`` to definitions is kept. ``nulls``: every property may be
    null (Swagger 2.0 cannot say which may, and Azure DevOps' own examples send null in many).
    """
    if isinstance(node, list):
        return [openapi_to_jsonschema(item, nulls=nulls) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "definitions") and isinstance(value, dict):
            out[key] = {
                name: _nullable(openapi_to_jsonschema(sub, nulls=nulls))
                if nulls and key == "properties"
                else openapi_to_jsonschema(sub, nulls=nulls)
                for name, sub in value.items()
            }
        elif not key.startswith("x-") and key not in ("example", "examples", "nullable", "format"):
            out[key] = openapi_to_jsonschema(value, nulls=nulls)
    if node.get("nullable"):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if "type" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _nullable(schema: Any) -> Any:
    return {"anyOf": [schema, {"type": "null"}]}


def problems(
    schema: Any, document: Any, *, definitions: Any = None, nulls: bool = False
) -> list[str]:
    """Every way ``document`` breaks ``schema`` (path and message), empty when it conforms."""
    converted = openapi_to_jsonschema(schema, nulls=nulls)
    if definitions is not None:
        converted = {**converted, "definitions": openapi_to_jsonschema(definitions, nulls=nulls)}
    validator = jsonschema.Draft7Validator(converted)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message[:200]}"
        for error in validator.iter_errors(document)
    ]


def get_json(url: str, headers: dict[str, str]) -> Any:
    """GET a URL on 127.0.0.1 and parse its JSON body."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - the emulator on 127.0.0.1
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())

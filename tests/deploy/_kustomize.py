"""A small, strict stand-in for ``kustomize build``, enough for the manifests under deploy/kubernetes.

No kustomize or kubectl binary is available where the tests run, so the folders are rendered here:
``resources`` (files and folders), ``components``, ``namespace``, ``images`` and
``secretGenerator`` (from files, with a content-hash suffix whose references in the Deployment's
volumes are rewritten, as kustomize does). A key this renderer does not know fails the test instead
of being ignored: a manifest that uses more of kustomize needs the renderer taught first.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KustomizeError", "render"]

_KNOWN = {
    "Kustomization": {
        "apiVersion",
        "kind",
        "namespace",
        "resources",
        "components",
        "images",
        "secretGenerator",
    },
    "Component": {"apiVersion", "kind", "resources"},
}
_GENERATOR_KEYS = {"name", "type", "files"}


class KustomizeError(Exception):
    """The folder uses something the renderer does not know, or names a file that is missing."""


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def _kustomization(folder: Path) -> dict[str, Any]:
    path = folder / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{folder}: no kustomization.yaml")
    (document,) = _load(path)
    unknown = set(document) - _KNOWN.get(document.get("kind", ""), set())
    if unknown:
        raise KustomizeError(f"{path}: keys the test renderer does not know: {sorted(unknown)}")
    return document


def _secret(folder: Path, spec: dict[str, Any]) -> dict[str, Any]:
    unknown = set(spec) - _GENERATOR_KEYS
    if unknown:
        raise KustomizeError(f"{folder}: secretGenerator keys not known here: {sorted(unknown)}")
    data: dict[str, str] = {}
    for entry in spec.get("files", []):
        key, _, relative = entry.rpartition("=")
        source = folder / relative
        if not source.is_file():
            raise KustomizeError(f"{folder}: secretGenerator file {relative} does not exist")
        data[key or source.name] = base64.b64encode(source.read_bytes()).decode()
    body = {
        "kind": "Secret",
        "name": spec["name"],
        "type": spec.get("type", "Opaque"),
        "data": data,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{spec['name']}-{digest}"},
        "type": body["type"],
        "data": data,
    }


def _rename_secret_references(objects: list[dict[str, Any]], old: str, new: str) -> None:
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        for volume in obj["spec"]["template"]["spec"].get("volumes", []):
            if volume.get("secret", {}).get("secretName") == old:
                volume["secret"]["secretName"] = new


def render(folder: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build folder`` would print (namespaces and images applied)."""
    document = _kustomization(folder)
    objects: list[dict[str, Any]] = []
    for resource in document.get("resources", []):
        path = (folder / resource).resolve()
        objects += render(path) if path.is_dir() else copy.deepcopy(_load(path))
    for component in document.get("components", []):
        objects += render((folder / component).resolve())
    for spec in document.get("secretGenerator", []):
        secret = _secret(folder, spec)
        _rename_secret_references(objects, spec["name"], secret["metadata"]["name"])
        objects.append(secret)
    _set_namespace(objects, document.get("namespace"))
    _set_images(objects, document.get("images", []))
    return objects


def _set_namespace(objects: list[dict[str, Any]], namespace: str | None) -> None:
    if namespace:
        for obj in objects:
            if obj["kind"] != "Namespace":
                obj["metadata"]["namespace"] = namespace


def _set_images(objects: list[dict[str, Any]], images: list[dict[str, str]]) -> None:
    containers = [
        container
        for obj in objects
        if obj["kind"] == "Deployment"
        for container in obj["spec"]["template"]["spec"]["containers"]
    ]
    for image in images:
        for container in containers:
            name, _, _ = container["image"].rpartition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"

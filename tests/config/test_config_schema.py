"""The published JSON Schema: current, valid, and true to what the loader accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tests.support import run_cli

from deploy_fetcher.config import render_schema
from deploy_fetcher.plugins import config_schema, parse_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "fetcher.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _leaves(errors) -> list[Any]:
    """The innermost errors (inside anyOf/if-then), as an editor shows them."""
    out = []
    for error in errors:
        if error.context:
            out += _leaves(error.context)
        elif error.validator != "type" or error.validator_value != "null":
            out.append(error)
    return out


def _errors(validator, document: Any) -> list[tuple[str, str]]:
    return sorted(
        (".".join(map(str, error.absolute_path)), error.message)
        for error in _leaves(validator.iter_errors(document))
    )


def _shipped_configs() -> dict[str, Any]:
    """Every configuration file the repository ships, by name."""
    found = {"config.example.yaml": yaml.safe_load((ROOT / "config.example.yaml").read_text())}
    for path in sorted((ROOT / "deploy" / "compose").glob("config.*.yaml")):
        found[path.name] = yaml.safe_load(path.read_text(encoding="utf-8"))
    configmap = yaml.safe_load(
        (ROOT / "deploy" / "kubernetes" / "base" / "configmap.yaml").read_text()
    )
    found["kubernetes configmap"] = yaml.safe_load(configmap["data"]["config.yaml"])
    return found


def test_the_committed_schema_is_current():
    """docs/fetcher.schema.json is what the models generate (regenerate it after a change)."""
    assert render_schema(config_schema()) == SCHEMA_FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(_shipped_configs()))
def test_every_shipped_configuration_validates(validator, name):
    """config.example.yaml, the compose configs and the Kubernetes ConfigMap pass the schema."""
    assert [] == _errors(validator, _shipped_configs()[name])


@pytest.mark.parametrize(
    ("document", "path", "words"),
    [
        ({"defaults": {"intervall": "1m"}}, "defaults", "'intervall' was unexpected"),
        ({"defaults": {"interval": "30 sec"}}, "defaults.interval", "does not match"),
        ({"server": {"port": 70000}}, "server.port", "maximum"),
        (
            {"sources": [{"name": "s", "provider": "github", "token": "t", "repoz": ["a/b"]}]},
            "sources.0",
            "'repoz' was unexpected",
        ),
        ({"sinks": [{"name": "d", "type": "jenkins"}]}, "sinks.0.type", "is not one of"),
    ],
)
def test_mistakes_are_flagged_at_their_path(validator, document, path, words):
    """An unknown key, a bad duration, an out-of-range port, an unknown plugin are errors."""
    errors = _errors(validator, document)
    assert [path] == sorted({p for p, _ in errors if p == path}), errors
    assert any(words in message for p, message in errors if p == path), errors


@pytest.mark.parametrize(
    "document",
    [
        None,
        {"sources": None, "sinks": None},
        {"x-github": {"provider": "github"}, "state": {"path": "s.db"}},
        {
            "sinks": [
                {
                    "name": "d",
                    "type": "deployment-dashboard",
                    "url": "https://d.example",
                    "api_key_file": "/run/secrets/key",
                }
            ]
        },
        {
            "sources": [
                {
                    "name": "g",
                    "provider": "gitlab",
                    "token": "${GITLAB_TOKEN}",
                    "projects": ["acme/*", 42, {"project": "acme/cli", "mode": "pipelines"}],
                    "interval": 90,
                }
            ]
        },
    ],
    ids=["empty", "empty-sections", "x-keys", "secret-file", "shorthands"],
)
def test_what_the_loader_accepts_the_schema_accepts(validator, document):
    """Empty files and sections, x- keys, *_file secrets, scalar shorthands, bare seconds pass."""
    assert [] == _errors(validator, document)


def test_fetcher_config_schema_prints_the_committed_file():
    """`fetcher config schema` (the command that regenerates the file) prints exactly it."""
    result = run_cli("config", "schema")
    assert (0, SCHEMA_FILE.read_text(encoding="utf-8")) == (result.returncode, result.stdout)


#: Every kind of constrained scalar given as ``${VAR}``: integers, booleans, enums, durations.
_INTERPOLATED = {
    "server": {"port": "${PORT}", "enabled": "${HEALTH:-true}"},
    "defaults": {"interval": "${INTERVAL}"},
    "sources": [
        {
            "name": "g",
            "provider": "gitlab",
            "token": "t",
            "projects": ["acme/api"],
            "retries": "${RETRIES}",
            "tls_verify": "${TLS_VERIFY:-true}",
            "timeout": "${TIMEOUT:-30s}",
        }
    ],
    "sinks": [
        {
            "name": "d",
            "type": "deployment-dashboard",
            "url": "https://d.example",
            "api_key": "k",
            "status_set": "${STATUS_SET}",
            "include": {"statuses": ["${ONLY}"]},
        }
    ],
}


def test_a_variable_may_stand_for_any_number_boolean_or_enum(validator):
    """${VAR} where an integer, a boolean, an enum or a duration goes passes, as the loader takes it."""
    environ = {
        "PORT": "9090",
        "INTERVAL": "2m",
        "RETRIES": "5",
        "STATUS_SET": "three",
        "ONLY": "success",
    }
    loaded = parse_config(yaml.safe_dump(_INTERPOLATED), environ=environ)
    source, sink = loaded.sources[0], loaded.sinks[0]
    assert [] == _errors(validator, _INTERPOLATED)
    assert (9090, True, 5, True, "three") == (
        loaded.server.port,
        loaded.server.enabled,
        source.retries,
        source.tls_verify,
        sink.status_set,
    )


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"server": {"port": "eighty"}}, "server.port"),
        ({"server": {"port": "${PORT"}}, "server.port"),
        ({"server": {"enabled": "$PORT"}}, "server.enabled"),
    ],
)
def test_a_string_that_is_no_variable_is_still_flagged(validator, document, path):
    """Only a well-formed ${VAR} is let through where a number or a boolean goes."""
    assert [path] == sorted({p for p, _ in _errors(validator, document)})

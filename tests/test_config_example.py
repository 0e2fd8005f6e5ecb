"""config.example.yaml loads through the real loader and mentions every option there is."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from deploy_fetcher.config import FetcherConfig
from deploy_fetcher.plugins import (
    available_providers,
    available_sinks,
    load_config,
    load_provider,
    load_sink,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models(arg)]


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    if model in seen:
        return set()
    seen.add(model)
    names = set()
    for name, field in model.model_fields.items():
        if name in {"sinks", "sources"} and model is FetcherConfig:
            continue
        names.add(name)
        for nested in _models(field.annotation):
            names |= _field_names(nested, seen)
    return names


def test_the_example_loads_through_the_real_loader(tmp_path):
    """With only DASHBOARD_API_KEY set, the example validates: every default and comment is real."""
    config = load_config(EXAMPLE, environ={"DASHBOARD_API_KEY": "dummy-key"})
    assert {"dashboard", "cloudlink", "ctoai", "webhook", "archive", "console"} == {
        s.name for s in config.sinks
    }
    assert {"github", "gitlab", "azure-devops", "replay"} == {s.name for s in config.sources}


def test_every_option_of_every_model_appears_in_the_example():
    """Each key of the core sections and of every installed provider and sink is shown (maybe commented)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    seen: set[type[BaseModel]] = set()
    expected = _field_names(FetcherConfig, seen)
    for name in available_providers():
        expected |= _field_names(load_provider(name).config_model, seen)
    for name in available_sinks():
        expected |= _field_names(load_sink(name).config_model, seen)
    missing = sorted(
        n
        for n in expected
        if not re.search(rf"(^|[\s{{,#-]){re.escape(n)}(_file)?:", text, re.MULTILINE)
    )
    assert [] == missing

"""Loading through the real entry points (the scripted provider and the jsonl sink)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy_fetcher.errors import ConfigError
from deploy_fetcher.plugins import available_providers, load_config, load_provider, load_sink

CONFIG = """\
sinks:
  - name: file
    type: jsonl
    path: ${OUT}/events.jsonl
sources:
  - name: demo
    provider: scripted
    generate: {count: 3}
    sinks: [file]
"""


def test_entries_get_the_installed_plugins_models(tmp_path: Path):
    """Without injected resolvers, entries are validated by the models the entry points name."""
    path = tmp_path / "fetcher.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path, environ={"OUT": str(tmp_path)})
    assert (load_provider("scripted").config_model, load_sink("jsonl").config_model) == (
        type(config.sources[0]),
        type(config.sinks[0]),
    )
    assert tmp_path / "events.jsonl" == config.sinks[0].path


def test_unknown_provider_lists_the_installed_ones(tmp_path: Path):
    """An unknown provider's error lists every installed provider."""
    path = tmp_path / "fetcher.yaml"
    path.write_text("sources:\n  - {name: a, provider: jenkins}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    expected = f"unknown provider 'jenkins' (installed: {', '.join(available_providers())})"
    assert ("sources[0].provider", expected) == (caught.value.path, caught.value.message)

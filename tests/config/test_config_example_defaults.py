"""config.example.yaml's core sections are the defaults: copying them changes nothing."""

from __future__ import annotations

from pathlib import Path

from deploy_fetcher.config import FetcherConfig, StateConfig
from deploy_fetcher.plugins import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def test_the_examples_core_sections_equal_the_defaults():
    """state, server, nudges, log, defaults and rules of the example are exactly the models' defaults."""
    example = load_config(EXAMPLE, environ={"DASHBOARD_API_KEY": "dummy-key"})
    defaults = FetcherConfig(state=StateConfig(path=EXAMPLE.parent / "fetcher-state.db"))
    sections = ("state", "server", "nudges", "log", "defaults", "rules")
    assert {s: getattr(defaults, s) for s in sections} == {s: getattr(example, s) for s in sections}

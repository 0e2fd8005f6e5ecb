"""``sources[]`` and ``sinks[]``: plugin models chosen by ``provider`` / ``type``, and cross-checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deploy_fetcher.config import FetcherConfig, SourceConfig, parse_config
from deploy_fetcher.errors import ConfigError

SINK = "  - {name: dash, type: hook, url: 'https://dash.test/api'}\n"


def test_entries_are_validated_with_the_plugin_model(load, plugin_models):
    """Each entry becomes an instance of its plugin's model, with the plugin's keys."""
    config = load(f"sinks:\n{SINK}sources:\n  - {{name: a, provider: repo, repos: [o/r]}}\n")
    assert plugin_models == (type(config.sources[0]), type(config.sinks[0]))
    assert (["o/r"], "https://dash.test/api") == (config.sources[0].repos, config.sinks[0].url)


def test_engine_helpers_see_the_entries(load):
    """The validated tree answers the engine's questions about sources and sinks."""
    config = load(
        f"defaults:\n  interval: 2m\nsinks:\n{SINK}"
        "  - {name: paused, type: hook, url: 'http://off.test', enabled: false}\n"
        "sources:\n  - {name: a, provider: repo, repos: [], interval: 30s}\n"
        "  - {name: b, provider: repo, repos: [], sinks: [paused]}\n"
    )
    a, b = config.sources
    assert (["dash"], [], 30.0, 120.0) == (
        config.sink_names_for(a),
        config.sink_names_for(b),
        config.effective(a, "interval").total_seconds(),
        config.effective(b, "interval").total_seconds(),
    )


def test_unknown_provider_lists_installed_ones(load):
    """An unknown provider is reported at its provider key with the installed providers."""
    error = load.error("sources:\n  - {name: a, provider: gitlub}\n")
    expected = ("sources[0].provider", "unknown provider 'gitlub' (installed: repo)")
    assert expected == (error.path, error.message)


def test_unknown_sink_type_lists_installed_ones(load):
    """An unknown sink type is reported at its type key with the installed types."""
    error = load.error("sinks:\n  - {name: a, type: webhok}\n")
    expected = ("sinks[0].type", "unknown sink type 'webhok' (installed: hook)")
    assert expected == (error.path, error.message)


def test_entry_without_provider(load):
    """An entry without a provider key is reported at that key."""
    error = load.error("sources:\n  - {name: a}\n")
    assert ("sources[0].provider", "required key is missing") == (error.path, error.message)


def test_provider_must_be_a_string(load):
    """A provider key that is not a string is refused before any lookup."""
    error = load.error("sources:\n  - {name: a, provider: [repo]}\n")
    assert ("sources[0].provider", "must be a string, not a list") == (error.path, error.message)


def test_plugin_without_a_model_is_refused(resolvers):
    """A resolver returning something without a config_model is a ConfigError, not a crash."""
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "sources:\n  - {name: a, provider: odd}\n",
            environ={},
            **(resolvers | {"provider_resolver": lambda _name: object()}),
        )
    assert "'odd' declares no SourceConfig model" == caught.value.message


def test_errors_of_several_entries_are_all_reported(load):
    """Problems in several entries are reported together, each at its index."""
    error = load.error(
        "sources:\n  - {name: a, provider: repo, repos: 1}\n  - {name: b, provider: nope}\n"
    )
    paths = [line.split(": ")[1] for line in str(error).splitlines()]
    assert ["sources[0].repos", "sources[1].provider"] == paths


def test_duplicate_source_names(load):
    """Two sources with one name are refused at the second one's name."""
    error = load.error(
        "sources:\n  - {name: a, provider: repo, repos: []}\n  - {name: a, provider: repo, repos: []}\n"
    )
    expected = ("sources[1].name", "duplicate source name 'a' (also used by sources[0])")
    assert expected == (error.path, error.message)


def test_duplicate_sink_names(load):
    """Two sinks with one name are refused at the second one's name."""
    error = load.error(f"sinks:\n{SINK}{SINK}")
    expected = ("sinks[1].name", "duplicate sink name 'dash' (also used by sinks[0])")
    assert expected == (error.path, error.message)


def test_dangling_sink_reference(load):
    """A source naming a sink that is not configured is refused at that list item."""
    error = load.error(
        f"sinks:\n{SINK}sources:\n  - {{name: a, provider: repo, repos: [], sinks: [dahs]}}\n"
    )
    expected = ("sources[0].sinks[0]", "no sink is named 'dahs' (configured: dash)")
    assert expected == (error.path, error.message)


def test_sink_reference_without_any_sink(load):
    """With no sinks configured, the message says so."""
    error = load.error("sources:\n  - {name: a, provider: repo, repos: [], sinks: [dash]}\n")
    assert "no sink is named 'dash' (configured: none)" == error.message


def test_sink_listed_twice(load):
    """A sink named twice by one source is refused at the second mention."""
    error = load.error(
        f"sinks:\n{SINK}sources:\n  - {{name: a, provider: repo, repos: [], sinks: [dash, dash]}}\n"
    )
    assert ("sources[0].sinks[1]", "sink 'dash' is listed twice") == (error.path, error.message)


def test_reference_to_a_disabled_sink_is_allowed(load):
    """Naming a configured but disabled sink is valid; it simply receives nothing."""
    config = load(
        "sinks:\n  - {name: paused, type: hook, url: 'http://off.test', enabled: false}\n"
        "sources:\n  - {name: a, provider: repo, repos: [], sinks: [paused]}\n"
    )
    assert [] == config.sink_names_for(config.sources[0])


def test_cross_checks_hold_for_models_built_in_code():
    """FetcherConfig built directly (as the engine's tests do) runs the same cross-checks."""
    with pytest.raises(ValidationError) as caught:
        FetcherConfig(sources=[SourceConfig(name="a", provider="x", sinks=["nope"])])
    assert "sources[0].sinks[0]: no sink is named 'nope' (configured: none)" in str(caught.value)


def test_yaml_boolean_as_a_name_gets_a_hint(load):
    """An unquoted off/no read by YAML as a boolean is refused with a hint to quote it."""
    error = load.error("sinks:\n  - {name: off, type: hook, url: 'http://off.test'}\n")
    expected = (
        "must be a string, not a boolean "
        "(YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"
    )
    assert ("sinks[0].name", expected) == (error.path, error.message)

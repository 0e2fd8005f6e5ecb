"""``FETCHER_<SECTION>__<KEY>`` overrides of the scalar sections."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from deploy_fetcher.config import FetcherConfig
from deploy_fetcher.errors import ConfigError
from deploy_fetcher.plugins import parse_config

OVERRIDDEN = "server:\n  port: 8000\n  host: 10.0.0.5\ndefaults:\n  interval: 1m\n"


def test_override_wins_over_the_file(load):
    """An override replaces the file's value and leaves the section's other keys alone."""
    config = load(OVERRIDDEN, FETCHER_SERVER__PORT="9000")
    assert (9000, "10.0.0.5") == (config.server.port, config.server.host)


def test_duration_override(load):
    """A duration override is parsed like the file's durations."""
    config = load(OVERRIDDEN, FETCHER_DEFAULTS__INTERVAL="2m")
    assert timedelta(minutes=2) == config.defaults.interval


def test_override_of_a_section_absent_from_the_file(load):
    """A section the file does not mention can be set from the environment alone."""
    config = load("", FETCHER_STATE__PATH="/data/state.db", FETCHER_LOG__LEVEL="debug")
    assert (Path("/data/state.db"), "debug") == (config.state.path, config.log.level)


def test_override_of_an_empty_section(load):
    """An override applies to a section left empty in the file."""
    assert 9001 == load("server:\n", FETCHER_SERVER__PORT="9001").server.port


def test_names_are_case_insensitive(load):
    """Variable names match whatever their case."""
    assert 9002 == load(OVERRIDDEN, fetcher_server__port="9002").server.port


def test_section_as_json(load):
    """FETCHER_<SECTION> may hold a JSON object of several keys."""
    config = load(OVERRIDDEN, FETCHER_SERVER='{"port": 9003, "enabled": false}')
    assert (9003, False, "10.0.0.5") == (
        config.server.port,
        config.server.enabled,
        config.server.host,
    )


def test_empty_variable_is_ignored(load):
    """An empty variable (defined without a value by an orchestrator) does not override."""
    assert 8000 == load(OVERRIDDEN, FETCHER_SERVER__PORT="").server.port


def test_unrelated_fetcher_variables_are_ignored(load):
    """FETCHER_ variables that name no section are not overrides."""
    config = load(
        OVERRIDDEN, FETCHER_CONFIG="/elsewhere.yaml", FETCHER_FOO="1", FETCHER_RULES__X="y"
    )
    assert 8000 == config.server.port


def test_os_environ_is_not_read(load, monkeypatch: pytest.MonkeyPatch):
    """Only the mapping given to the loader is read, never the process environment."""
    monkeypatch.setenv("FETCHER_SERVER__PORT", "9999")
    assert 8000 == load(OVERRIDDEN).server.port


def test_invalid_override_names_the_variable(load):
    """A bad override is reported with the variable's name, not the file."""
    error = load.error(OVERRIDDEN, FETCHER_SERVER__PORT="http")
    expected = (
        "from FETCHER_SERVER__PORT: must be a valid integer, unable to parse string as an integer"
    )
    assert ("server.port", expected, "") == (error.path, error.message, error.file)


def test_invalid_duration_override_names_the_variable(load):
    """A bad duration override gives the duration message and the variable."""
    error = load.error(OVERRIDDEN, FETCHER_DEFAULTS__INTERVAL="soon")
    expected = "from FETCHER_DEFAULTS__INTERVAL: not a duration: 'soon' (use e.g. 30s, 5m, 2h, 7d)"
    assert ("defaults.interval", expected) == (error.path, error.message)


def test_override_keeps_the_spelling_of_the_variable(load):
    """The error names the variable as it was written."""
    error = load.error(OVERRIDDEN, Fetcher_Log__Level="loud")
    assert error.message.startswith("from Fetcher_Log__Level: must be 'debug'")


def test_unknown_key_in_known_section_is_an_error(load):
    """A misspelt key after a known section is refused, with the closest key."""
    error = load.error(OVERRIDDEN, FETCHER_SERVER__PROT="9000")
    expected = "from FETCHER_SERVER__PROT: unknown key (did you mean 'port'?)"
    assert ("server.prot", expected) == (error.path, error.message)


def test_section_that_is_not_json(load):
    """A section variable that is not a JSON object says how to set keys one at a time."""
    error = load.error(OVERRIDDEN, FETCHER_SERVER="port=9000")
    expected = (
        "from FETCHER_SERVER: not a JSON object (set one key at a time: FETCHER_SERVER__KEY=value)"
    )
    assert ("server", expected) == (error.path, error.message)


def test_override_problems_come_after_file_problems(load):
    """File and environment problems are reported together, the file's first."""
    error = load.error("log:\n  level: loud\n", FETCHER_SERVER__PORT="x")
    lines = str(error).splitlines()
    assert (2, "log.level") == (len(lines), error.path)
    assert lines[1].startswith("server.port: from FETCHER_SERVER__PORT: ")


DASHBOARD_SINK = """
sinks:
  - name: dash
    type: deployment-dashboard
    url: http://127.0.0.1:9/
    api_key: ingest-key-123456
"""


def _with_real_sinks(text: str, **environ: str) -> FetcherConfig:
    return parse_config(text + DASHBOARD_SINK, environ=environ)


def test_an_override_completes_a_section_the_file_began():
    """FETCHER_STATE__DASHBOARD_SINK joins the file's backend: dashboard, checked together."""
    config = _with_real_sinks(
        "state:\n  backend: dashboard\n", FETCHER_STATE__DASHBOARD_SINK="dash"
    )
    assert ("dashboard", "dash") == (config.state.backend, config.state.dashboard_sink)


def test_an_override_switches_the_backend_the_file_prepared():
    """FETCHER_STATE__BACKEND=dashboard uses the dashboard_sink the file names."""
    config = _with_real_sinks(
        "state:\n  dashboard_sink: dash\n", FETCHER_STATE__BACKEND="dashboard"
    )
    assert ("dashboard", "dash") == (config.state.backend, config.state.dashboard_sink)


def test_an_invalid_override_beside_the_file_still_names_its_variable():
    """A bad value is reported with its variable even when the file holds the rest of the section."""
    with pytest.raises(ConfigError) as caught:
        _with_real_sinks(
            "state:\n  backend: dashboard\n  dashboard_sink: dash\n",
            FETCHER_STATE__DASHBOARD_SLOT="no spaces please",
        )
    expected = "from FETCHER_STATE__DASHBOARD_SLOT: must be 1-64 characters of letters, digits, '_', '.', '-'"
    assert ("state.dashboard_slot", expected, "") == (
        caught.value.path,
        caught.value.message,
        caught.value.file,
    )


def test_the_merged_section_is_still_checked_across_its_keys():
    """An override that makes the merged section inconsistent is refused by the whole configuration."""
    with pytest.raises(ConfigError) as caught:
        _with_real_sinks(
            "state:\n  backend: dashboard\n  dashboard_sink: dash\n",
            FETCHER_STATE__BACKEND="sqlite",
        )
    assert ("state.dashboard_sink", "only used with backend dashboard (backend is sqlite)") == (
        caught.value.path,
        caught.value.message,
    )

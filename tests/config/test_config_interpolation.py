"""``${VAR}`` interpolation in string values."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_variable_is_substituted(load):
    """${VAR} is replaced by the variable's value, inside a longer string too."""
    config = load("state:\n  path: ${DATA}/state.db\n", DATA="/srv/fetcher")
    assert Path("/srv/fetcher/state.db") == config.state.path


def test_interpolated_value_is_coerced(load):
    """An interpolated string is converted to the field's type like any other value."""
    assert 8081 == load("server:\n  port: ${PORT}\n", PORT="8081").server.port


def test_default_when_unset(load):
    """${VAR:-default} gives the default when the variable is not set."""
    assert "debug" == load("log:\n  level: ${LEVEL:-debug}\n").log.level


def test_default_when_empty(load):
    """${VAR:-default} gives the default when the variable is set but empty."""
    assert "debug" == load("log:\n  level: ${LEVEL:-debug}\n", LEVEL="").log.level


def test_value_wins_over_default(load):
    """${VAR:-default} gives the variable's value when it has one."""
    assert "error" == load("log:\n  level: ${LEVEL:-debug}\n", LEVEL="error").log.level


def test_empty_default(load):
    """${VAR:-} gives an empty string when the variable is unset."""
    assert load.tmp_path / "state.db" == load("state:\n  path: ${DIR:-}state.db\n").state.path


def test_escape_gives_literal(load):
    """$${ gives a literal ${, and the text after it is not interpolated."""
    config = load("rules:\n  service:\n    template: '$${service}-x'\n")
    assert "${service}-x" == config.rules.service.template


def test_lone_dollars_are_kept(load):
    """A $ not followed by { is kept as written, so passwords need no escaping."""
    config = load("rules:\n  service:\n    rename: {a: pa$$word$}\n")
    assert {"a": "pa$$word$"} == config.rules.service.rename


def test_variable_cannot_inject_structure(load):
    """A variable's content is one string, even when it looks like YAML."""
    config = load("state:\n  path: ${T}\n", T="{a: 1}\nserver: {port: 1}")
    assert ("{a: 1}\nserver: {port: 1}", 8080) == (config.state.path.name, config.server.port)


def test_keys_are_not_interpolated(load):
    """Mapping keys are left as written."""
    config = load("rules:\n  service:\n    rename: {'${A}': b}\n", A="x")
    assert {"${A}": "b"} == config.rules.service.rename


def test_non_string_values_are_untouched(load):
    """Numbers and booleans are not strings and are passed through."""
    config = load("server:\n  port: 9000\n  enabled: false\n")
    assert (9000, False) == (config.server.port, config.server.enabled)


def test_missing_variable_names_path_and_variable(load):
    """An unset variable without default is an error at its YAML path, naming the variable."""
    error = load.error("sinks:\n  - {name: a, type: hook, url: '${HOOK_URL}'}\n")
    expected = (
        "environment variable HOOK_URL is not set (set it, or give a default: ${HOOK_URL:-…})"
    )
    assert ("sinks[0].url", expected, str(load.path)) == (error.path, error.message, error.file)


def test_all_missing_variables_are_reported(load):
    """Every unset variable is reported, not only the first."""
    error = load.error("state:\n  path: ${A}\nlog:\n  level: ${B}\n")
    assert 2 == len(str(error).splitlines())
    assert "state.path" == error.path
    assert f"{load.path}: log.level: environment variable B is not set" in str(error)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "${UNCLOSED",
            "unterminated ${ (use ${NAME} or ${NAME:-default}, and $${ for a literal ${)",
        ),
        ("${9LIVES}", "not a variable reference: ${9LIVES…}"),
        ("${}", "not a variable reference: ${…}"),
        ("${A:-${B}}", "nested references are not supported in ${A:-…}"),
    ],
)
def test_malformed_reference_is_an_error(load, value, message):
    """A reference that is not ${NAME} or ${NAME:-default} is an error at its path."""
    error = load.error(f"state:\n  path: '{value}'\n")
    assert ("state.path", True) == (error.path, error.message.startswith(message))


def test_missing_variable_message_holds_no_value(load):
    """The error for an unset variable never quotes the rest of the string it was used in."""
    error = load.error("sinks:\n  - {name: a, type: hook, url: 'https://x.test/${T}/hunter2'}\n")
    assert "hunter2" not in str(error)

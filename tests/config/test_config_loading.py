"""Finding, reading and parsing the configuration file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from deploy_fetcher.config import FetcherConfig, StateConfig
from deploy_fetcher.config._yaml import MAX_FILE_BYTES
from deploy_fetcher.errors import ConfigError
from deploy_fetcher.plugins import load_config


def test_empty_file_gives_all_defaults(load):
    """An empty file is a configuration of defaults (the state file beside it)."""
    expected = FetcherConfig(state=StateConfig(path=load.tmp_path / "fetcher-state.db"))
    assert expected == load("")


def test_comment_only_file_gives_all_defaults(load):
    """A file holding only comments is as good as empty."""
    assert load("") == load("# nothing configured yet\n")


def test_empty_sections_mean_defaults(load):
    """A section whose entries are all commented out means that section's defaults."""
    config = load("server:\nsources:\n#  - name: old\nsinks:\n")
    assert (FetcherConfig().server, [], []) == (config.server, config.sources, config.sinks)


def test_values_from_the_file_are_used(load):
    """Keys in the file override the model defaults, durations parsed."""
    config = load("defaults:\n  interval: 2m\n  lookback: 14d\nserver:\n  port: 9100\n")
    assert (timedelta(minutes=2), timedelta(days=14), 9100) == (
        config.defaults.interval,
        config.defaults.lookback,
        config.server.port,
    )


def test_path_from_fetcher_config_variable(load):
    """Without a path, the file named by FETCHER_CONFIG is loaded."""
    path = load.write("server:\n  port: 9200\n")
    assert 9200 == load_config(environ={"FETCHER_CONFIG": str(path)}).server.port


def test_no_path_and_no_variable_is_an_error():
    """Without a path and without FETCHER_CONFIG, the error says how to name the file."""
    with pytest.raises(ConfigError) as caught:
        load_config(environ={})
    assert "no configuration file: give its path or set FETCHER_CONFIG" == str(caught.value)


def test_missing_file_names_the_file(tmp_path: Path):
    """A file that does not exist is an error naming it and the reason."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    expected = f"{path}: cannot read the configuration: No such file or directory"
    assert (expected, str(path)) == (str(caught.value), caught.value.file)


def test_oversized_file_is_refused(tmp_path: Path):
    """A file larger than the limit is refused instead of being parsed."""
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "the configuration is larger than 4 MiB" == caught.value.message


def test_non_utf8_file_is_refused(tmp_path: Path):
    """Bytes that are not UTF-8 give an error with their offset."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"log:\n  level: \xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "not UTF-8 text (invalid byte at offset 14)" == caught.value.message


def test_byte_order_mark_is_tolerated(tmp_path: Path):
    """A UTF-8 byte-order mark (Windows editors) does not break parsing."""
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfserver:\n  port: 9300\n")
    assert 9300 == load_config(path, environ={}).server.port


def test_yaml_syntax_error_names_line_and_column(load):
    """A syntax error gives the file, the line and the column, 1-based."""
    error = load.error("server:\n  port: 9000\n   host: 0.0.0.0\n")
    expected = f"{load.path}: invalid YAML at line 3, column 8: mapping values are not allowed here"
    assert (expected, "") == (str(error), error.path)


def test_yaml_syntax_error_does_not_quote_the_file(load):
    """The error omits PyYAML's excerpt of the file, which could show a secret next to the mistake."""
    error = load.error('sources:\n  - token: "s3cr3t-value\n')
    assert "s3cr3t-value" not in str(error)


def test_duplicate_key_is_an_error(load):
    """A key given twice in one mapping is refused instead of the last one silently winning."""
    error = load.error("server:\n  port: 1\n  port: 2\n")
    assert "invalid YAML at line 3, column 3: found duplicate key 'port'" == error.message


def test_extension_keys_hold_anchors(load):
    """Top-level x- keys are ignored, so they can hold anchors that entries merge and override."""
    text = (
        "x-base: &base {name: a, type: hook, url: 'http://a.test'}\n"
        "sinks:\n"
        "  - <<: *base\n"
        "    url: http://b.test\n"
    )
    assert ["http://b.test"] == [sink.url for sink in load(text).sinks]


def test_merged_sink_validates(load):
    """A sink built from a merge key and an override is validated with the override's value."""
    config = load(
        "sinks:\n  - &s {name: a, type: hook, url: 'http://a.test'}\n  - <<: *s\n    name: b\n"
    )
    assert ["http://a.test", "http://a.test"] == [sink.url for sink in config.sinks]


def test_invalid_timestamp_value_is_a_config_error(load):
    """A value PyYAML reads as an impossible date is a ConfigError, not a crash."""
    error = load.error("state:\n  path: 2026-13-01\n")
    assert "invalid YAML value: month must be in 1..12" == error.message


def test_deep_nesting_is_a_config_error(load):
    """Absurdly deep nesting is refused as a ConfigError."""
    error = load.error("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "invalid YAML: nested too deeply" == error.message


def test_alias_bomb_is_refused(load):
    """Aliases expanding to a huge tree are refused, bounding the work a malicious file causes."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    error = load.error("\n".join(lines) + "\n")
    expected = "the configuration holds more than 100000 values (aliases count at each use)"
    assert expected == error.message


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "a number")],
)
def test_top_level_must_be_a_mapping(load, text, kind):
    """A file whose top level is not a mapping is refused, naming what it is."""
    error = load.error(text)
    expected = (
        "the top level must be a mapping of sections "
        f"(state, server, nudges, log, defaults, rules, sinks, sources), not {kind}"
    )
    assert expected == error.message

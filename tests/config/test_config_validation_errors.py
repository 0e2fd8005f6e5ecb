"""Validation errors: at the YAML path, in a configuration file's words, all at once."""

from __future__ import annotations

import pytest


def test_unknown_top_level_key_suggests_the_closest(load):
    """A misspelt section is refused with the closest known section."""
    error = load.error("sever:\n  port: 1\n")
    assert ("sever", "unknown key (did you mean 'server'?)") == (error.path, error.message)


def test_unknown_key_at_nested_depth(load):
    """An unknown key deep in the tree is reported at its full path."""
    error = load.error("rules:\n  service:\n    renames: {a: b}\n")
    expected = ("rules.service.renames", "unknown key (did you mean 'rename'?)")
    assert expected == (error.path, error.message)


def test_unknown_key_inside_an_optional_section(load):
    """Keys are suggested inside optional nested sections too."""
    error = load.error("rules:\n  include:\n    service: [api]\n")
    expected = ("rules.include.service", "unknown key (did you mean 'services'?)")
    assert expected == (error.path, error.message)


def test_unknown_key_without_close_match_lists_known_keys(load):
    """Without a close match, the message lists the keys the section accepts."""
    error = load.error("state:\n  wibble: 1\n")
    expected = "unknown key (known keys: backend, path, url, url_file, pool_size, lease_ttl, delivered_retention, dashboard_sink, dashboard_slot)"
    assert expected == error.message


def test_unknown_key_in_a_plugin_entry(load):
    """Unknown keys of a source are checked against its provider's model, secret files included."""
    error = load.error("sources:\n  - {name: a, provider: repo, repos: [], tokn_file: /x}\n")
    expected = ("sources[0].tokn_file", "unknown key (did you mean 'token_file'?)")
    assert expected == (error.path, error.message)


def test_bad_duration(load):
    """A value that is not a duration gives the duration message."""
    error = load.error("defaults:\n  interval: 5 minutes\n")
    expected = ("defaults.interval", "not a duration: '5 minutes' (use e.g. 30s, 5m, 2h, 7d)")
    assert expected == (error.path, error.message)


def test_interval_below_one_second(load):
    """The interval floor is enforced with its own message."""
    error = load.error("defaults:\n  interval: 500ms\n")
    assert ("defaults.interval", "interval must be at least 1s") == (error.path, error.message)


def test_bad_literal(load):
    """A value outside a fixed set lists the allowed values."""
    error = load.error("log:\n  level: loud\n")
    assert "must be 'debug', 'info', 'warning' or 'error'" == error.message


def test_port_out_of_range(load):
    """Numeric bounds are reported in plain words."""
    error = load.error("server:\n  port: 70000\n")
    assert ("server.port", "must be less than or equal to 65535") == (error.path, error.message)


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("server: [1]\n", "server", "must be a mapping, not a list"),
        ("sources: {a: 1}\n", "sources", "must be a list, not a mapping"),
        (
            "rules:\n  service:\n    template: [a]\n",
            "rules.service.template",
            "must be a string, not a list",
        ),
        ("sources:\n  - 5\n", "sources[0]", "must be a mapping, not a number"),
    ],
)
def test_wrong_shapes(load, text, path, message):
    """A value of the wrong shape names the expected shape and what was found, not the value."""
    error = load.error(text)
    assert (path, message) == (error.path, error.message)


def test_list_item_path(load):
    """An error inside a list names the item's index."""
    error = load.error("rules:\n  include:\n    statuses: [success, done]\n")
    assert "rules.include.statuses[1]" == error.path


def test_path_of_a_quoted_key(load):
    """Keys that are not plain words are quoted in the path."""
    error = load.error("rules:\n  promotion:\n    '*': []\n")
    expected = ('rules.promotion["*"]', "a promotion order needs at least one environment")
    assert expected == (error.path, error.message)


def test_promotion_without_duplicates(load):
    """An environment listed twice in a promotion order is refused."""
    error = load.error("rules:\n  promotion:\n    api: [dev, prod, dev]\n")
    expected = ("rules.promotion.api", "environment 'dev' appears twice in the promotion order")
    assert expected == (error.path, error.message)


def test_bad_mapping_key(load):
    """A mapping key outside the allowed set is reported as a key problem."""
    error = load.error(
        "sinks:\n  - {name: a, type: hook, url: 'http://a.test', rename: {servces: {}}}\n"
    )
    expected = ("sinks[0].rename.servces", "key must be 'services' or 'environments'")
    assert expected == (error.path, error.message)


def test_missing_required_key(load):
    """A required key that is absent is reported at its would-be path."""
    error = load.error("sources:\n  - {name: a, provider: repo}\n")
    assert ("sources[0].repos", "required key is missing") == (error.path, error.message)


def test_bad_name(load):
    """Source names are restricted to what fits in cursor keys and metric labels."""
    error = load.error("sources:\n  - {name: 'a b', provider: repo, repos: []}\n")
    expected = ("sources[0].name", "must be 1-64 characters of letters, digits, '_', '.', '-'")
    assert expected == (error.path, error.message)


def test_several_problems_in_one_error(load):
    """All problems come in one error: first line the first problem, then one line each."""
    error = load.error("log:\n  level: loud\nserver:\n  port: x\ndefaults:\n  jitter: soon\n")
    lines = str(error).splitlines()
    file = str(load.path)
    assert [
        f"{file}: log.level: must be 'debug', 'info', 'warning' or 'error'",
        f"{file}: server.port: must be a valid integer, unable to parse string as an integer",
        f"{file}: defaults.jitter: not a duration: 'soon' (use e.g. 30s, 5m, 2h, 7d)",
    ] == lines
    assert "log.level" == error.path


def test_problems_follow_the_files_order(load):
    """Problems are listed in the order their keys appear in the file, whatever the section."""
    error = load.error(
        "sources:\n  - {name: a, provider: nope}\n"
        "sinks:\n  - {name: b, type: hook, url: ftp://x}\n"
        "state:\n  backend: mysql\n"
    )
    paths = [line.split(": ")[1] for line in str(error).splitlines()]
    assert ["sources[0].provider", "sinks[0].url", "state.backend"] == paths


def test_an_unset_variable_does_not_hide_the_other_problems(load):
    """An unset ${VAR} is reported with every other problem, each in file order, one prefix each."""
    error = load.error(
        "server:\n  port: x\n"
        "sinks:\n  - {name: b, type: hook, url: '${HOOK_URL}'}\n"
        "defaults:\n  jitter: soon\n"
    )
    file = str(load.path)
    lines = str(error).splitlines()
    assert [f"{file}: server.port", f"{file}: sinks[0].url", f"{file}: defaults.jitter"] == [
        ": ".join(line.split(": ")[:2]) for line in lines
    ]
    assert "HOOK_URL is not set" in lines[1]
    assert "http(s) URL" not in lines[1]  # the raw ${…} is not reported a second time


def test_a_missing_key_is_placed_at_its_entry(load):
    """A required key that is absent is reported where its entry starts in the file."""
    error = load.error(
        "defaults:\n  jitter: soon\nsinks:\n  - {name: b, type: hook}\nserver:\n  port: x\n"
    )
    paths = [line.split(": ")[1] for line in str(error).splitlines()]
    assert ["defaults.jitter", "sinks[0].url", "server.port"] == paths


def test_a_key_ending_in_a_newline_is_quoted_in_the_path():
    """A key "A" + newline is shown escaped, so the error's first line still names the whole path."""
    from deploy_fetcher.config._problems import format_path

    assert 'sources[0]["A\\n"]' == format_path(("sources", 0, "A\n"))

"""The keys every HTTP source shares, and old key names answered with the new one."""

from __future__ import annotations

import pytest

from deploy_fetcher.config import HttpSourceConfig, parse_config
from deploy_fetcher.errors import ConfigError
from deploy_fetcher.plugins import load_sink


class _Plugin:
    config_model = HttpSourceConfig


def _parse(source: str) -> object:
    text = f"sources:\n  - {{name: ci, provider: any, {source}}}\n"
    return parse_config(
        text, environ={}, provider_resolver=lambda _name: _Plugin, sink_resolver=load_sink
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("verify_tls: false", "tls_verify"),
        ("verify: false", "tls_verify"),
        ("max_retries: 2", "retries"),
        ("max_wait: 30s", "max_rate_limit_wait"),
    ],
)
def test_an_old_key_name_is_answered_with_the_new_one(old: str, new: str) -> None:
    """A renamed key is refused at its YAML path with the name that replaced it."""
    with pytest.raises(ConfigError) as caught:
        _parse(old)
    key = old.split(":", maxsplit=1)[0]
    assert f"<string>: sources[0].{key}: renamed key (did you mean '{new}'?)" == str(caught.value)


def test_the_shared_keys_have_their_defaults() -> None:
    """The timeout falls back on defaults.timeout; the byte cap is 16 MiB."""
    config = _parse("retries: 2")
    source = config.sources[0]  # type: ignore[attr-defined]
    assert (None, 2, True, None, 16 * 1024 * 1024) == (
        source.timeout,
        source.retries,
        source.tls_verify,
        source.ca_bundle,
        source.max_response_size,
    )


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ("max_response_size: 12", "must be at least 1KiB"),
        ("ca_bundle: /nonexistent/ca.pem", "is not a readable file"),
    ],
)
def test_bad_shared_keys_are_refused(keys: str, words: str) -> None:
    """A byte cap below one KiB or a CA bundle that is not a file fail at load time."""
    with pytest.raises(ConfigError, match=words):
        _parse(keys)

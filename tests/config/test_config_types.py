"""The value types plugins use (``Url``) and the scope digest adapters keep in cursors."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from deploy_fetcher.config import SecretStr, SourceConfig, Url, config_digest, parse_duration


class _Endpoint(BaseModel):
    url: Url


@pytest.mark.parametrize(
    "url",
    [
        "https://api.github.com",
        "https://gitlab.example.com/",
        "http://127.0.0.1:8080/api/v4",
        "https://dev.azure.com/org",
        "HTTPS://EXAMPLE.COM/Path",
    ],
)
def test_url_is_kept_as_written(url):
    """A valid http(s) URL is kept exactly, trailing slash or not."""
    assert url == _Endpoint(url=url).url


def test_url_surrounding_whitespace_is_stripped():
    """Whitespace around the URL (a YAML block scalar's newline) is removed."""
    assert "https://x.test" == _Endpoint(url=" https://x.test\n").url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.com",
        "example.com",
        "/api/v4",
        "https://",
        "https://exa mple.com",
        "http://x.test:99999",
        "http://x.test:0",
        "",
        "https://x.test/\x00",
    ],
)
def test_bad_url_is_refused(url):
    """Anything but an absolute http(s) URL with a host is refused with one message."""
    with pytest.raises(ValidationError) as caught:
        _Endpoint(url=url)
    assert "Value error, not an http(s) URL" == caught.value.errors()[0]["msg"]


def test_non_string_url_is_refused():
    """A number or list is not a URL either."""
    with pytest.raises(ValidationError) as caught:
        _Endpoint(url=8080)
    assert "Value error, not an http(s) URL" == caught.value.errors()[0]["msg"]


def test_url_with_credentials_is_refused():
    """Credentials inside a URL are refused: URLs are logged, secrets must not be."""
    with pytest.raises(ValidationError) as caught:
        _Endpoint(url="https://me:pw@x.test")
    message = caught.value.errors()[0]["msg"]
    assert (True, False) == ("credentials inside a URL are not allowed" in message, "pw" in message)


def test_bad_url_through_the_loader(load):
    """In a file, a bad URL is reported at its path with the plain message."""
    error = load.error("sinks:\n  - {name: a, type: hook, url: 'ftp://x.test'}\n")
    assert ("sinks[0].url", "not an http(s) URL") == (error.path, error.message)


class _Scoped(SourceConfig):
    repos: list[str]
    environments: list[str] = []
    token: SecretStr | None = None
    page_size: int = 100


class _Tuned(_Scoped):
    unscoped_keys = SourceConfig.unscoped_keys | {"page_size"}


def _scoped(**changes) -> _Scoped:
    base = {"name": "a", "provider": "p", "repos": ["o/r"]}
    return _Scoped(**(base | changes))


def test_digest_is_short_and_stable():
    """The digest is 12 hex characters, equal for equal configurations."""
    digest = config_digest(_scoped())
    assert (12, digest) == (len(digest), config_digest(_scoped()))


def test_digest_changes_with_the_scope():
    """Changing what the source reads changes the digest."""
    assert config_digest(_scoped()) != config_digest(_scoped(environments=["prod"]))


@pytest.mark.parametrize(
    "change",
    [
        {"interval": timedelta(minutes=5)},
        {"jitter": timedelta(seconds=1)},
        {"lookback": timedelta(days=30)},
        {"overlap": timedelta(minutes=1)},
        {"enabled": False},
        {"sinks": ["dash"]},
        {"name": "renamed"},
        {"token": "rotated"},
    ],
)
def test_digest_ignores_keys_outside_the_scope(change):
    """Scheduling keys, the sinks fed and secrets do not change the digest."""
    assert config_digest(_scoped()) == config_digest(_scoped(**change))


def test_plugins_may_leave_more_keys_out():
    """A plugin can declare its own keys outside the scope through unscoped_keys."""
    base = {"name": "a", "provider": "p", "repos": ["o/r"]}
    assert config_digest(_Tuned(**base)) == config_digest(_Tuned(**base, page_size=10))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (10**400, "a duration cannot be longer than 100 years"),
        (86_400_000_000_000, "a duration cannot be longer than 100 years"),
        ("9" * 400 + "d", "a duration cannot be longer than 100 years"),
        (float("inf"), "a duration cannot be longer than 100 years"),
        (float("nan"), "not a duration: nan"),
        (-5, "a duration cannot be negative: -5"),
    ],
)
def test_out_of_range_durations_are_refused(value, message):
    """Durations beyond any sane bound are refused with a ValueError, never an overflow."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(value)


def test_durations_in_range_are_parsed():
    """Numbers are seconds; units combine."""
    assert [timedelta(seconds=90), timedelta(seconds=2.5), timedelta(hours=1, minutes=30)] == [
        parse_duration(90),
        parse_duration(2.5),
        parse_duration("1h30m"),
    ]

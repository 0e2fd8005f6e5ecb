"""The state section's PostgreSQL keys: a URL that is a secret, needed by and only by its backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy_fetcher.config import parse_config
from deploy_fetcher.errors import ConfigError

URL = "postgresql://fetcher:Pg-S3cret-value@db.internal:5432/fetcher"


def test_the_url_may_come_from_a_variable_and_stays_secret(resolvers: dict[str, Any]) -> None:
    """`url: ${VAR}` is read from the environment and kept as a secret (its repr hides it)."""
    config = parse_config(
        "state:\n  backend: postgres\n  url: ${STATE_URL}\n",
        environ={"STATE_URL": URL},
        **resolvers,
    )

    assert URL == config.state.url.get_secret_value()  # type: ignore[union-attr]
    assert "Pg-S3cret-value" not in repr(config.state)


def test_the_url_may_come_from_a_file(tmp_path: Path, resolvers: dict[str, Any]) -> None:
    """`url_file` names a file holding the URL (a Kubernetes or Docker secret)."""
    secret = tmp_path / "state-url"
    secret.write_text(URL + "\n", encoding="utf-8")

    config = parse_config(
        f"state:\n  backend: postgres\n  url_file: {secret}\n", environ={}, **resolvers
    )

    assert URL == config.state.url.get_secret_value()  # type: ignore[union-attr]


def test_the_url_may_come_from_the_state_override_variable(resolvers: dict[str, Any]) -> None:
    """FETCHER_STATE__BACKEND and FETCHER_STATE__URL switch a file's state to PostgreSQL."""
    config = parse_config(
        "state:\n  path: /tmp/x.db\n",
        environ={"FETCHER_STATE__BACKEND": "postgres", "FETCHER_STATE__URL": URL},
        **resolvers,
    )

    assert ("postgres", URL) == (config.state.backend, config.state.url.get_secret_value())  # type: ignore[union-attr]


def test_backend_postgres_without_a_url_names_the_key(resolvers: dict[str, Any]) -> None:
    """The postgres backend needs state.url; the error names it."""
    with pytest.raises(ConfigError, match=r"state\.url: backend postgres needs the database URL"):
        parse_config("state:\n  backend: postgres\n", environ={}, **resolvers)


def test_a_url_with_another_backend_is_refused(resolvers: dict[str, Any]) -> None:
    """A url under the sqlite backend is a mistake worth saying (it would be silently unused)."""
    with pytest.raises(ConfigError, match=r"state\.url: only used with backend postgres"):
        parse_config(f"state:\n  url: {URL}\n", environ={}, **resolvers)


def test_a_url_that_is_not_postgresql_is_refused_without_echoing_it(
    resolvers: dict[str, Any],
) -> None:
    """Another scheme is refused, and the message never shows the value (it holds a password)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "state:\n  backend: postgres\n  url: mysql://u:Pg-S3cret-value@h/db\n",
            environ={},
            **resolvers,
        )

    assert "state.url: not a PostgreSQL URL" in str(caught.value)
    assert "Pg-S3cret-value" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://fetcher:pw@db-1:5432,db-2:5432/fetcher?target_session_attrs=read-write",
        "postgres://fetcher@db-1,db-2,db-3/fetcher",
        "postgresql://fetcher:pw@[2001:db8::1]:5432,[2001:db8::2]:5433/fetcher",
    ],
)
def test_a_url_with_several_hosts_is_accepted_as_libpq_does(
    url: str, resolvers: dict[str, Any]
) -> None:
    """Several hosts, tried in turn by libpq (a primary and its standbys): the URL is taken as given."""
    config = parse_config(
        "state:\n  backend: postgres\n  url: ${STATE_URL}\n",
        environ={"STATE_URL": url},
        **resolvers,
    )

    assert url == config.state.url.get_secret_value()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "url", ["postgresql://u:pw@db-1:5432,db-2:port/x", "postgresql://u:pw@[2001:db8::1/x"]
)
def test_a_host_list_with_a_bad_entry_is_refused(url: str, resolvers: dict[str, Any]) -> None:
    """One malformed host or port in the list is refused like any bad URL, without echoing it."""
    with pytest.raises(ConfigError, match=r"state\.url: not a PostgreSQL URL") as caught:
        parse_config(
            "state:\n  backend: postgres\n  url: ${STATE_URL}\n",
            environ={"STATE_URL": url},
            **resolvers,
        )

    assert "pw" not in str(caught.value).replace("password", "")

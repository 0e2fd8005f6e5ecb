"""The public surface of ``deploy_fetcher.config``."""

from __future__ import annotations

from deploy_fetcher import config


def test_all_names_resolve():
    """Every name in __all__ exists, and the loader's entry points are among them."""
    missing = [name for name in config.__all__ if not hasattr(config, name)]
    expected = {"load_config", "parse_config", "config_digest", "Url", "Duration", "SecretStr"}
    assert ([], set()) == (missing, expected - set(config.__all__))

"""Suite-wide options: ``--run-slow`` runs the long variants (marker ``slow``) that CI leaves out.

The option lives here, at the top of the test tree, because pytest only accepts options registered
by the conftest files it loads before parsing the command line.
"""

from __future__ import annotations

import pytest

# A real PostgreSQL server for the tests that need one (``postgres_cluster``, ``pg_url``).
pytest_plugins = ["tests.postgres"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the long variants marked slow (the 30-kill run, minutes-long outages)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="a long variant: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

"""Suite-wide options and the fixtures several test packages share.

``--run-slow`` runs the long variants (marker ``slow``) that CI leaves out. The option lives here, at
the top of the test tree, because pytest only accepts options registered by the conftest files it
loads before parsing the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.store import SqliteStore
from tests.store.factories import FakeClock
from tests.support import DASHBOARD_CONTROL_KEY, DASHBOARD_KEY

# A real PostgreSQL server for the tests that need one (``postgres_cluster``, ``pg_url``).
pytest_plugins = ["tests.postgres"]

#: The suite's own plugin modules (``scripted_faults``, ``json_list``), importable by every test.
sys.path.append(str(Path(__file__).parent / "plugins"))
#: Their distribution (entry points ``scripted-faults``, ``json-list``): see :func:`test_plugins`.
TEST_PLUGIN_REGISTRY = Path(__file__).parent / "plugins" / "registry"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the long variants marked slow (the 30-kill run, minutes-long outages)",
    )


#: Where the longest tests live (each tens of seconds of daemons, kills and outages). They are
#: collected first so that, with the suite spread over several processes, none of them starts last
#: and leaves the other processes idle while it runs alone.
LONG_FIRST = (
    "tests/stress/",
    "tests/replicas/",
    "tests/test_demo.py",
    "tests/e2e/",
    "tests/config/test_config_properties.py",
)


def _long_first(item: pytest.Item) -> bool:
    path = Path(str(item.path)).relative_to(Path(__file__).parent.parent).as_posix()
    return not path.startswith(LONG_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_long_first)  # stable: the order within each group stays the files' order
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="a long variant: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def test_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the suite's own providers (``scripted-faults``, ``json-list``) for one test.

    Only for the tests that use them: everywhere else the installed plugins are the shipped ones,
    so what enumerates plugins (the config schema, the configuration reference) is unchanged.
    """
    monkeypatch.syspath_prepend(str(TEST_PLUGIN_REGISTRY))


@pytest.fixture
def dashboard() -> Iterator[DashboardEmulator]:
    """A Deployment Dashboard emulator (ingest and control keys from tests.support, pings at 0.2 s)."""
    emulator = DashboardEmulator(
        api_key=DASHBOARD_KEY, control_api_key=DASHBOARD_CONTROL_KEY, ping_interval=0.2
    )
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A state store on a fresh SQLite file."""
    opened = SqliteStore(tmp_path / "state.db")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand (``advance()``), for stores and their wrappers."""
    return FakeClock()


@pytest.fixture
def make_event() -> Callable[..., DeployEvent]:
    """A factory of events with every field set (a GitHub success); keywords override fields."""

    def make(**overrides: Any) -> DeployEvent:
        fields: dict[str, Any] = {
            "deployment_id": "gh-1001",
            "service": "checkout",
            "environment": "prod",
            "status": "success",
            "happened_at": "2026-01-31T12:00:00Z",
            "version": "v1.2.3",
            "run_url": "https://github.com/octo/checkout/actions/runs/1001",
            "run_number": 42,
            "actor": "octocat",
            "ref": "refs/heads/main",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "provider": "github",
            "source": "octo-github",
            "metadata": {"repo": "octo/checkout", "repo_name": "checkout", "branch": "main"},
        }
        fields.update(overrides)
        return DeployEvent(**fields)

    return make

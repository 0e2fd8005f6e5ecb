"""Fixtures for engine tests: a real SQLite store, a provider context."""

from __future__ import annotations

import pytest

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def context():
    return ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())

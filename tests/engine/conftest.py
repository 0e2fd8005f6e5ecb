"""Fixtures for engine tests: a provider context (the SQLite store is the suite's ``store``)."""

from __future__ import annotations

import pytest

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext


@pytest.fixture
def context():
    return ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())

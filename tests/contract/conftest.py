"""The contract suites run over the suite's own providers too (``scripted-faults``, ``json-list``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _registered_test_plugins(test_plugins: None) -> None:
    """Every contract test sees the test plugins' entry points."""

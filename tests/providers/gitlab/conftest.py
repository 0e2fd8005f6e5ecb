"""Fixtures for the GitLab adapter tests: an emulator on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.providers.gitlab.support import START, TOKEN

from deploy_fetcher.emulators.gitlab import GitLabEmulator


@pytest.fixture
def emulator() -> Iterator[GitLabEmulator]:
    server = GitLabEmulator(token=TOKEN, scenario="empty", seed=7, start=START)
    server.add_project("acme/api")
    with server:
        yield server

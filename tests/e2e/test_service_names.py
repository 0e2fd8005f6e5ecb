"""A mixed configuration names one service once: the real CLI over the three CI emulators.

GitHub's ``octo/api``, GitLab's ``acme/api`` and the Azure DevOps pipeline building the repository
``api`` deploy the same service; with the default rule every event of the three lands on ``api``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support import run_cli, write_config

from deploy_fetcher.emulators import EmulatorServer
from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator
from deploy_fetcher.emulators.azure_devops import demo_source as azure_source
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.emulators.github import demo_source as github_source
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.emulators.gitlab import demo_source as gitlab_source


@pytest.fixture(scope="module")
def sources() -> Iterator[list[dict[str, Any]]]:
    """The three emulators (demo scenarios) and a ``sources[]`` entry for each, no service keys."""
    started: list[EmulatorServer] = []
    entries = []
    for emulator, entry in (
        (GitHubEmulator(), github_source),
        (GitLabEmulator(), gitlab_source),
        (AzureDevOpsEmulator(), azure_source),
    ):
        entries.append(entry(emulator.start()))
        started.append(emulator)
    yield entries
    for emulator in started:
        emulator.stop()


def _services(tmp_path: Path, sources: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Service → the providers it has events from, as `fetcher sync --dry-run` would send them."""
    config = write_config(
        tmp_path / "config.yaml",
        {
            "state": {"path": str(tmp_path / "state.db")},
            "sinks": [{"name": "out", "type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
            "sources": sources,
        },
    )
    result = run_cli("sync", "--dry-run", "--since", "1d", "--config", str(config), timeout=120)
    assert 0 == result.returncode, result.stderr[-2000:]
    found: dict[str, set[str]] = defaultdict(set)
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            found[event["service"]].add(event["provider"])
    return dict(found)


def test_one_repository_name_on_three_ci_systems_is_one_service(tmp_path, sources):
    """Api and web get events from GitHub, GitLab and Azure DevOps; no workflow name appears."""
    found = _services(tmp_path, sources)
    assert {
        "api": {"github", "gitlab", "azure-devops"},
        "web": {"github", "gitlab", "azure-devops"},
        "legacy": {"github"},
        "billing": {"gitlab"},
        "cli": {"gitlab"},
        "worker": {"azure-devops"},
    } == found


def test_the_earlier_github_names_are_one_key_away(tmp_path, sources):
    """``service: "{workflow}"`` on the GitHub source gives the workflow names back, there only."""
    github, *others = sources
    found = _services(tmp_path, [{**github, "service": "{workflow}"}, *others])
    from_github = {service for service, providers in found.items() if "github" in providers}
    assert ({"Deploy API", "Deploy Web", "Release"}, {"gitlab", "azure-devops"}) == (
        from_github & {"Deploy API", "Deploy Web", "Release"},
        found["api"] - {"github"},
    )

"""A local GitHub for tests, benchmarks and the demo (see :mod:`.server`)."""

from __future__ import annotations

from typing import Any

from deploy_fetcher.emulators.github.scenario import (
    Pipeline,
    RepoSpec,
    Scenario,
    WorkflowSpec,
    start_pipeline,
)
from deploy_fetcher.emulators.github.server import GitHubEmulator

__all__ = [
    "GitHubEmulator",
    "Pipeline",
    "RepoSpec",
    "Scenario",
    "WorkflowSpec",
    "demo_source",
    "start_pipeline",
]


def demo_source(
    base_url: str,
    *,
    name: str = "github-demo",
    token: str = "emulator-token",  # noqa: S107 - the emulator's test token
) -> dict[str, Any]:
    """The ``sources[]`` entry that points the daemon at an emulator serving the ``demo`` scenario.

    Every ``octo`` repository is taken (``octo/*``, so discovery runs too); ``octo/legacy``, whose
    release workflow uses no environments, is read in workflow-runs mode.
    """
    return {
        "name": name,
        "provider": "github",
        "token": token,
        "base_url": base_url.rstrip("/"),
        "repos": [
            "octo/*",
            {
                "repo": "octo/legacy",
                "mode": "workflow_runs",
                "workflows": ["release.yml"],
                "environment": "production",
            },
        ],
        "interval": "5s",
        "lookback": "1d",
    }

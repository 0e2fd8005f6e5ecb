"""An emulated GitLab (REST v4) for tests, benchmarks and the demo."""

from __future__ import annotations

from typing import Any

from deploy_fetcher.emulators.gitlab.scenario import SCENARIOS, Scenario
from deploy_fetcher.emulators.gitlab.server import GitLabEmulator

__all__ = ["SCENARIOS", "Emulator", "GitLabEmulator", "Scenario", "demo_source"]

#: The name every bundled emulator module offers (the demo starts ``module.Emulator()``).
Emulator = GitLabEmulator

#: The token the emulator accepts unless told otherwise.
DEMO_TOKEN = "emulator-token"  # noqa: S105 - the emulator's public demo credential


def demo_source(base_url: str, *, name: str = "gitlab-demo") -> dict[str, Any]:
    """The ``sources[]`` entry that points the daemon at an emulator running the demo scenario.

    ``base_url`` is the emulator's address, with its path prefix when it was started with one.
    Every project of group ``acme`` is read through its deployments, except ``acme/tools/cli``,
    which deploys without GitLab environments and is read through its pipelines.
    """
    return {
        "name": name,
        "provider": "gitlab",
        "url": base_url.rstrip("/"),
        "token": DEMO_TOKEN,
        "projects": [
            "acme/*",
            {
                "project": "acme/tools/cli",
                "mode": "pipelines",
                "pipelines": {"refs": ["main", "v*"], "job_pattern": "deploy*"},
            },
        ],
    }

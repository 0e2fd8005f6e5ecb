"""The Azure DevOps emulator: organization, environments, pipelines and classic releases over HTTP."""

from __future__ import annotations

from typing import Any

from deploy_fetcher.emulators.azure_devops.scenario import Scenario
from deploy_fetcher.emulators.azure_devops.server import RELEASE_PREFIX, AzureDevOpsEmulator

__all__ = ["AzureDevOpsEmulator", "Scenario", "demo_source"]

#: The token the emulator accepts unless told otherwise.
DEMO_TOKEN = "emulator-token"  # noqa: S105 - a well-known token for a local emulator


def demo_source(base_url: str, *, name: str = "azure_devops-demo") -> dict[str, Any]:
    """The ``sources[]`` entry that points the daemon at an emulator serving the demo scenario."""
    base = base_url.rstrip("/")
    return {
        "name": name,
        "provider": "azure-devops",
        "organization_url": f"{base}/contoso",
        "release_url": f"{base}{RELEASE_PREFIX}/contoso",
        "projects": ["shop"],
        "pat": DEMO_TOKEN,
        "mode": "environments",
    }

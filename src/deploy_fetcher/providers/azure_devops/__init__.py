"""Azure DevOps provider adapter, registered as ``azure-devops``.

Three modes over the REST API 7.1: YAML environments (deployment records plus approvals), YAML
stages mapped to environments, and classic Release Management deployments. See
``docs/providers/azure_devops.md``.
"""

from deploy_fetcher.providers.azure_devops.adapter import AzureDevOpsProvider
from deploy_fetcher.providers.azure_devops.config import AzureDevOpsConfig

__all__ = ["AzureDevOpsConfig", "AzureDevOpsProvider"]

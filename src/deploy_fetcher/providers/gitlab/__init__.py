"""GitLab provider: deployments (or pipelines) of gitlab.com and self-managed projects."""

from deploy_fetcher.providers.gitlab.adapter import GitLabProvider
from deploy_fetcher.providers.gitlab.config import (
    GitLabSourceConfig,
    PipelineSettings,
    ProjectEntry,
)

__all__ = ["GitLabProvider", "GitLabSourceConfig", "PipelineSettings", "ProjectEntry"]

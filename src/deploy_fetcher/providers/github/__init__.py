"""GitHub Actions: deployments (and their statuses) or workflow runs, through PyGithub."""

from deploy_fetcher.providers.github.adapter import GitHubProvider
from deploy_fetcher.providers.github.config import AppCredentials, GitHubConfig, RepoEntry

__all__ = ["AppCredentials", "GitHubConfig", "GitHubProvider", "RepoEntry"]

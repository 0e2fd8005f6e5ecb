"""Sources of one GitHub credential share its caches; another credential has its own."""

from __future__ import annotations

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.github import GitHubConfig, GitHubProvider


def _provider(context: ProviderContext, name: str, token: str) -> GitHubProvider:
    config = GitHubConfig.model_validate(
        {
            "name": name,
            "provider": "github",
            "token": token,
            "base_url": "http://127.0.0.1:9",
            "repos": [f"octo/{name}"],
        }
    )
    return GitHubProvider(config, context)


def test_sources_of_one_token_share_one_set_of_caches() -> None:
    """Two sources on one token share their run caches; a third on another token does not."""
    context = ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())
    try:
        first = _provider(context, "api", "token-one-0123")
        second = _provider(context, "web", "token-one-0123")
        other = _provider(context, "ops", "token-two-4567")
        assert (True, False) == (
            first.lookups is second.lookups,
            first.lookups is other.lookups,
        )
    finally:
        context.shared.close()


def test_the_secondary_limit_is_the_credentials_allowance() -> None:
    """github.com: 900 REST points a minute; Enterprise Server: none unless secondary_limit says."""
    context = ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())

    def allowance(**keys: object) -> list[float]:
        config = GitHubConfig.model_validate(
            {"name": "gh", "provider": "github", "repos": ["octo/api"]} | keys
        )
        quota = GitHubProvider(config, context).request_quota
        return [a.per_minute for a in quota.allowance()]

    try:
        assert ([900], [], [300]) == (
            allowance(token="token-com-0123", base_url="https://api.github.com"),
            allowance(token="token-ghe-0123", base_url="https://ghe.example.com/api/v3"),
            allowance(
                token="token-ghe-4567",
                base_url="https://ghe.example.com/api/v3",
                secondary_limit=300,
            ),
        )
    finally:
        context.shared.close()

"""Validation of a GitLab source's configuration: loud failures at load time."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.gitlab import GitLabSourceConfig
from deploy_fetcher.providers.gitlab.client import shared_client

BASE = {"name": "gl", "provider": "gitlab", "token": "glpat-secret-value", "projects": ["g/api"]}


def validate(**changes):
    return GitLabSourceConfig.model_validate({**BASE, **changes})


def test_projects_accept_paths_ids_wildcards_and_overrides():
    """Entries may be a path, a numeric id, group/* or an object with overrides."""
    config = validate(
        projects=["g/api", 1234, "g/sub/*", {"project": "g/cli", "mode": "pipelines"}],
    )
    shapes = [(e.project, e.is_group, e.mode) for e in config.projects]
    assert [
        ("g/api", False, None),
        ("1234", False, None),
        ("g/sub/*", True, None),
        ("g/cli", False, "pipelines"),
    ] == shapes


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"projects": ["g/*/api"]}, "wildcard must be a whole last segment"),
        ({"projects": []}, "at least 1 item"),
        ({"url": "https://gitlab.example.com/api/v4"}, "without /api/v4"),
        ({"url": "ftp://gitlab.example.com"}, "http"),
        ({"url": "https://user:pw@gitlab.example.com"}, "credentials"),
        ({"service": "{project_path}-{colour}"}, "unknown field"),
        ({"projects": [{"project": "g/cli", "mode": "pipelines", "service": "{job}"}]}, "job"),
        ({"pipelines": {"environment": "{stage}"}}, "unknown field"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "not a readable file"),
        ({"token": "   "}, "must not be empty"),
        ({"page_size": 500}, "less than or equal to 100"),
        ({"projetcs": ["g/api"]}, "Extra inputs"),
    ],
)
def test_bad_values_fail_at_load_time(changes, message):
    """Typos and impossible values are refused with a message naming the problem."""
    with pytest.raises(ValidationError, match=message):
        validate(**changes)


def test_token_never_shows_in_repr_or_dump():
    """The token is a secret: absent from repr and from a JSON dump."""
    config = validate()
    assert "glpat-secret-value" not in repr(config) + config.model_dump_json()


def test_token_can_come_from_a_file(tmp_path):
    """token_file reads the secret from a mounted file, stripped."""
    secret = tmp_path / "token"
    secret.write_text("glpat-from-file\n")
    data = {k: v for k, v in BASE.items() if k != "token"}
    config = GitLabSourceConfig.model_validate({**data, "token_file": str(secret)})
    assert "glpat-from-file" == config.token.get_secret_value()


def test_ca_bundle_and_disabled_verification_exclude_each_other(tmp_path):
    """A CA bundle with tls_verify: false is contradictory and refused."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValidationError, match="either ca_bundle or tls_verify"):
        validate(ca_bundle=str(bundle), tls_verify=False)


def test_url_keeps_a_self_managed_path_prefix():
    """A self-managed instance's path prefix is kept; a trailing slash is dropped."""
    assert "https://git.example.com/gitlab" == validate(url="https://git.example.com/gitlab/").url


@pytest.mark.parametrize(
    ("changes", "per_minute"),
    [
        ({"url": "https://gitlab.com"}, [2000]),
        ({"url": "https://gitlab.com", "request_budget": 600}, [600]),
        ({"url": "https://gitlab.example.com"}, []),
    ],
)
def test_the_per_minute_limit_is_the_credentials_allowance(changes, per_minute):
    """GitLab.com's 2 000 requests a minute per user, or request_budget; none known elsewhere."""
    context = ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())
    try:
        quota = shared_client(validate(**changes), context).policy.quota
        assert quota is not None
        assert per_minute == [a.per_minute for a in quota.allowance()]
    finally:
        context.shared.close()

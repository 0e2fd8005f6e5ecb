"""Configuration, credentials, throttling arithmetic and selection helpers."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import ValidationError

from deploy_fetcher.errors import AuthError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers.azure_devops.auth import BearerFileAuth, PatAuth
from deploy_fetcher.providers.azure_devops.config import AzureDevOpsConfig, derive_release_url
from deploy_fetcher.providers.azure_devops.selection import PipelineFilter, StageResolver
from deploy_fetcher.providers.kit import Quota

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BASE = {
    "name": "ado",
    "provider": "azure-devops",
    "organization_url": "https://dev.azure.com/contoso",
    "projects": ["shop"],
    "pat": "secret-pat-value",
}


@pytest.mark.parametrize(
    ("organization_url", "expected"),
    [
        ("https://dev.azure.com/contoso", "https://vsrm.dev.azure.com/contoso"),
        ("https://contoso.visualstudio.com", "https://contoso.vsrm.visualstudio.com"),
        (
            "https://tfs.example.com/tfs/DefaultCollection",
            "https://tfs.example.com/tfs/DefaultCollection",
        ),
    ],
)
def test_release_host_is_derived(organization_url, expected):
    """Services use the vsrm host; Server serves releases from the collection URL."""
    assert expected == derive_release_url(organization_url)


def test_defaults_and_derived_values():
    """Mode environments, the derived release URL, and the organization's name."""
    config = AzureDevOpsConfig.model_validate(BASE)
    assert ("environments", "https://vsrm.dev.azure.com/contoso", "contoso", "build_number") == (
        config.mode,
        config.effective_release_url,
        config.organization,
        config.effective_version_from,
    )


def test_release_mode_defaults_to_the_release_name():
    """In mode releases the version is the release name unless configured."""
    config = AzureDevOpsConfig.model_validate({**BASE, "mode": "releases"})
    assert "release_name" == config.effective_version_from


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pat": None}, "exactly one credential"),
        ({"bearer_token_file": "/run/token"}, "exactly one credential"),
        ({"organization_url": "ftp://x"}, "http"),
        ({"organization_url": "https://user:pw@dev.azure.com/contoso"}, "credentials inside a URL"),
        ({"stage_pattern": "(unclosed"}, "regular expression"),
        ({"projects": []}, "at least 1"),
        ({"projects": ["a", "a"]}, "listed twice"),
        ({"mode": "pipelines"}, "mode"),
        ({"api_version": "7.1-preview.1"}, "7.1"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_bad_configuration_fails_loudly(changes, message):
    """Typos and contradictions fail at start-up with a message naming the problem."""
    with pytest.raises(ValidationError, match=message):
        AzureDevOpsConfig.model_validate({**BASE, **changes})


def test_pat_can_come_from_a_file(tmp_path):
    """pat_file reads the PAT (the core's secret-file support)."""
    (tmp_path / "pat").write_text("from-file\n", encoding="utf-8")
    data = {k: v for k, v in BASE.items() if k != "pat"}
    config = AzureDevOpsConfig.model_validate({**data, "pat_file": str(tmp_path / "pat")})
    assert config.pat is not None
    assert "from-file" == config.pat.get_secret_value()


def test_the_pat_never_shows_in_repr():
    """Neither the config nor the credential prints the secret."""
    config = AzureDevOpsConfig.model_validate(BASE)
    credential = PatAuth("secret-pat-value")
    assert (False, False) == (
        "secret-pat-value" in repr(config),
        "secret-pat-value" in repr(credential),
    )


def test_pat_header():
    """Basic auth with an empty user name."""
    expected = "Basic " + base64.b64encode(b":abc").decode()
    assert expected == PatAuth("abc").header()


def test_missing_bearer_file_is_an_auth_error(tmp_path):
    """A bearer token file that is gone is a credential problem, named by its path."""
    with pytest.raises(AuthError, match="bearer_token_file"):
        BearerFileAuth(tmp_path / "missing").header()


def test_empty_bearer_file_is_an_auth_error(tmp_path):
    """An empty token file is refused rather than sent."""
    (tmp_path / "t").write_text("\n", encoding="utf-8")
    with pytest.raises(AuthError, match="empty"):
        BearerFileAuth(tmp_path / "t").header()


def _quota() -> Quota:
    return Quota(
        provider="azure-devops",
        label="ado",
        metrics=Metrics(),
        clock=lambda: NOW,
        low_water=0.1,
        max_pause=60,
    )


def _headers(remaining: float, reset_in: float) -> dict[str, str]:
    return {
        "x-ratelimit-resource": "ATCPU/User",
        "x-ratelimit-delay": "0.250",
        "x-ratelimit-limit": "200",
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(int(NOW.timestamp() + reset_in)),
        "date": format_datetime(NOW, usegmt=True),
    }


def test_rate_limit_headers_are_read():
    """X-RateLimit-Limit, -Remaining and -Reset (against the answer's Date) become the figures."""
    quota = _quota()
    quota.observe(200, _headers(12.5, 60), resource="ATCPU/User")
    figures = quota.figures("ATCPU/User")
    assert (200, 12, NOW + timedelta(seconds=60)) == (
        figures.limit,
        figures.remaining,
        figures.reset,
    )


@pytest.mark.parametrize(
    ("remaining", "reset_in", "expected"),
    [
        (150, 60, 0.0),  # plenty left
        (10, 120, 12.0),  # spread 120 s over 10 units
        (0, 300, 60.0),  # capped at max_rate_limit_wait
        (15, 5, 1.0),  # at least one second
    ],
)
def test_pause_spreads_the_remaining_budget(remaining, reset_in, expected):
    """Below the low-water mark the remaining budget is spread until the reset."""
    quota = _quota()
    quota.observe(200, _headers(remaining, reset_in))
    blocked = quota.check()
    pause = (blocked.until - NOW).total_seconds() if blocked is not None else 0.0
    assert expected == pause


def test_no_headers_means_no_limit_known():
    """Azure DevOps Server without throttling headers is never paused."""
    quota = _quota()
    quota.observe(200, {})
    assert None is quota.check()


def test_pipeline_filter_takes_ids_and_globs():
    """Numeric entries are definition ids, the rest glob patterns on names."""
    selection = PipelineFilter.parse(["12", "deploy-*"])
    assert (True, True, False, False) == (
        selection.matches(12, "anything"),
        selection.matches(99, "deploy-web"),
        selection.matches(99, "build-web"),
        selection.ids_only,
    )


def test_stage_resolver_prefers_what_records_taught_it():
    """A learned (pipeline, stage) pair beats the pattern and uses the environment's own spelling."""
    resolver = StageResolver(
        mapping={},
        pattern=r"(?i)^deploy[_\- ]?(?P<environment>.+)$",
        environments=[],
        learned={"11/Ship": 3},
        environment_ids={"Production": 3, "dev": 1},
    )
    assert (("Production", 3), ("dev", 1), None) == (
        tuple(vars(resolver.resolve(11, "Ship", None)).values()),
        tuple(vars(resolver.resolve(11, "Deploy_DEV", None)).values()),
        resolver.resolve(11, "Deploy_qa", None),
    )

"""Configuration of an Azure DevOps source (one ``sources[]`` entry with ``provider: azure-devops``).

One entry covers one organization (Azure DevOps Services) or one collection (Azure DevOps Server) and
one or more of its projects; each project is a target with its own cursor. The keys describe *what*
counts as a deployment (the mode, which pipelines and environments, how stages map to environments)
and *how* events are named (service, version, run number), so that two sources never need code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from deploy_fetcher.config import Duration, HttpSourceConfig
from deploy_fetcher.providers.kit import (
    DEFAULT_SERVICE,
    OpenSetKeys,
    check_service_map,
    check_template,
)

__all__ = ["DEFAULT_STAGE_PATTERN", "SERVICE_FIELDS", "AzureDevOpsConfig", "Mode"]

Mode = Literal["environments", "stages", "releases"]

#: Stages called ``Deploy_prod``, ``deploy-staging`` or ``Deploy dev`` deploy to the named environment.
DEFAULT_STAGE_PATTERN = r"(?i)^deploy[_\- ]?(?P<environment>.+)$"

_SERVICES_HOST = "dev.azure.com"
#: Fields a ``service`` template may use.
SERVICE_FIELDS = frozenset(
    {"repo", "repo_name", "pipeline", "project", "organization", "stage", "environment"}
)


def _check_url(value: str) -> str:
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        msg = "must be an absolute http(s) URL"
        raise ValueError(msg)
    if parts.username is not None or parts.password is not None:
        msg = "credentials inside a URL are not allowed (they would end up in logs); use pat"
        raise ValueError(msg)
    return text.rstrip("/")


def derive_release_url(organization_url: str) -> str:
    """Where Release Management lives for an organization URL.

    Services serves it from its own host (``vsrm.dev.azure.com/{org}``, or ``{org}.vsrm.visualstudio.com``
    for old-style URLs); Azure DevOps Server serves it from the collection URL itself.
    """
    parts = urlsplit(organization_url)
    host = (parts.hostname or "").lower()
    if host == _SERVICES_HOST:
        return urlunsplit((parts.scheme, "vsrm." + _SERVICES_HOST, parts.path, "", ""))
    if host.endswith(".visualstudio.com") and not host.endswith(".vsrm.visualstudio.com"):
        account = host.removesuffix(".visualstudio.com")
        netloc = f"{account}.vsrm.visualstudio.com"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return organization_url


class AzureDevOpsConfig(HttpSourceConfig, OpenSetKeys):
    """An Azure DevOps organization (or Server collection) and the projects to poll in it."""

    provider: Literal["azure-devops"] = "azure-devops"
    #: ``service_template`` was the name of ``service`` (the same key on every provider now).
    deprecated_keys: ClassVar[dict[str, str]] = {"service_template": "service"}

    organization_url: str
    """``https://dev.azure.com/{org}`` on Services, the collection URL (``https://host/tfs/Coll``) on Server."""
    release_url: str | None = None
    """Base URL of Release Management (mode ``releases``); derived from organization_url when absent."""
    projects: list[str] = Field(min_length=1)
    """Project names (each one a target with its own cursor); ``"*"`` lists every visible project."""

    pat: SecretStr | None = None
    """A personal access token (sent as Basic auth); ``pat_file`` reads it from a file instead."""
    bearer_token_file: Path | None = None
    """A file holding an Entra ID access token (workload identity); re-read whenever it changes."""

    mode: Mode = "environments"
    """What counts as a deployment: environment deployment records, mapped pipeline stages, or classic releases."""
    pipelines: list[str] = []
    """Pipeline (or release) definitions to cover: numeric ids or glob patterns on names; empty = all."""
    environments: list[str] = []
    """Glob patterns on environment names to keep; empty = all."""
    stage_environments: dict[str, str] = {}
    """Stage name (identifier or display name) → environment name, checked before stage_pattern."""
    stage_pattern: str | None = DEFAULT_STAGE_PATTERN
    """Regex over stage names whose ``environment`` group names the environment; null = map only."""
    stage_parents: Literal["order", "none"] = "order"
    """Mode ``stages``: a stage's parent is the previous successful deployment stage of the run ("order")."""
    gates: bool = True
    """Mode ``environments``: also read run timelines for approvals and checks (waiting / rejected)."""

    service: str = DEFAULT_SERVICE
    """Service name template over ``repo_name`` (the run's repository, else the pipeline's name: the default), ``repo``, ``pipeline``, ``project``, ``organization``, ``stage``, ``environment``. Formerly ``service_template``."""
    service_map: dict[str, str] = {}
    """Fixed service names, winning over ``service``: keys are repositories or pipeline (release definition) names; exact keys first, then globs (``"shop-*"``)."""
    version_from: Literal["build_number", "short_sha", "release_name"] | None = None
    """Version source; default build_number (release_name in mode releases)."""
    run_number_from: Literal["run_id", "build_number"] = "run_id"
    """run_number: the run (build / release) id, or the build number when it is an integer."""

    page_size: int = Field(default=100, ge=1, le=500)
    """Items per request (``$top``); Azure DevOps caps most lists at a few hundred."""
    max_pages: int = Field(default=200, ge=1)
    """Upper bound of pages in one walk; a walk that hits it logs a warning and resumes next cycle."""
    discovery_interval: Duration | None = None
    """How long the list of environments / definitions is reused (default: defaults.discovery_interval)."""

    rate_limit_low_water: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Slow down when X-RateLimit-Remaining falls below this fraction of X-RateLimit-Limit."""
    api_version: str = "7.1"
    """REST API version; preview endpoints append their own ``-preview.N``."""

    @field_validator("organization_url", "release_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("projects")
    @classmethod
    def _projects(cls, value: list[str]) -> list[str]:
        cleaned = [item.strip() for item in value]
        if any(not item for item in cleaned):
            msg = "project names cannot be empty"
            raise ValueError(msg)
        if len(set(cleaned)) != len(cleaned):
            msg = "a project is listed twice"
            raise ValueError(msg)
        return cleaned

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        return check_template(value, SERVICE_FIELDS, what="service")

    @field_validator("service_map")
    @classmethod
    def _service_map(cls, value: dict[str, str]) -> dict[str, str]:
        return check_service_map(value)

    @field_validator("stage_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            re.compile(value)
        except re.error as exc:
            msg = f"not a regular expression: {exc}"
            raise ValueError(msg) from None
        return value

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not re.fullmatch(r"\d+\.\d+", value):
            msg = "must look like 7.1 (preview suffixes are added per endpoint)"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> AzureDevOpsConfig:
        if (self.pat is None) == (self.bearer_token_file is None):
            msg = "give exactly one credential: pat (or pat_file) or bearer_token_file"
            raise ValueError(msg)
        return self

    @property
    def effective_release_url(self) -> str:
        """The Release Management base URL, configured or derived."""
        return self.release_url or derive_release_url(self.organization_url)

    @property
    def organization(self) -> str:
        """The organization (or collection) name: the last segment of organization_url."""
        path = urlsplit(self.organization_url).path.rstrip("/")
        return path.rsplit("/", 1)[-1] or (urlsplit(self.organization_url).hostname or "")

    @property
    def effective_version_from(self) -> str:
        """The version source with the mode's default applied."""
        if self.version_from is not None:
            return self.version_from
        return "release_name" if self.mode == "releases" else "build_number"

    def scope_key(self) -> str:
        """What a cursor depends on: a different selection starts the cursor over (documented)."""
        parts = [
            self.mode,
            ",".join(self.pipelines),
            ",".join(self.environments),
            ",".join(f"{k}={v}" for k, v in sorted(self.stage_environments.items())),
            self.stage_pattern or "",
        ]
        return "|".join(parts)

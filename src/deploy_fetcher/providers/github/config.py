"""Configuration of a GitHub source: credentials, repositories and how their activity becomes events.

Settings that shape events (``mode``, ``service``, ``version`` …) can be given once for the source and
overridden per repository entry; :meth:`GitHubConfig.settings_for` resolves what applies to one repo.
An explicit ``owner/name`` entry wins over a wildcard ``owner/*`` entry that also matches it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from datetime import timedelta
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from deploy_fetcher.config import Duration, HttpSourceConfig, Section
from deploy_fetcher.providers.kit import (
    DEFAULT_SERVICE,
    OpenSetKeys,
    check_service_map,
    check_template,
)

__all__ = [
    "AppCredentials",
    "GitHubConfig",
    "Mode",
    "RepoEntry",
    "RepoSettings",
]

Mode = Literal["deployments", "workflow_runs"]

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/(\*|[A-Za-z0-9_.-]+)$")
_VERSION = re.compile(r"^(sha7|sha|ref|run_number|payload\.[A-Za-z0-9_.-]+)$")
_TEMPLATE_FIELDS = frozenset(
    {"workflow", "workflow_file", "repo", "repo_name", "owner", "branch", "environment"}
)


def _check_template(value: str) -> str:
    return check_template(value, _TEMPLATE_FIELDS)


class AppCredentials(Section):
    """A GitHub App installation: the app's id and private key, and the installation to act as."""

    app_id: int = Field(gt=0)
    #: PEM text of the app's private key; usually given as ``private_key_file``.
    private_key: SecretStr
    installation_id: int = Field(gt=0)

    @field_validator("private_key")
    @classmethod
    def _pem(cls, value: SecretStr) -> SecretStr:
        if "PRIVATE KEY" not in value.get_secret_value():
            msg = "private_key must be a PEM private key (-----BEGIN ... PRIVATE KEY-----)"
            raise ValueError(msg)
        return value


class RepoSettings(Section):
    """What can be set for the whole source and overridden per repository."""

    #: ``deployments`` reads the Deployments API; ``workflow_runs`` treats each run of the selected
    #: workflows as one deployment (for workflows that use no GitHub environments).
    mode: Mode = "deployments"
    #: Service name: a template over ``{repo_name}`` (the repository's name, the default),
    #: ``{repo}`` (``owner/name``), ``{owner}``, ``{workflow}`` (the workflow's YAML ``name:``),
    #: ``{workflow_file}``, ``{branch}``, ``{environment}``. Deployments made by other tools than
    #: Actions have no workflow: ``{workflow}`` is then the repository's name.
    service: str = DEFAULT_SERVICE
    #: Fixed service names, winning over ``service``: keys are repositories (``owner/name`` or
    #: ``name``) or workflows (YAML name or file); exact keys first, then globs (``"team-*"``).
    service_map: dict[str, str] = {}
    #: ``sha7``, ``sha``, ``ref``, ``run_number`` or ``payload.<field>`` (a deployment payload key).
    version: str = "sha7"
    #: Derive ``parent_deployments`` from the workflow's ``needs:`` graph (deployments mode).
    parents: bool = True
    #: workflow_runs mode: workflow file names (``deploy.yml``) or glob patterns over the YAML name.
    workflows: list[str] = []
    #: workflow_runs mode: branch glob patterns; empty = every branch.
    branches: list[str] = []
    #: workflow_runs mode: the environment, static or a template (``{branch}``, ``{workflow}`` …).
    environment: str = "production"
    #: workflow_runs mode: how far behind the newest run the listing reaches, so re-runs of
    #: recent runs are seen.
    rerun_window: Duration = timedelta(days=1)

    @field_validator("service", "environment")
    @classmethod
    def _template(cls, value: str) -> str:
        return _check_template(value)

    @field_validator("service_map")
    @classmethod
    def _service_map(cls, value: dict[str, str]) -> dict[str, str]:
        return check_service_map(value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION.match(value):
            msg = "must be sha7, sha, ref, run_number or payload.<field>"
            raise ValueError(msg)
        return value


class RepoEntry(RepoSettings):
    """One ``repos[]`` entry with overrides: ``{repo: owner/name, mode: workflow_runs, …}``."""

    repo: str

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not _REPO.match(value):
            msg = "must be owner/name or owner/*"
            raise ValueError(msg)
        return value


_SETTING_KEYS = tuple(RepoSettings.model_fields)


#: GitHub.com's secondary limit: REST points a minute per credential.
GITHUB_COM_SECONDARY_LIMIT = 900


def _is_github_com(base_url: str) -> bool:
    return base_url.rstrip("/").lower() in {"https://api.github.com", "http://api.github.com"}


class GitHubConfig(HttpSourceConfig, OpenSetKeys, RepoSettings):
    """A ``provider: github`` source."""

    provider: Literal["github"] = "github"
    #: A personal access token (classic or fine-grained) or any token GitHub accepts as Bearer.
    token: SecretStr | None = None
    app: AppCredentials | None = None
    #: ``https://api.github.com``, or ``https://HOST/api/v3`` for GitHub Enterprise Server.
    base_url: str = "https://api.github.com"
    #: ``owner/name`` or ``owner/*`` strings, or entries with per-repository overrides.
    repos: list[RepoEntry] = Field(min_length=1)
    #: Skip archived repositories found through ``owner/*``.
    skip_archived: bool = True
    #: Share of the hourly quota of the credential this fetcher may spend (all repos together).
    quota_share: float = Field(default=0.5, gt=0, le=1)
    #: Pause between two requests on one credential (GitHub asks integrators to call serially).
    request_interval: Duration = timedelta(0)
    #: REST points a minute the credential may spend (a request one point, a ``304`` too): GitHub's
    #: secondary limit. Default: 900 on github.com, none on Enterprise Server (whose secondary limits
    #: are off unless its admin set them; give theirs). Polling intervals stretch to stay under it.
    secondary_limit: int | None = Field(default=None, ge=1)
    #: Installation tokens are renewed this long before they expire.
    token_refresh_margin: Duration = timedelta(minutes=5)
    #: Read the statuses of many new deployments in one GraphQL query instead of one REST call each.
    graphql: bool = True
    #: Name of the credential in metrics and readiness (never the token); default: the source
    #: name, or ``app-<id>`` for an App.
    credential_name: str | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith(("https://", "http://")):
            msg = "must start with https:// (or http:// for a local emulator)"
            raise ValueError(msg)
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            msg = (
                "credentials inside the URL are not allowed (they would end up in logs); use token"
            )
            raise ValueError(msg)
        return value

    @field_validator("repos", mode="before")
    @classmethod
    def _repos(cls, value: object) -> object:
        """A plain ``owner/name`` string is an entry without overrides."""
        if isinstance(value, list):
            return [{"repo": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if (self.token is None) == (self.app is None):
            msg = "give exactly one of token (or token_file) and app"
            raise ValueError(msg)
        return self

    # -- resolution --------------------------------------------------------------------------
    @property
    def entries(self) -> list[RepoEntry]:
        """Every ``repos[]`` entry, its unset keys filled from the source's settings."""
        base = {key: getattr(self, key) for key in _SETTING_KEYS}
        return [
            RepoEntry(**{**base, **{k: getattr(item, k) for k in item.model_fields_set}})
            for item in self.repos
        ]

    @property
    def explicit_repos(self) -> list[str]:
        """Repositories named without a wildcard."""
        return [e.repo for e in self.entries if not e.repo.endswith("/*")]

    @property
    def wildcard_owners(self) -> list[str]:
        """Owners whose every repository is covered (``owner/*``)."""
        return [e.repo[:-2] for e in self.entries if e.repo.endswith("/*")]

    def settings_for(self, repo: str) -> RepoSettings:
        """The settings of one repository: its explicit entry, else the first matching wildcard."""
        entries = self.entries
        lowered = repo.lower()
        for entry in entries:
            if entry.repo.lower() == lowered:
                return entry
        for entry in entries:
            if fnmatch.fnmatchcase(lowered, entry.repo.lower()):
                return entry
        return RepoSettings(**{key: getattr(self, key) for key in _SETTING_KEYS})

    @property
    def credential_label(self) -> str:
        """How the credential is named in metrics and readiness."""
        if self.credential_name:
            return self.credential_name
        if self.app is not None:
            return f"app-{self.app.app_id}-{self.app.installation_id}"
        return self.name

    @property
    def effective_secondary_limit(self) -> int | None:
        """``secondary_limit``, or GitHub.com's 900 REST points a minute on github.com."""
        if self.secondary_limit is not None:
            return self.secondary_limit
        return GITHUB_COM_SECONDARY_LIMIT if _is_github_com(self.base_url) else None

    def credential_key(self) -> str:
        """A key that identifies the credential among shared resources (never shown anywhere)."""
        if self.app is not None:
            material = f"app:{self.base_url}:{self.app.app_id}:{self.app.installation_id}"
        else:
            assert self.token is not None  # noqa: S101 - guaranteed by _one_credential
            material = f"token:{self.base_url}:{self.token.get_secret_value()}"
        return "github:" + hashlib.sha256(material.encode()).hexdigest()


def scope_hash(settings: RepoSettings) -> str:
    """A short hash of the settings that decide which items a cursor covers.

    When the selection changes (another mode, other workflows or branches), the old cursor no longer
    describes the new scope and the repository is read again from the lookback.
    """
    material = json.dumps(
        {
            "mode": settings.mode,
            "workflows": sorted(settings.workflows),
            "branches": sorted(settings.branches),
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:12]

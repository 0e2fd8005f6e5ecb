"""Configuration of a GitLab source: the instance, the token, the projects and how to read them.

Every knob that decides *what* a project yields (mode, environment filter, pipeline selection, service,
version) can be set once for the source and overridden per ``projects[]`` entry, so one source can mix
projects that use GitLab environments with projects that only run pipelines. Templates are checked at
load time against the fields their mode offers: a typo fails ``fetcher check``, not the first poll.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from deploy_fetcher.config import HttpSourceConfig, Section
from deploy_fetcher.providers.kit import DEFAULT_SERVICE, check_service_map, check_template

__all__ = [
    "DEPLOYMENT_FIELDS",
    "PIPELINE_FIELDS",
    "PIPELINE_SERVICE_FIELDS",
    "GitLabSourceConfig",
    "Mode",
    "PipelineSettings",
    "ProjectEntry",
    "VersionFrom",
]

Mode = Literal["deployments", "pipelines"]
VersionFrom = Literal["short_sha", "sha", "ref", "tag", "pipeline_iid"]

#: Fields every template can use: ``repo`` / ``project`` (the full path ``group/sub/api``),
#: ``repo_name`` / ``project_path`` (the project's own path ``api``), ``namespace`` (``group/sub``).
_PROJECT_FIELDS: Final = frozenset({"repo", "repo_name", "project", "project_path", "namespace"})
#: Fields of a service template in ``deployments`` mode.
DEPLOYMENT_FIELDS: Final = _PROJECT_FIELDS | {"environment", "job", "stage", "ref"}
#: Fields of the environment template of ``pipelines`` mode.
PIPELINE_FIELDS: Final = _PROJECT_FIELDS | {"ref", "source", "pipeline_name"}
#: Fields of a service template in ``pipelines`` mode: the environment's too, once rendered.
PIPELINE_SERVICE_FIELDS: Final = PIPELINE_FIELDS | {"environment"}


def _check_template(template: str, allowed: frozenset[str], what: str) -> None:
    check_template(template, allowed, what=f"{what} template")


class PipelineSettings(Section):
    """How ``pipelines`` mode picks pipelines and names the environment they deploy to."""

    #: Glob patterns on the pipeline's ref (``main``, ``release/*``, ``v*``); empty = every ref.
    refs: list[str] = []
    #: Pipeline sources to keep (``push``, ``web``, ``schedule``, ``api``, ``trigger``, ``pipeline``,
    #: ``merge_request_event`` …); empty = every source.
    sources: list[str] = []
    #: Keep only pipelines with at least one job whose name matches this glob (``deploy*``).
    job_pattern: str | None = None
    #: The environment every kept pipeline deploys to: a name or a template (``"{ref}"``).
    environment: str = "production"

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        if not value.strip():
            msg = "must not be empty"
            raise ValueError(msg)
        _check_template(value, PIPELINE_FIELDS, "environment")
        return value


class _Overridable(Section):
    """Keys a source sets for all its projects and a ``projects[]`` entry may override."""

    mode: Mode | None = None
    #: ``deployments`` mode: glob patterns on environment names; empty = every environment.
    environments: list[str] | None = None
    #: Service name template (see DEPLOYMENT_FIELDS / PIPELINE_SERVICE_FIELDS), e.g. ``"{repo_name}"``.
    service: str | None = None
    #: Fixed service names by project (full path or own path), exact keys first, then globs.
    service_map: dict[str, str] | None = None
    version: VersionFrom | None = None
    pipelines: PipelineSettings | None = None

    @field_validator("service_map")
    @classmethod
    def _service_map(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else check_service_map(value)


class ProjectEntry(_Overridable):
    """One ``projects[]`` entry: a path (``group/sub/api``), a numeric id, or ``group/*``."""

    project: str

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, bool):
            return data  # let pydantic reject it
        if isinstance(data, int | str):
            return {"project": str(data)}
        if isinstance(data, dict) and isinstance(data.get("project"), int):
            return {**data, "project": str(data["project"])}
        return data

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        text = value.strip().strip("/")
        if not text:
            msg = "must be a project path, a numeric id or group/*"
            raise ValueError(msg)
        if "*" in text and (not text.endswith("/*") or "*" in text[:-2] or text == "*"):
            msg = "a wildcard must be a whole last segment: group/* or group/sub/*"
            raise ValueError(msg)
        if " " in text:
            msg = "project paths have no spaces (use the path, not the display name)"
            raise ValueError(msg)
        return text

    @property
    def is_group(self) -> bool:
        """Whether the entry stands for every project of a group (subgroups included)."""
        return self.project.endswith("/*")

    @property
    def group(self) -> str:
        """The group path of a ``group/*`` entry."""
        return self.project.removesuffix("/*")


class GitLabSourceConfig(HttpSourceConfig):
    """A GitLab instance (gitlab.com or self-managed) and the projects to read from it."""

    provider: Literal["gitlab"] = "gitlab"
    #: ``services`` was the name of ``service_map`` (the same key on every provider now).
    deprecated_keys: ClassVar[dict[str, str]] = {"services": "service_map"}
    #: The instance's address, with its path prefix when it has one (``https://host/gitlab``).
    url: str = "https://gitlab.com"
    #: A personal, project or group access token (``read_api`` scope), or an OAuth token.
    token: SecretStr
    token_type: Literal["private", "oauth"] = "private"  # noqa: S105 - a kind, not a secret
    projects: list[ProjectEntry] = Field(min_length=1)

    mode: Mode = "deployments"
    environments: list[str] = []
    #: Service name template; default: the project's own path (``api`` for ``group/sub/api``).
    service: str = DEFAULT_SERVICE
    #: Fixed service names, winning over ``service``: keys are projects (``group/sub/api`` or
    #: ``api``); exact keys first, then globs (``"group/legacy/*"``). Formerly ``services``.
    service_map: dict[str, str] = {}
    version: VersionFrom = "short_sha"
    pipelines: PipelineSettings = PipelineSettings()

    #: Items per request (GitLab caps it at 100).
    page_size: int = Field(default=100, ge=1, le=100)
    #: At most this many requests per minute to this instance, shared by every source using it.
    request_budget: int | None = Field(default=None, ge=1)
    #: Stop sending when ``RateLimit-Remaining`` falls to this (leaves room for people and other tools).
    min_remaining: int = Field(default=0, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        text = value.strip().rstrip("/")
        parts = urlsplit(text)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            msg = "must be the instance's http(s) address, e.g. https://gitlab.example.com"
            raise ValueError(msg)
        if parts.username or parts.password:
            msg = "credentials inside the URL are not allowed; use token"
            raise ValueError(msg)
        if parts.query or parts.fragment:
            msg = "must not carry a query or a fragment"
            raise ValueError(msg)
        if parts.path.rstrip("/").endswith("/api/v4"):
            msg = "give the instance's address without /api/v4 (it is added for you)"
            raise ValueError(msg)
        return text

    @field_validator("service_map")
    @classmethod
    def _service_map(cls, value: dict[str, str]) -> dict[str, str]:
        return check_service_map(value)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            msg = "must not be empty"
            raise ValueError(msg)
        return SecretStr(value.get_secret_value().strip())

    @model_validator(mode="after")
    def _templates(self) -> GitLabSourceConfig:
        for index, entry in enumerate([None, *self.projects]):
            where = "" if entry is None else f"projects[{index - 1}]: "
            mode = (entry.mode if entry else None) or self.mode
            service = (entry.service if entry else None) or self.service
            allowed = DEPLOYMENT_FIELDS if mode == "deployments" else PIPELINE_SERVICE_FIELDS
            try:
                _check_template(service, allowed, "service")
            except ValueError as exc:
                raise ValueError(f"{where}{exc} (mode {mode})") from None
        return self

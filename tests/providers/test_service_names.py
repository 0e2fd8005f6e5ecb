"""One service-name rule on every provider, shown on the real services' own payloads.

The default is the short name of what is watched: the repository on GitHub, the project's own path
on GitLab, the repository a run checked out on Azure DevOps (else its pipeline). ``service_map``
wins over the template (exact keys, then globs); a template rendering empty, or a run without the
field the default reads, falls back to that short name and never fails the item.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from tests.fixtures.real import load_real
from tests.providers.azure_devops.support import NAMING, fixture

from deploy_fetcher.providers.azure_devops.config import AzureDevOpsConfig
from deploy_fetcher.providers.azure_devops.mapping import (
    Naming,
    Skip,
    record_events,
    release_events,
)
from deploy_fetcher.providers.github.config import GitHubConfig, RepoSettings
from deploy_fetcher.providers.github.mapping import Repo, deployment_events, run_events
from deploy_fetcher.providers.gitlab.config import GitLabSourceConfig
from deploy_fetcher.providers.gitlab.mapping import (
    ProjectInfo,
    Rendering,
    parse_deployment,
    parse_pipeline,
    pipeline_events,
)
from deploy_fetcher.providers.gitlab.mapping import deployment_events as gitlab_deployment_events
from deploy_fetcher.providers.kit import DEFAULT_SERVICE, map_service

# -- the rule itself ---------------------------------------------------------------------------


def test_every_provider_defaults_to_the_repository_short_name():
    """GitHub, GitLab and Azure DevOps share one default service template, ``{repo_name}``."""
    github = GitHubConfig(name="gh", token="t0ken", repos=["octo/api"])
    gitlab = GitLabSourceConfig(name="gl", token="t0ken", projects=["acme/api"])
    azure = AzureDevOpsConfig(
        name="ado", organization_url="https://dev.azure.com/o", projects=["shop"], pat="t0ken"
    )
    assert ["{repo_name}"] * 3 == [github.service, gitlab.service, azure.service]
    assert "{repo_name}" == DEFAULT_SERVICE


@pytest.mark.parametrize(
    ("table", "subjects", "expected"),
    [
        ({"octo/api": "gateway", "octo/*": "octo"}, ["octo/api", "api"], "gateway"),
        ({"octo/*": "octo", "api": "short"}, ["octo/api", "api"], "short"),
        ({"team-*": "first", "*-api": "second"}, ["team-api"], "first"),
        ({"api": "x"}, ["octo/web", "web", None, ""], None),
        ({}, ["octo/api"], None),
    ],
)
def test_service_map_takes_exact_keys_before_globs_in_file_order(table, subjects, expected):
    """An exact key beats any glob whatever the subjects' order; globs go in file order."""
    assert expected == map_service(table, subjects)


# -- GitHub ------------------------------------------------------------------------------------
OCTO = Repo("PyGithub/PyGithub", "https://github.com")


def _run_service(settings: RepoSettings) -> str:
    run = load_real("github", "run_3881497935.json")
    (service,) = {
        e.service for e in run_events(run, repo=OCTO, source="gh", settings=settings).events
    }
    return service


def test_github_names_a_recorded_run_after_its_repository_not_its_workflow():
    """Run 3881497935 of workflow "CI" in PyGithub/PyGithub deploys the service PyGithub."""
    assert ("PyGithub", "CI") == (
        _run_service(RepoSettings(mode="workflow_runs")),
        load_real("github", "run_3881497935.json")["name"],
    )


def test_github_keeps_the_workflow_name_when_asked():
    """``service: "{workflow}"`` gives the earlier default back: the workflow's YAML name."""
    assert "CI" == _run_service(RepoSettings(mode="workflow_runs", service="{workflow}"))


@pytest.mark.parametrize(
    ("service_map", "expected"),
    [
        ({"PyGithub/PyGithub": "sdk"}, "sdk"),
        ({"PyGithub": "sdk"}, "sdk"),
        ({"CI": "ci-named"}, "ci-named"),
        ({"ci.yml": "by-file"}, "by-file"),
        ({"Py*": "glob", "CI": "exact"}, "exact"),
        ({"nothing/*": "x"}, "PyGithub"),
    ],
)
def test_github_service_map_keys_are_repositories_or_workflows(service_map, expected):
    """A key may name the repository (full or short) or the workflow (name or file)."""
    settings = RepoSettings(mode="workflow_runs", service_map=service_map)
    assert expected == _run_service(settings)


def test_github_deployment_without_a_run_or_branch_falls_back_to_the_repository():
    """The recorded deployment has no run: ``{branch}`` renders empty, the repository name stands."""
    outcome = deployment_events(
        load_real("github", "deployment_263877258.json"),
        load_real("github", "deployment_263877258_statuses.json"),
        repo=OCTO,
        source="gh",
        settings=RepoSettings(service="{branch}"),
    )
    assert {"PyGithub"} == {e.service for e in outcome.events}


# -- GitLab ------------------------------------------------------------------------------------
PROJECT = ProjectInfo("root/project", "http://gitlab.dev/root/project")


def _gitlab(name: str, **rendering: Any) -> set[str]:
    rendering.setdefault("service", GitLabSourceConfig.model_fields["service"].default)
    view = parse_deployment(load_real("gitlab", name))
    events = gitlab_deployment_events(view, Rendering(source="gl", project=PROJECT, **rendering))
    return {e.service for e in events}


def test_gitlab_names_the_documented_deployment_after_the_project_own_path():
    """The API documentation's deployment of root/project deploys the service project."""
    assert {"project"} == _gitlab("deployments_get.json")


def test_gitlab_full_path_is_one_field_away():
    """``{repo}`` is the full path, as ``{project}`` was."""
    assert {"root/project"} == _gitlab("deployments_get.json", service="{repo}")


def test_gitlab_deployment_without_a_job_falls_back_to_the_project():
    """The documented API-made deployment has no job: ``{job}`` renders empty, the project stands."""
    assert {"project"} == _gitlab("deployments_create.json", service="{job}")


def test_gitlab_pipelines_mode_service_may_name_its_environment():
    """In pipelines mode the service template sees the environment it rendered (``{ref}`` here)."""
    view = parse_pipeline(load_real("gitlab", "pipelines_get.json"))
    rendering = Rendering(
        source="gl", project=PROJECT, service="{repo_name}-{environment}", environment="{ref}"
    )
    assert {"project-main"} == {e.service for e in pipeline_events(view, rendering)}


# -- Azure DevOps ------------------------------------------------------------------------------
def _build(**repository: Any) -> dict[str, Any]:
    build = fixture("build.json")
    if repository:
        build["repository"] = {**build["repository"], **repository}
    return build


def _record(naming: Naming, build: dict[str, Any] | None) -> set[str]:
    record = fixture("environment_records.json")["value"][0]
    events = record_events(record, environment="prod", naming=naming, build=build)
    assert not isinstance(events, Skip), events
    return {e.service for e in events}


def test_azure_build_repository_follows_the_build_api_schema():
    """What the mapper reads of the fixture's ``repository`` is as the 7.1 Build API schema says."""
    specs = load_real("azure_devops", "api_7.1_schemas.json")["specs"]["build.json"]
    schema = specs["definitions"]["BuildRepository"]
    read = {key: fixture("build.json")["repository"][key] for key in ("id", "name", "type")}
    build = specs["definitions"]["Build"]["properties"]
    assert "#/definitions/BuildRepository" == build["repository"]["$ref"]
    jsonschema.validate(read, {**schema, "additionalProperties": False})


def test_azure_names_a_run_after_the_repository_it_checked_out():
    """Pipeline web of repository shop-web deploys the service shop-web."""
    build = _build()
    assert ("web", {"shop-web"}) == (build["definition"]["name"], _record(NAMING, build))


@pytest.mark.parametrize(
    "build",
    [None, {"repository": None}, {"repository": {"id": "r", "type": "TfsGit", "name": ""}}],
    ids=["no-build", "null-repository", "empty-name"],
)
def test_azure_run_without_a_repository_falls_back_to_the_pipeline(build):
    """A record whose build is gone, or a build naming no repository, deploys the pipeline's name."""
    if build is not None:
        build = {**fixture("build.json"), **build}
    assert {"web"} == _record(NAMING, build)


def test_azure_github_repository_gives_its_own_name():
    """A build of a GitHub repository names it ``owner/name``: ``{repo_name}`` is ``name``."""
    build = _build(type="GitHub", id="octo/web", name="octo/web")
    assert {"web"} == _record(NAMING, build)
    assert {"octo/web"} == _record(_naming(service_template="{repo}"), build)


def test_azure_metadata_repo_fields_mean_what_the_template_fields_mean():
    """A rule template's ``{repo}`` / ``{repo_name}`` read the same repository as ``service`` does."""
    record = fixture("environment_records.json")["value"][0]
    build = _build(type="GitHub", id="octo/web", name="octo/web")
    with_repo = record_events(record, environment="prod", naming=NAMING, build=build)
    without = record_events(record, environment="prod", naming=NAMING)
    assert not isinstance(with_repo, Skip)
    assert not isinstance(without, Skip)
    assert [("octo/web", "web"), ("web", "web")] == [
        (events[0].metadata["repo"], events[0].metadata["repo_name"])
        for events in (with_repo, without)
    ]


def _naming(**overrides: Any) -> Naming:
    base = {
        key: getattr(NAMING, key)
        for key in ("source", "organization", "organization_url", "project")
    }
    return Naming(**base, **overrides)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"service_template": "{pipeline}"}, {"web"}),
        ({"service_map": {"web": "storefront"}}, {"storefront"}),
        ({"service_map": {"shop-web": "by-repo", "web": "by-pipeline"}}, {"by-repo"}),
        ({"service_map": {"shop-*": "glob", "web": "exact"}}, {"exact"}),
        ({"service_map": {"shop-*": "glob"}}, {"glob"}),
    ],
)
def test_azure_service_map_and_template(overrides, expected):
    """The pipeline's name is one template away; map keys are repositories or pipelines."""
    assert expected == _record(_naming(**overrides), _build())


def test_azure_documented_release_is_named_after_its_definition():
    """The documented release deployments carry no repository: the definition's name stands."""
    body = load_real("azure_devops", "release_deployments_list.json")["responses"]["200"]["body"]
    deployment = copy.deepcopy(body["value"][0])
    result = release_events(deployment, naming=NAMING)
    events = result if not isinstance(result, Skip) else []
    assert {deployment["releaseDefinition"]["name"]} == {e.service for e in events}

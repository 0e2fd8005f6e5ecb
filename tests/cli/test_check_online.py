"""`fetcher check` against the CI emulators: every credential and every named target is tried."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from tests.support import run_cli, write_config

from deploy_fetcher.emulators._server import EmulatorServer
from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator
from deploy_fetcher.emulators.azure_devops import demo_source as azure_source
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.emulators.github import demo_source as github_source
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.emulators.gitlab import demo_source as gitlab_source

REVOKED = "revoked-token-5c1d0e"

#: label, emulator, demo source, the source key holding the token, explicitly named targets.
PROVIDERS: list[tuple[str, type[EmulatorServer], Callable[..., dict[str, Any]], str, Any]] = [
    ("github", GitHubEmulator, github_source, "token", ("repos", ["octo/api"])),
    ("gitlab", GitLabEmulator, gitlab_source, "token", ("projects", ["acme/api"])),
    ("azure-devops", AzureDevOpsEmulator, azure_source, "pat", ("projects", ["shop"])),
]


@pytest.fixture(params=PROVIDERS, ids=[p[0] for p in PROVIDERS])
def emulated(request):
    label, emulator_class, source, token_key, named = request.param
    emulator = emulator_class()
    url = emulator.start()
    yield label, source(url), token_key, named
    emulator.stop()


def _config(tmp_path, source: dict[str, Any]):
    return write_config(
        tmp_path / "fetcher.yaml",
        {
            "sinks": [{"name": "archive", "type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
            "sources": [source],
        },
    )


def test_a_good_credential_reads_every_target(tmp_path, emulated):
    """With the emulator's token every target is read once (none fails) and the check exits 0."""
    _, source, _, _ = emulated
    result = run_cli("check", "--config", str(_config(tmp_path, source)), "--output", "json")
    document = json.loads(result.stdout)
    targets = [c for c in document["checks"] if " target " in c["what"]]
    assert (0, True) == (result.returncode, document["ok"]), result.stdout + result.stderr
    assert targets
    assert "FAILED" not in {c["result"] for c in targets}
    assert "ok" in {c["result"] for c in targets}


@pytest.mark.parametrize("explicit", [False, True], ids=["wildcard", "named-targets"])
def test_a_revoked_credential_fails_the_check(tmp_path, emulated, explicit):
    """A token the CI system refuses exits 1 naming the source, wildcard or named targets alike."""
    label, source, token_key, (targets_key, named) = emulated
    source = {**source, token_key: REVOKED}
    if explicit:
        source[targets_key] = named
    result = run_cli("check", "--config", str(_config(tmp_path, source)))
    assert 1 == result.returncode, result.stdout
    assert f"fetcher: source {source['name']}" in result.stderr
    assert REVOKED not in result.stdout + result.stderr
    del label


def test_a_missing_named_target_fails_the_check(tmp_path, emulated):
    """A named repository/project that does not exist is a failure naming it."""
    _, source, _, (targets_key, _) = emulated
    source = {**source, targets_key: ["nobody/nothing" if targets_key == "repos" else "nothing"]}
    result = run_cli("check", "--config", str(_config(tmp_path, source)))
    assert 1 == result.returncode, result.stdout
    assert "nothing" in result.stderr


def test_check_source_resolves_only_the_named_source(tmp_path):
    """`check --source a` ignores source b, whose secret variable is not even set."""
    script = tmp_path / "e.jsonl"
    script.write_text("", encoding="utf-8")
    config = write_config(
        tmp_path / "fetcher.yaml",
        {
            "sinks": [{"name": "archive", "type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
            "sources": [
                {
                    "name": "b",
                    "provider": "github",
                    "token": "${UNSET_GITHUB_TOKEN}",
                    "repos": ["o/r"],
                },
                {"name": "a", "provider": "scripted", "script": str(script)},
            ],
        },
    )
    whole = run_cli("check", "--offline", "--config", str(config))
    only = run_cli("check", "--config", str(config), "--source", "a")
    unknown = run_cli("check", "--config", str(config), "--source", "c")
    assert 2 == whole.returncode
    assert "sources[0].token" in whole.stderr
    assert (0, "configuration ok: 1 source, 1 sink") == (
        only.returncode,
        only.stdout.splitlines()[0],
    )
    assert (2, True) == (unknown.returncode, "no source named c" in unknown.stderr)


def test_check_keeps_the_files_index_in_problems_of_a_selected_source(tmp_path):
    """A problem in the second source is reported as sources[1] even when only it is selected."""
    config = write_config(
        tmp_path / "fetcher.yaml",
        {
            "sources": [
                {"name": "a", "provider": "scripted", "script": "/x"},
                {"name": "b", "provider": "scripted", "script": "/y", "page_size": 0},
            ]
        },
    )
    result = run_cli("check", "--offline", "--config", str(config), "--source", "b")
    assert 2 == result.returncode
    assert "sources[1].page_size" in result.stderr


def test_check_warns_about_nothing_to_read_or_deliver(tmp_path):
    """A configuration without sources or sinks passes with a warning for each."""
    config = tmp_path / "fetcher.yaml"
    config.write_text("", encoding="utf-8")
    result = run_cli("check", "--config", str(config))
    assert 0 == result.returncode
    assert "no enabled source" in result.stdout
    assert "no enabled sink" in result.stdout


def test_github_checks_a_named_repository_with_one_request_to_its_modes_endpoint(tmp_path):
    """A named repository costs one request, to the endpoint its mode reads, with per_page=1."""
    github = GitHubEmulator()
    url = github.start()
    try:
        source = {**github_source(url), "repos": ["octo/api"]}
        result = run_cli("check", "--config", str(_config(tmp_path, source)))
        calls = [f"{r.path}?{r.query}" for r in github.requests_to(r"^/repos/octo/api")]
    finally:
        github.stop()
    assert 0 == result.returncode, result.stdout + result.stderr
    assert ["/repos/octo/api/deployments?per_page=1"] == calls


def test_gitlab_checks_the_token_once_and_each_project_with_one_request(tmp_path):
    """GET /user once per source, then one item of each named project's mode endpoint."""
    gitlab = GitLabEmulator()
    url = gitlab.start()
    try:
        source = {**gitlab_source(url), "projects": ["acme/api", "acme/web"]}
        result = run_cli("check", "--config", str(_config(tmp_path, source)), "--output", "json")
        calls = sorted(f"{r.path}?{r.query}" for r in gitlab.log)
    finally:
        gitlab.stop()
    document = json.loads(result.stdout)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert [
        "/api/v4/projects/acme%2Fapi/deployments?page=1&per_page=1",
        "/api/v4/projects/acme%2Fweb/deployments?page=1&per_page=1",
        "/api/v4/user?",
    ] == calls
    assert ["token accepted (user fetcher-bot)"] == [
        c["detail"] for c in document["checks"] if c["what"].endswith(" credential")
    ]


def test_azure_devops_checks_the_credential_once_and_a_project_with_one_request(tmp_path):
    """The credential's connectionData once, then one item of the project's mode list ($top=1)."""
    azure = AzureDevOpsEmulator()
    url = azure.start()
    try:
        source = {**azure_source(url), "projects": ["shop"]}
        result = run_cli("check", "--config", str(_config(tmp_path, source)), "--output", "json")
        calls = sorted(r.path for r in azure.log)
        queries = [r.query for r in azure.log if r.path.endswith("/environments")]
    finally:
        azure.stop()
    document = json.loads(result.stdout)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert [
        "/contoso/_apis/connectionData",
        "/contoso/shop/_apis/distributedtask/environments",
    ] == calls
    assert ["$top=1&api-version=7.1-preview.1"] == [q.replace("%24", "$") for q in queries]
    assert ["credential accepted (as Fetcher Bot)"] == [
        c["detail"] for c in document["checks"] if c["what"].endswith(" credential")
    ]

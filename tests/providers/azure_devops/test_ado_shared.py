"""Sources of one organization and credential share one client and one catalog."""

from __future__ import annotations

from tests.providers.azure_devops.support import Harness, make_context, make_provider

from deploy_fetcher.providers.azure_devops.catalog import _facts


def test_sources_of_one_project_read_its_definitions_once(emulator) -> None:
    """Three sources naming pipelines of one project list its definitions once, not three times."""
    emulator.add_run("web", ago=3600)
    context = make_context(emulator)
    providers = [
        make_provider(emulator, context=context, name=f"ado-{i}", mode="stages", pipelines=["we*"])
        for i in range(3)
    ]
    try:
        for provider in providers:
            Harness(provider).cycle()
        shared = {id(p.catalog) for p in providers} | {id(p.client) for p in providers}
    finally:
        context.shared.close()
    assert (1, 2) == (len(emulator.requests_to("/build/definitions")), len(shared))


def test_a_cached_build_keeps_only_what_the_mapping_reads() -> None:
    """A build is cut to its number, commit, branch, requester, repository, definition, web link."""
    build = {
        "id": 7,
        "buildNumber": "20240501.3",
        "sourceVersion": "abc",
        "sourceBranch": "refs/heads/main",
        "requestedFor": {"displayName": "Dana", "uniqueName": "dana@x", "imageUrl": "https://i"},
        "repository": {"id": "r", "name": "shop", "type": "TfsGit", "url": "https://r"},
        "definition": {"id": 11, "name": "web", "url": "https://d", "queueStatus": "enabled"},
        "_links": {"web": {"href": "https://w"}, "timeline": {"href": "https://t"}},
        "logs": {"url": "https://l"},
        "plans": [{"planId": "p"}],
    }
    assert {
        "id": 7,
        "buildNumber": "20240501.3",
        "sourceVersion": "abc",
        "sourceBranch": "refs/heads/main",
        "requestedFor": {"displayName": "Dana", "uniqueName": "dana@x"},
        "repository": {"id": "r", "name": "shop", "type": "TfsGit"},
        "definition": {"id": 11, "name": "web"},
        "_links": {"web": {"href": "https://w"}},
    } == _facts(build)

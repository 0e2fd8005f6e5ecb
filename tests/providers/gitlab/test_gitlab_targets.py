"""Targets: group wildcards with subgroups, per-project overrides, numeric ids, backfill windows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from tests.providers.gitlab.support import START, TOKEN, Harness, make_provider

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.errors import TransientError
from deploy_fetcher.model import format_rfc3339


def test_group_wildcard_expands_to_every_project_of_its_subgroups_too():
    """group/* lists the group's projects and those of its subgroups."""
    with GitLabEmulator(token=TOKEN, scenario="demo", start=START) as server:
        targets = make_provider(server, projects=["acme/*"]).targets()
        query = parse_qs(server.log[0].query)
    assert (
        ["acme/api", "acme/web", "acme/platform/billing", "acme/tools/cli"],
        ["true"],
        ["false"],
    ) == (list(targets), query["include_subgroups"], query["with_shared"])


def test_an_entry_naming_a_project_overrides_the_wildcard_that_covers_it():
    """The explicit entry's settings win: acme/tools/cli is read through its pipelines."""
    with GitLabEmulator(token=TOKEN, scenario="demo", start=START) as server:
        provider = make_provider(
            server, projects=["acme/*", {"project": "acme/tools/cli", "mode": "pipelines"}]
        )
        provider.targets()
        modes = {t: provider._resolve(t)[0].mode for t in ("acme/api", "acme/tools/cli")}
    assert {"acme/api": "deployments", "acme/tools/cli": "pipelines"} == modes


def test_services_map_and_per_project_service_template():
    """services: maps a project path to a fixed name; an entry may template its own service."""
    with GitLabEmulator(token=TOKEN, scenario="demo", start=START) as server:
        provider = make_provider(
            server,
            projects=["acme/api", {"project": "acme/web", "service": "{namespace}-{project_path}"}],
            services={"acme/api": "gateway"},
        )
        harness = Harness(provider)
        harness.cycle("acme/api", "acme/web")
        services = {e.metadata["repo"]: e.service for e in harness.seen.values()}
    assert {"acme/api": "gateway", "acme/web": "acme-web"} == services


def test_missing_group_is_logged_and_the_other_entries_still_count(emulator):
    """A group that does not exist is skipped; explicit projects remain targets."""
    targets = make_provider(emulator, projects=["acme/api", "nobody/*"]).targets()
    assert ["acme/api"] == list(targets)


def test_discovery_failure_keeps_the_last_known_projects():
    """A transient error while listing a group keeps the projects found last time."""
    with GitLabEmulator(token=TOKEN, scenario="demo", start=START) as server:
        provider = make_provider(server, projects=["acme/*"], retries=0)
        before = list(provider.targets())
        server.inject(Fault(match=r"/groups/", status=503))
        after = list(provider.targets())
    assert before == after


def test_first_discovery_failure_is_raised_not_hidden():
    """Without a previous list, a failed group listing raises so check and health can show it."""
    with GitLabEmulator(token=TOKEN, scenario="demo", start=START) as server:
        server.inject(Fault(match=r"/groups/", status=503))
        with pytest.raises(TransientError, match="503"):
            make_provider(server, projects=["acme/*"], retries=0).targets()


def test_numeric_project_id_is_resolved_to_its_path_once(emulator):
    """A project given by id is looked up once; its events name the project's path."""
    project = emulator.world.project("acme/api")
    assert project is not None
    emulator.add_pipeline("acme/api", environments=["staging"], ago=3600)
    harness = Harness(make_provider(emulator, projects=[project.id]))
    harness.cycle(str(project.id))
    harness.cycle(str(project.id))
    lookups = [r for r in emulator.log if r.path == f"/api/v4/projects/{project.id}"]
    assert ({"acme/api"}, 1) == ({e.metadata["repo"] for e in harness.seen.values()}, len(lookups))


def test_backfill_reads_an_updated_window_and_keeps_only_events_inside_it(emulator):
    """backfill(since, until) asks GitLab for that updated_at window; pages carry no cursor."""
    emulator.add_pipeline("acme/api", environments=["staging"], ago=3 * 86400)
    recent = emulator.add_pipeline("acme/api", environments=["staging"], ago=3600)
    since, until = START - timedelta(days=1), START
    pages = list(make_provider(emulator).backfill("acme/api", since, until))
    query = parse_qs(emulator.log[-1].query)
    staging = emulator.deployments_of(recent)["staging"]
    assert (
        {f"gl-deploy-{staging.id}"},
        {None},
        [format_rfc3339(since)],
        [format_rfc3339(until)],
    ) == (
        {e.deployment_id for p in pages for e in p.events},
        {p.cursor for p in pages},
        query["updated_after"],
        query["updated_before"],
    )


def test_projects_of_one_source_can_be_polled_in_parallel():
    """The scheduler polls a source's projects on several threads; they share one client safely."""
    with GitLabEmulator(token=TOKEN, scenario="benchmark", start=START) as server:
        provider = make_provider(server, projects=["bench/*"])
        targets = list(provider.targets())
        with ThreadPoolExecutor(max_workers=8) as pool:
            counts = list(
                pool.map(lambda t: sum(len(p.events) for p in provider.poll(t, None)), targets)
            )
    assert [180] * 20 == counts

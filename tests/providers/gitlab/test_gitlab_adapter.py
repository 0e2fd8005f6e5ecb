"""The GitLab adapter end to end: python-gitlab against the emulator over real HTTP (deployments)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs

import requests
from tests.providers.gitlab.support import START, TOKEN, Harness, make_provider

from deploy_fetcher.emulators.gitlab import GitLabEmulator, Scenario
from deploy_fetcher.emulators.gitlab.model import Deployment
from deploy_fetcher.model import format_rfc3339, parse_timestamp


def dep_id(deployment: Deployment) -> str:
    return f"gl-deploy-{deployment.id}"


def test_first_poll_yields_each_deployments_lifecycle_with_pipeline_details(emulator):
    """A finished staging→production pipeline: both lifecycles, run URL, actor, staging as parent."""
    pipeline = emulator.add_pipeline("acme/api", user="alice", ago=3600)
    staging, production = (emulator.deployments_of(pipeline)[e] for e in ("staging", "production"))
    harness = Harness(make_provider(emulator))
    events = harness.cycle("acme/api")
    expected = [
        (dep_id(d), d.environment.name, status, parents, "alice", pipeline.iid, "acme/api")
        for d, parents in ((staging, ()), (production, (dep_id(staging),)))
        for status in ("pending", "in-progress", "success")
    ]
    actual = sorted(
        (
            e.deployment_id,
            e.environment,
            e.status.value,
            e.parent_deployments,
            e.actor,
            e.run_number,
            e.metadata["repo"],
        )
        for e in events
    )
    assert sorted(expected) == actual
    assert {emulator.url(f"/acme/api/-/pipelines/{pipeline.id}")} == {e.run_url for e in events}


def test_blocked_then_approved_deployment_goes_waiting_then_in_progress_then_success(emulator):
    """An approval gate shows as waiting; once approved the deployment runs and succeeds."""
    pipeline = emulator.add_pipeline(
        "acme/api", environments=["production"], gates={"production": "manual"}, ago=600
    )
    production = emulator.deployments_of(pipeline)["production"]
    harness = Harness(make_provider(emulator))
    harness.cycle("acme/api")
    while_blocked = harness.statuses(dep_id(production))
    emulator.approve(production)
    emulator.advance(600)
    harness.cycle("acme/api")
    assert (["pending", "waiting"], ["pending", "waiting", "in-progress", "success"]) == (
        while_blocked,
        harness.statuses(dep_id(production)),
    )


def test_rejected_approval_is_reported_rejected(emulator):
    """Rejecting a blocked deployment ends it as rejected, dated by the rejection."""
    pipeline = emulator.add_pipeline(
        "acme/api", environments=["production"], gates={"production": "manual"}, ago=600
    )
    production = emulator.deployments_of(pipeline)["production"]
    harness = Harness(make_provider(emulator))
    harness.cycle("acme/api")
    emulator.advance(30)
    emulator.reject(production)
    rejected_at = emulator.now
    emulator.advance(30)
    harness.cycle("acme/api")
    last = max(
        (e for e in harness.seen.values() if e.deployment_id == dep_id(production)),
        key=lambda e: e.happened_at,
    )
    assert (["pending", "waiting", "rejected"], rejected_at) == (
        harness.statuses(dep_id(production)),
        last.happened_at,
    )


def test_cancelled_deployment_is_reported_cancelled_and_later_stages_never_deploy(emulator):
    """Cancelling a running deployment yields cancelled; the skipped production yields no end."""
    pipeline = emulator.add_pipeline("acme/api", ago=0)
    staging, production = (emulator.deployments_of(pipeline)[e] for e in ("staging", "production"))
    for _ in range(200):
        if staging.status(emulator.now) == "running":
            break
        emulator.advance(2)
    harness = Harness(make_provider(emulator))
    harness.cycle("acme/api")
    emulator.cancel(staging)
    emulator.advance(60)
    harness.cycle("acme/api")
    assert (["pending", "in-progress", "cancelled"], ["pending"]) == (
        harness.statuses(dep_id(staging)),
        harness.statuses(dep_id(production)),
    )


def test_self_managed_instance_behind_a_path_prefix():
    """With url https://host/gitlab, every request goes to /gitlab/api/v4 and links keep the prefix."""
    with GitLabEmulator(token=TOKEN, scenario="empty", start=START, prefix="/gitlab") as server:
        pipeline = server.add_pipeline("acme/api", ago=3600)
        events = Harness(make_provider(server, prefix="/gitlab")).cycle("acme/api")
        paths = {r.path.split("/api/v4/")[0] for r in server.log}
    assert (6, {"/gitlab"}, {server.url(f"/gitlab/acme/api/-/pipelines/{pipeline.id}")}) == (
        len(events),
        paths,
        {e.run_url for e in events},
    )


def test_idle_project_costs_one_small_request_per_cycle(emulator):
    """After the first poll, an idle project costs one request per cycle and yields no page."""
    emulator.add_pipeline("acme/api", ago=120)
    provider = make_provider(emulator)
    cursor = next(iter(provider.poll("acme/api", None))).cursor
    emulator.reset_log()
    pages = [list(provider.poll("acme/api", cursor)) for _ in range(10)]
    assert ([[]] * 10, 10) == (pages, len(emulator.log))


def test_overlap_window_is_reread_but_not_reemitted(emulator):
    """Items inside the overlap are fetched again and skipped: no repeat of an emitted event."""
    emulator.add_pipeline("acme/api", ago=3600)
    harness = Harness(make_provider(emulator))
    harness.cycle("acme/api")
    harness.cycle("acme/api")
    query = parse_qs(emulator.log[-1].query)
    mark = parse_timestamp(harness.cursors["acme/api"]["mark"])
    reread = requests.get(
        emulator.url("/api/v4/projects/acme%2Fapi/deployments"),
        headers={"PRIVATE-TOKEN": TOKEN},
        params={k: v[0] for k, v in query.items()},
        timeout=5,
    ).json()
    assert ([format_rfc3339(mark - timedelta(minutes=5))], True, []) == (
        query["updated_after"],
        len(reread) > 0,
        harness.emitted,
    )


def test_environment_filter_keeps_only_matching_environments(emulator):
    """environments: [prod*] keeps production deployments only (the mark still moves past others)."""
    emulator.add_pipeline("acme/api", ago=3600)
    events = Harness(make_provider(emulator, environments=["prod*"])).cycle("acme/api")
    assert {"production"} == {e.environment for e in events}


def test_single_literal_environment_is_filtered_by_gitlab(emulator):
    """One plain environment name is passed to GitLab as the environment filter."""
    emulator.add_pipeline("acme/api", ago=3600)
    Harness(make_provider(emulator, environments=["staging"])).cycle("acme/api")
    query = parse_qs(emulator.log[-1].query)
    assert (["staging"], ["updated_at"], ["asc"]) == (
        query["environment"],
        query["order_by"],
        query["sort"],
    )


def test_first_poll_starts_at_now_minus_lookback(emulator):
    """The very first poll asks for deployments updated since now - lookback, never genesis."""
    Harness(make_provider(emulator, lookback="2d")).cycle("acme/api")
    query = parse_qs(emulator.log[-1].query)
    assert [format_rfc3339(START - timedelta(days=2))] == query["updated_after"]


def _expected_keys(server: GitLabEmulator) -> tuple[set[tuple[str, str, str]], set[str]]:
    """Ground truth from the emulator's timelines: every datable transition but waiting."""
    now = server.now
    keys: set[tuple[str, str, str]] = set()
    skipped: set[str] = set()
    for project in server.world.projects.values():
        for deployment in project.deployments:
            if not deployment.visible(now):
                continue
            did = dep_id(deployment)
            status = deployment.status(now)
            if status == "skipped":
                skipped.add(did)
                continue
            job = deployment.job
            assert job is not None
            keys.add((did, "pending", format_rfc3339(deployment.timeline.created_at)))
            started = job.timeline.first("running", now)
            if started is not None:
                keys.add((did, "in-progress", format_rfc3339(started)))
            finished = job.finished_at(now)
            if status in {"success", "failed", "canceled"} and finished is not None:
                end = {"success": "success", "failed": "failure", "canceled": "cancelled"}[status]
                if job.failure_reason == "deployment_rejected":
                    end = "rejected"
                keys.add((did, end, format_rfc3339(finished)))
    return keys, skipped


def test_many_cycles_and_a_restart_give_every_transition_once_and_nothing_conflicting():
    """Polling a busy instance through a restart yields exactly the emulator's transitions."""
    scenario = Scenario(seed=11, failure_rate=0.15, cancel_rate=0.05, rejection_rate=0.3)
    scenario.project("acme/api", approvals=("production",), history=3, activity=90.0)
    scenario.project(
        "acme/platform/billing", environments=("dev", "staging", "production"), activity=120.0
    )
    with GitLabEmulator(token=TOKEN, scenario=scenario, seed=11, start=START) as server:
        harness = Harness(make_provider(server, projects=["acme/*"]))
        for _ in range(20):
            server.advance(40)
            harness.cycle()
        restarted = Harness(make_provider(server, projects=["acme/*"]))
        restarted.cursors = dict(harness.cursors)
        restarted.seen = dict(harness.seen)
        server.reset_log()
        restarted.cycle()
        asked = {
            parse_qs(r.query)["updated_after"][0] for r in server.log if "deployments" in r.path
        }
        marks = {
            format_rfc3339(parse_timestamp(c["mark"]) - timedelta(minutes=5))
            for c in harness.cursors.values()
        }
        window_start = min(parse_timestamp(m) for m in marks)
        old = sorted(
            {
                e.deployment_id
                for e in restarted.emitted
                if server.world.deployments[int(e.deployment_id.rsplit("-", 1)[1])].updated_at(
                    server.now
                )
                < window_start
            }
        )
        for _ in range(20):
            server.advance(40)
            restarted.cycle()
        expected, skipped = _expected_keys(server)
        waiting = {k for k in restarted.seen if k[1] == "waiting"}
        late = {k for k in restarted.seen if k[0] in skipped and k[1] not in {"pending", "waiting"}}
        seen = {k for k in restarted.seen if k not in waiting and k[0] not in skipped}
    assert (marks, [], set(), expected) == (asked, old, late, seen)
    assert len(expected) > 100
    assert waiting


def test_a_poll_cut_short_resumes_after_the_last_stored_page(emulator):
    """Killed after two pages, the next poll yields only the deployments it had not stored."""
    for index in range(10):
        emulator.add_pipeline("acme/api", environments=("staging",), ago=7200 - index * 600)
    emulator.advance(3600)
    first = make_provider(emulator, page_size=2)
    stored, before = None, set()
    for count, page in enumerate(first.poll("acme/api", None), start=1):
        stored = page.cursor or stored
        before |= {event.deployment_id for event in page.events}
        if count == 2:
            break  # the process dies here: what the store holds is the last page's cursor
    again = make_provider(emulator, page_size=2)
    after = {e.deployment_id for page in again.poll("acme/api", stored) for e in page.events}
    assert (True, set(), 10) == (len(before) >= 2, before & after, len(before | after))

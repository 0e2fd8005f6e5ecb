"""Mode environments end to end: the adapter against the emulator over real HTTP."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs
from tests.providers.azure_devops.support import Harness, SleepRecorder, busy, make_context

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.azure_devops.scenario import Pipeline, StageSpec
from deploy_fetcher.errors import AuthError, RateLimited, TargetNotFound, TransientError


def _ids(run_id: int) -> dict[str, str]:
    return {
        env: f"ado-env-{n}-{run_id}-Deploy_{env}-1"
        for n, env in ((1, "dev"), (2, "staging"), (3, "prod"))
    }


def test_first_poll_reports_every_deployment_job_and_the_prod_approval(emulator, providers):
    """A finished run: queued / in-progress / success per environment, prod waited for approval."""
    run = emulator.add_run("web", ago=3600)
    harness = Harness(providers())
    harness.cycle()
    ids = _ids(run.id)
    assert {
        "dev": ["queued", "in-progress", "success"],
        "staging": ["queued", "in-progress", "success"],
        "prod": ["waiting", "queued", "in-progress", "success"],
    } == {env: harness.statuses(deployment_id) for env, deployment_id in ids.items()}


def test_events_carry_the_run_and_its_repository_as_service(emulator, providers):
    """Service and repo are the run's repository (web); version, sha, actor, links from the run."""
    run = emulator.add_run("web", ago=3600)
    harness = Harness(providers())
    harness.cycle()
    event = next(e for e in harness.seen.values() if e.deployment_id == _ids(run.id)["dev"])
    assert (
        "web",
        "dev",
        run.number,
        run.sha,
        run.id,
        "Dana Developer",
        "refs/heads/main",
        "web",
    ) == (
        event.service,
        event.environment,
        event.version,
        event.sha,
        event.run_number,
        event.actor,
        event.ref,
        event.metadata["repo"],
    )


def test_approval_waits_then_is_rejected(emulator, providers):
    """The waiting stage shows up live; the rejection ends the same logical deployment."""
    run = emulator.add_run("web", stages={"Deploy_prod": {"decision": "pending"}})
    harness = Harness(providers())
    harness.cycle()
    emulator.advance(400)
    harness.cycle()
    prod = _ids(run.id)["prod"]
    assert ["waiting"] == harness.statuses(prod)
    emulator.advance(60)
    emulator.reject(run.id, "Deploy_prod")
    emulator.advance(5)
    harness.cycle()
    assert ["waiting", "rejected"] == harness.statuses(prod)


def test_cancelled_run_ends_the_open_record(emulator, providers):
    """A record seen running is re-read until it ends; cancelling the run ends it cancelled."""
    run = emulator.add_run("web")
    harness = Harness(providers())
    emulator.advance(150)
    harness.cycle()
    dev = _ids(run.id)["dev"]
    assert ["queued", "in-progress"] == harness.statuses(dev)
    emulator.cancel(run.id)
    emulator.advance(30)
    harness.cycle()
    assert (["queued", "in-progress", "cancelled"], []) == (
        harness.statuses(dev),
        harness.statuses(_ids(run.id)["staging"]),
    )


def test_continuation_paging_across_pages(emulator, providers):
    """page_size 2 and four runs: records are paged with continuation tokens, none is missed."""
    runs = [emulator.add_run("web", ago=7200 - 1500 * n) for n in range(4)]
    harness = Harness(providers(page_size=2))
    harness.cycle()
    continued = emulator.requests_to("environmentdeploymentrecords")
    tokens = [r for r in continued if "continuationToken=" in r.query]
    finished = {run.id: harness.statuses(_ids(run.id)["staging"])[-1] for run in runs}
    assert (True, {run.id: "success" for run in runs}) == (len(tokens) >= 3, finished)


def test_no_duplicates_over_many_cycles_and_a_restart(emulator, providers):
    """Cycles plus a restart from the stored cursor see exactly what one late full read sees."""
    busy(emulator)
    harness = Harness(providers())
    for cycle in range(24):
        open_runs = {
            str(r.id)
            for r in emulator.scenario.runs
            if emulator.run_view(r.id).status != "completed"
        }
        emulator.advance(90)
        if cycle == 12:
            before = set(harness.seen)
            harness.restart(providers())
            harness.cycle()
            reread = {e.metadata["run_id"] for e in harness.last_raw if e.dedup_key in before}
            assert reread <= open_runs
        else:
            harness.cycle()
    emulator.advance(3600)
    harness.cycle()
    truth = Harness(providers())
    truth.cycle()
    statuses = {e.status.value for e in truth.seen.values()}
    assert (set(truth.seen), True) == (set(harness.seen), {"waiting", "rejected"} <= statuses)


def test_expired_pat_is_an_auth_error(emulator, providers):
    """A revoked PAT ends the cycle with one clear AuthError."""
    emulator.expire_token()
    with pytest.raises(AuthError, match="HTTP 401"):
        Harness(providers()).cycle()


def test_sign_in_page_is_an_auth_error(emulator, providers):
    """A bad PAT answered with the 203 sign-in page is an AuthError too."""
    emulator.expire_token()
    emulator.auth_failure = "203"
    with pytest.raises(AuthError, match="HTTP 203"):
        Harness(providers()).cycle()


def test_missing_project_is_reported_and_skipped(emulator, providers):
    """An unknown project is TargetNotFound with the service's message."""
    with pytest.raises(TargetNotFound, match="TF200016"):
        Harness(providers(), target="gone").cycle()


def test_malformed_record_is_logged_and_skipped(emulator, providers):
    """A record whose pipeline has no name is logged with its URL; the others still count."""
    good = emulator.add_run("web", ago=3600)
    emulator.scenario.pipelines.append(
        Pipeline(99, "", (StageSpec("Deploy_dev", environment="dev"),))
    )
    emulator.add_run(99, ago=3000)
    harness = Harness(providers(gates=False))
    with capture_logs() as logs:
        harness.cycle()
    warnings = [e for e in logs if e["event"] == "azure_devops.malformed_item"]
    assert (1, True, ["queued", "in-progress", "success"]) == (
        len(warnings),
        warnings[0]["url"].endswith("/environments/1/environmentdeploymentrecords"),
        harness.statuses(_ids(good.id)["dev"]),
    )


def test_malformed_body_fails_the_cycle_and_the_next_one_recovers(emulator, providers):
    """A broken page is a transient failure; what was stored before it stays, the next cycle reads on."""
    run = emulator.add_run("web", ago=3600)
    harness = Harness(providers())
    emulator.inject(Fault(kind="malformed", match="environments/2/environmentdeploymentrecords"))
    with pytest.raises(TransientError, match="malformed"):
        harness.cycle()
    assert harness.cursor is not None
    assert ["1"] == sorted(harness.cursor["envs"])
    harness.cycle()
    assert ["queued", "in-progress", "success"] == harness.statuses(_ids(run.id)["staging"])


def test_a_server_error_is_retried_inside_the_cycle(emulator, providers):
    """One 503 costs a short wait, not the cycle."""
    run = emulator.add_run("web", ago=3600)
    sleeps = SleepRecorder()
    harness = Harness(providers(context=make_context(emulator, sleeps)))
    emulator.inject(Fault(kind="status", status=503, match="environments/3/"))
    harness.cycle()
    assert (1, "success") == (len(sleeps.waits), harness.statuses(_ids(run.id)["prod"])[-1])
    assert 0 <= sleeps.waits[0] <= 0.5


def test_spent_quota_is_rate_limited_and_reported_as_not_ready(emulator, providers):
    """When the TSTU budget is gone the cycle ends RateLimited and readiness says why."""
    emulator.tstu_limit = 0.35
    emulator.add_run("web", ago=3600)
    provider = providers(max_rate_limit_wait="5s")
    with pytest.raises(RateLimited):
        Harness(provider).cycle()
    assert 1 == len(provider.ready_problems())


def test_idle_cycles_cost_one_request_per_environment_and_one_for_runs(emulator, providers):
    """Nothing new: three record pages and one builds query, no event."""
    emulator.add_run("web", ago=3600)
    harness = Harness(providers())
    harness.cycle()
    emulator.reset_log()
    emitted = harness.emitted
    for _ in range(5):
        emulator.advance(60)
        harness.cycle()
    assert (20, emitted) == (len(emulator.requests_to()), harness.emitted)


def test_environment_filter(emulator, providers):
    """environments: [prod] reads only prod's records."""
    run = emulator.add_run("web", ago=3600)
    harness = Harness(providers(environments=["prod"]))
    harness.cycle()
    environments = {e.environment for e in harness.seen.values()}
    read = {r.path.split("/")[-2] for r in emulator.requests_to("environmentdeploymentrecords")}
    assert ({"prod"}, {"3"}, "success") == (
        environments,
        read,
        harness.statuses(_ids(run.id)["prod"])[-1],
    )


def test_records_listed_only_when_the_run_ends_are_not_missed(emulator, providers):
    """A record that appears late, below the high-water id, is still reported."""
    emulator.list_running_records = False
    slow = emulator.add_run("web", stages={"Deploy_prod": {"decision": "pending"}})
    harness = Harness(providers())
    emulator.advance(400)
    harness.cycle()
    fast = emulator.add_run("web", stages={"Deploy_prod": {"approval": None}})
    emulator.advance(600)
    harness.cycle()
    emulator.approve(slow.id, "Deploy_prod")
    emulator.advance(400)
    harness.cycle()
    assert (["queued", "in-progress", "success"], ["queued", "in-progress", "success"]) == (
        harness.statuses(_ids(slow.id)["dev"]),
        harness.statuses(_ids(fast.id)["dev"]),
    )


def test_wildcard_lists_every_visible_project(emulator, providers):
    """projects: ["*"] becomes the projects the credential can see."""
    assert ["shop"] == list(providers(projects=["*"]).targets())


def test_a_walk_cut_short_at_max_pages_resumes_where_it_stopped(emulator, providers):
    """More new records than max_pages can read: later cycles read the rest, none is lost."""
    emulator.add_run("web", ago=7200)
    harness = Harness(providers(page_size=2, max_pages=2, gates=False))
    harness.cycle()
    for ago in range(5400, 3000, -400):
        emulator.add_run("web", ago=ago)
    with capture_logs() as logs:
        for _ in range(4):
            emulator.advance(60)
            harness.cycle()
    truth = Harness(providers(gates=False))
    truth.cycle()
    truncated = [e for e in logs if e["event"] == "azure_devops.walk_truncated"]
    assert (set(truth.seen), True) == (set(harness.seen), len(truncated) >= 3)

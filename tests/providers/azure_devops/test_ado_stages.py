"""Mode stages end to end: runs and their timelines from the emulator over real HTTP."""

from __future__ import annotations

from tests.providers.azure_devops.support import Harness, busy


def _id(run_id: int, stage: str) -> str:
    return f"ado-stage-{run_id}-{stage}-1"


def test_stages_of_a_finished_run_with_parents(emulator, providers):
    """Each deployment stage is a deployment, parented on the stage before it; never queued after waiting."""
    run = emulator.add_run("web", ago=3600)
    harness = Harness(providers(mode="stages"))
    harness.cycle()
    prod = [e for e in harness.seen.values() if e.deployment_id == _id(run.id, "Deploy_prod")]
    assert (
        ["queued", "in-progress", "success"],
        ["waiting", "in-progress", "success"],
        {(_id(run.id, "Deploy_staging"),)},
        {"Deploy_dev", "Deploy_staging", "Deploy_prod"},
    ) == (
        harness.statuses(_id(run.id, "Deploy_dev")),
        harness.statuses(_id(run.id, "Deploy_prod")),
        {e.parent_deployments for e in prod},
        {e.metadata["stage"] for e in harness.seen.values()},
    )


def test_approval_waits_then_is_rejected(emulator, providers):
    """A stage waiting for approval is waiting; rejecting it ends the stage rejected."""
    run = emulator.add_run("web", stages={"Deploy_prod": {"decision": "pending"}})
    harness = Harness(providers(mode="stages"))
    emulator.advance(400)
    harness.cycle()
    prod = _id(run.id, "Deploy_prod")
    assert ["waiting"] == harness.statuses(prod)
    emulator.reject(run.id, "Deploy_prod")
    emulator.advance(5)
    harness.cycle()
    assert ["waiting", "rejected"] == harness.statuses(prod)


def test_cancelled_run(emulator, providers):
    """Cancelling a run cancels the stage in progress; later stages yield nothing."""
    run = emulator.add_run("web")
    harness = Harness(providers(mode="stages"))
    emulator.advance(150)
    harness.cycle()
    emulator.cancel(run.id)
    emulator.advance(30)
    harness.cycle()
    assert (["queued", "in-progress", "cancelled"], []) == (
        harness.statuses(_id(run.id, "Deploy_dev")),
        harness.statuses(_id(run.id, "Deploy_staging")),
    )


def test_continuation_paging_across_pages(emulator, providers):
    """page_size 2 over five runs: the builds list is paged with continuation tokens."""
    runs = [emulator.add_run("web", ago=9000 - 1500 * n) for n in range(5)]
    harness = Harness(providers(mode="stages", page_size=2))
    harness.cycle()
    paged = [r for r in emulator.requests_to("/build/builds$") if "continuationToken=" in r.query]
    ends = {harness.statuses(_id(run.id, "Deploy_prod"))[-1] for run in runs}
    assert (2, {"success"}) == (len(paged), ends)


def test_no_duplicates_over_many_cycles_and_a_restart(emulator, providers):
    """Incremental cycles with a restart see exactly what one late full read sees."""
    busy(emulator)
    harness = Harness(providers(mode="stages"))
    for cycle in range(24):
        open_runs = {
            str(r.id)
            for r in emulator.scenario.runs
            if emulator.run_view(r.id).status != "completed"
        }
        emulator.advance(90)
        if cycle == 12:
            before = set(harness.seen)
            harness.restart(providers(mode="stages"))
            harness.cycle()
            reread = {e.metadata["run_id"] for e in harness.last_raw if e.dedup_key in before}
            assert reread <= open_runs
        else:
            harness.cycle()
    emulator.advance(3600)
    harness.cycle()
    truth = Harness(providers(mode="stages"))
    truth.cycle()
    statuses = {e.status.value for e in truth.seen.values()}
    assert (set(truth.seen), True) == (
        set(harness.seen),
        {"waiting", "rejected", "cancelled", "failure"} <= statuses,
    )


def test_idle_cycles_cost_one_request(emulator, providers):
    """With nothing running, a cycle is one builds query."""
    emulator.add_run("web", ago=3600)
    harness = Harness(providers(mode="stages"))
    harness.cycle()
    emulator.reset_log()
    for _ in range(5):
        emulator.advance(60)
        harness.cycle()
    assert ["/contoso/shop/_apis/build/builds"] * 5 == [r.path for r in emulator.requests_to()]


def test_pipeline_patterns_become_definition_ids(emulator, providers):
    """pipelines: [we*] lists definitions once and filters the builds query by id."""
    emulator.add_run("web", ago=3600)
    harness = Harness(providers(mode="stages", pipelines=["we*"]))
    harness.cycle()
    harness.cycle()
    builds = emulator.requests_to("/build/builds$")
    assert (1, True) == (
        len(emulator.requests_to("/build/definitions")),
        all("definitions=11" in r.query for r in builds),
    )


def test_stage_map_names_environments(emulator, providers):
    """stage_environments maps stage names the pattern would not; the pattern can be off."""
    run = emulator.add_run("web", ago=3600)
    harness = Harness(
        providers(mode="stages", stage_pattern=None, stage_environments={"Deploy_prod": "live"})
    )
    harness.cycle()
    assert ({"live"}, "success") == (
        {e.environment for e in harness.seen.values()},
        harness.statuses(_id(run.id, "Deploy_prod"))[-1],
    )

"""The adapter in workflow-runs mode, through PyGithub against the emulator."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.providers.github.support import Harness
from tests.providers.github.test_github_deployments import START

from deploy_fetcher.emulators.github import Pipeline, WorkflowSpec, start_pipeline
from deploy_fetcher.providers.github import runs as runs_module

RELEASE = WorkflowSpec("Release", "release.yml", ())
CI = WorkflowSpec("CI", "ci.yml", ())


def runs_provider(make_provider, emulator, **kw):
    entry = {"repo": "octo/legacy", "mode": "workflow_runs", "workflows": ["release.yml"]} | kw
    return make_provider(emulator, repos=[entry])[0]


def test_run_lifecycle_is_rebuilt_from_its_timestamps(make_emulator, make_provider):
    """Queued at creation, in-progress when its job started (not at run_started_at), done at its end."""
    emulator = make_emulator(start=START)
    emulator.add_workflow("octo/legacy", "CI", "ci.yml")
    run_id = start_pipeline(
        emulator, "octo/legacy", RELEASE, at=START + timedelta(seconds=30), sha="a" * 40
    )
    start_pipeline(emulator, "octo/legacy", CI, at=START + timedelta(seconds=30), sha="a" * 40)
    harness = Harness(runs_provider(make_provider, emulator, environment="{branch}-env"))
    harness.cycle()
    for _ in range(4):
        emulator.advance(31)
        harness.cycle()
    assert {
        f"gh-run-{run_id}-1": [
            ("queued", "2026-03-02T12:00:30Z"),
            ("in-progress", "2026-03-02T12:00:35Z"),
            ("success", "2026-03-02T12:01:35Z"),
        ]
    } == harness.by_deployment()
    event = next(iter(harness.seen.values()))
    assert ("legacy", "main-env", "aaaaaaa", 1) == (
        event.service,
        event.environment,
        event.version,
        event.run_number,
    )


def test_rerun_is_a_new_deployment_and_closes_the_first_attempt(make_emulator, make_provider):
    """A re-run (attempt 2) is gh-run-{id}-2; the failed attempt 1 keeps its own events."""
    emulator = make_emulator(start=START)
    run_id = start_pipeline(
        emulator, "octo/legacy", RELEASE, at=START, sha="b" * 40, plan=Pipeline("failure")
    )
    emulator.advance(120)
    harness = Harness(runs_provider(make_provider, emulator))
    harness.cycle()
    emulator.rerun("octo/legacy", run_id)
    harness.cycle()
    emulator.advance(10)
    emulator.set_run("octo/legacy", run_id, status="in_progress")
    emulator.advance(50)
    emulator.set_run("octo/legacy", run_id, status="completed", conclusion="success")
    harness.cycle()
    assert {
        f"gh-run-{run_id}-1": [
            ("queued", "2026-03-02T12:00:00Z"),
            ("in-progress", "2026-03-02T12:00:05Z"),
            ("failure", "2026-03-02T12:01:05Z"),
        ],
        f"gh-run-{run_id}-2": [
            ("queued", "2026-03-02T12:02:00Z"),
            ("in-progress", "2026-03-02T12:02:10Z"),
            ("success", "2026-03-02T12:03:00Z"),
        ],
    } == harness.by_deployment()


def test_rerun_found_after_a_restart_reads_the_earlier_attempt(make_emulator, make_provider):
    """An attempt that was open when a re-run began is completed from the attempts API."""
    emulator = make_emulator(start=START)
    run_id = start_pipeline(emulator, "octo/legacy", RELEASE, at=START, sha="c" * 40)
    emulator.advance(10)
    first = Harness(runs_provider(make_provider, emulator))
    first.cycle()
    emulator.set_run("octo/legacy", run_id, status="completed", conclusion="cancelled")
    emulator.advance(30)
    emulator.rerun("octo/legacy", run_id)
    second = Harness(runs_provider(make_provider, emulator), cursors=dict(first.cursors))
    second.cycle()
    steps = second.by_deployment()
    assert ("cancelled", "queued") == (
        steps[f"gh-run-{run_id}-1"][-1][0],
        steps[f"gh-run-{run_id}-2"][-1][0],
    )


def test_idle_workflows_cost_no_quota(make_emulator, make_provider):
    """Once runs are read, each cycle costs only 304s (workflow list and run list per workflow)."""
    emulator = make_emulator(start=START)
    start_pipeline(emulator, "octo/legacy", RELEASE, at=START - timedelta(hours=1), sha="d" * 40)
    emulator.advance(1)
    harness = Harness(runs_provider(make_provider, emulator))
    harness.cycle()
    harness.cycle()
    emulator.reset_log()
    for _ in range(10):
        assert [] == harness.cycle()
        emulator.advance(60)
    assert ([], {304}) == (emulator.charged(), {r.status for r in emulator.log})


def test_branch_and_workflow_name_patterns_select_runs(make_emulator, make_provider):
    """Only runs of matching workflows (by YAML name pattern) on matching branches are deployments."""
    emulator = make_emulator(start=START)
    keep = start_pipeline(
        emulator, "octo/legacy", RELEASE, at=START, sha="e" * 40, branch="release/1.2"
    )
    start_pipeline(emulator, "octo/legacy", RELEASE, at=START, sha="f" * 40, branch="feature/x")
    start_pipeline(emulator, "octo/legacy", CI, at=START, sha="f" * 40, branch="release/1.2")
    emulator.advance(120)
    provider = runs_provider(make_provider, emulator, workflows=["Rel*"], branches=["release/*"])
    harness = Harness(provider)
    harness.cycle()
    assert {f"gh-run-{keep}-1"} == set(harness.by_deployment())


def test_runs_backfill_is_windowed_and_oldest_first(make_emulator, make_provider):
    """A backfill lists each workflow's runs created in the window and emits them oldest first."""
    emulator = make_emulator(start=START)
    ids = [
        start_pipeline(
            emulator, "octo/legacy", RELEASE, at=START - timedelta(hours=h), sha=f"{h:040x}"
        )
        for h in (5, 3, 1)
    ]
    emulator.run_due()
    provider = runs_provider(make_provider, emulator)
    pages = list(
        provider.backfill("octo/legacy", START - timedelta(hours=4), START - timedelta(minutes=30))
    )
    events = [e for p in pages for e in p.events]
    assert [f"gh-run-{ids[1]}-1"] * 3 + [f"gh-run-{ids[2]}-1"] * 3 == [
        e.deployment_id for e in events
    ]
    assert [None] == [p.cursor for p in pages]


def test_a_window_split_over_the_list_cap_tiles_every_second(make_emulator, make_provider):
    """A window over 1 000 runs splits in whole-second halves: the second after the middle is read."""
    emulator = make_emulator(start=START)
    release = emulator.add_workflow("octo/legacy", "Release", "release.yml")
    for n in range(999):
        emulator.add_run("octo/legacy", release, at=START, sha=f"{n:040x}")
    for offset in (1, 2):
        emulator.add_run("octo/legacy", release, at=START + timedelta(seconds=offset), sha="f" * 40)
    provider = runs_provider(make_provider, emulator)
    pages = list(provider.backfill("octo/legacy", START, START + timedelta(seconds=3)))
    runs = {e.metadata["run_id"] for p in pages for e in p.events}
    assert 1001 == len(runs)


def _rejected_run(emulator) -> int:
    """A release run whose prod review was rejected an hour before START (the run failed)."""
    spec = WorkflowSpec("Release", "release.yml", ("prod",), frozenset({"prod"}))
    run_id = start_pipeline(
        emulator,
        "octo/legacy",
        spec,
        at=START - timedelta(hours=1),
        sha="c" * 40,
        plan=Pipeline("rejected"),
    )
    emulator.run_due()
    return run_id


def test_a_rejected_run_is_rejected_in_a_backfill(make_emulator, make_provider):
    """A backfill, which never sees a run waiting, reads the review history of a failed run."""
    emulator = make_emulator(start=START)
    run_id = _rejected_run(emulator)
    provider = runs_provider(make_provider, emulator)
    pages = provider.backfill("octo/legacy", START - timedelta(hours=2), START)
    events = [e for p in pages for e in p.events]
    assert (f"gh-run-{run_id}-1", "rejected") == (events[-1].deployment_id, events[-1].status.value)


def test_a_run_rejected_between_two_polls_is_rejected(make_emulator, make_provider):
    """A run first seen already failed by a rejection is rejected, not failure."""
    emulator = make_emulator(start=START)
    emulator.add_repo("octo/legacy")
    harness = Harness(runs_provider(make_provider, emulator))
    harness.cycle()
    run_id = _rejected_run(emulator)
    harness.cycle()
    assert "rejected" == harness.by_deployment()[f"gh-run-{run_id}-1"][-1][0]


def test_failed_runs_of_a_workflow_without_environments_read_no_review_history(
    make_emulator, make_provider
):
    """Its file, read once and then re-validated for free, says no reviewer can hold its runs."""
    emulator = make_emulator(start=START)
    for hours, sha in ((3, "d"), (2, "e")):
        start_pipeline(
            emulator,
            "octo/legacy",
            RELEASE,
            at=START - timedelta(hours=hours),
            sha=sha * 40,
            plan=Pipeline("failure"),
        )
    emulator.run_due()
    provider = runs_provider(make_provider, emulator)
    pages = provider.backfill("octo/legacy", START - timedelta(hours=4), START)
    finals = [e.status.value for p in pages for e in p.events if e.status.is_terminal]
    reads = [(r.path.rsplit("/", 1)[-1], r.status) for r in emulator.log]
    approvals = [r for r in reads if r[0] == "approvals"]
    files = [status for name, status in reads if name == "release.yml"]
    assert (["failure", "failure"], [], [200, 304]) == (finals, approvals, files)


def test_a_finished_run_is_dated_by_its_jobs_not_by_an_updated_at_that_moved_later(
    make_emulator, make_provider
):
    """updated_at moved months after completion (as GitHub does): the end is the job's completion."""
    emulator = make_emulator(start=START)
    run_id = start_pipeline(emulator, "octo/legacy", RELEASE, at=START, sha="c" * 40)
    emulator.advance(120)
    emulator.touch_run("octo/legacy", run_id, at=START + timedelta(days=400))
    harness = Harness(runs_provider(make_provider, emulator))
    harness.cycle()
    assert {
        f"gh-run-{run_id}-1": [
            ("queued", "2026-03-02T12:00:00Z"),
            ("in-progress", "2026-03-02T12:00:05Z"),
            ("success", "2026-03-02T12:01:05Z"),
        ]
    } == harness.by_deployment()


def test_a_run_of_two_jobs_ends_when_its_last_job_ends(make_emulator, make_provider):
    """Build ends 12:02, deploy 12:10: a poll between them does not date the success at 12:02."""
    emulator = make_emulator(start=START)
    workflow = emulator.add_workflow("octo/legacy", "Release", "release.yml")
    run = emulator.add_run("octo/legacy", workflow, at=START, sha="f" * 40)
    harness = Harness(runs_provider(make_provider, emulator))
    emulator.advance(30)
    emulator.set_run("octo/legacy", run.id, status="in_progress")
    emulator.set_job("octo/legacy", run.id, "build", status="in_progress")
    emulator.advance(90)
    emulator.set_job("octo/legacy", run.id, "build", status="completed", conclusion="success")
    emulator.set_job("octo/legacy", run.id, "deploy", status="in_progress")
    emulator.advance(60)
    harness.cycle()
    emulator.advance(420)
    emulator.set_job("octo/legacy", run.id, "deploy", status="completed", conclusion="success")
    emulator.set_run("octo/legacy", run.id, status="completed", conclusion="success")
    emulator.advance(60)
    harness.cycle()
    assert [
        ("queued", "2026-03-02T12:00:00Z"),
        ("in-progress", "2026-03-02T12:00:30Z"),
        ("success", "2026-03-02T12:10:00Z"),
    ] == harness.by_deployment()[f"gh-run-{run.id}-1"]


def _failed_deploy_three_days_back(make_emulator, make_provider):
    """A failed deploy, then three days of other runs polled daily: (emulator, harness, run id)."""
    emulator = make_emulator(start=START)
    run_id = start_pipeline(
        emulator, "octo/legacy", RELEASE, at=START, sha="d" * 40, plan=Pipeline("failure")
    )
    emulator.advance(120)
    harness = Harness(runs_provider(make_provider, emulator))
    harness.cycle()
    for _ in range(3):
        emulator.advance(86400)
        start_pipeline(emulator, "octo/legacy", RELEASE, at=emulator.now(), sha="e" * 40)
        emulator.advance(120)
        harness.cycle()
    return emulator, harness, run_id


def test_a_rerun_of_a_run_older_than_the_rerun_window_is_seen_while_it_runs(
    make_emulator, make_provider
):
    """A failed deploy re-run three days later (rerun_window 1d) is seen running, then succeeding."""
    emulator, harness, run_id = _failed_deploy_three_days_back(make_emulator, make_provider)
    emulator.rerun("octo/legacy", run_id)
    emulator.advance(10)
    emulator.set_run("octo/legacy", run_id, status="in_progress")
    emulator.advance(20)
    harness.cycle()
    emulator.advance(60)
    emulator.set_run("octo/legacy", run_id, status="completed", conclusion="success")
    emulator.advance(30)
    harness.cycle()
    assert ["queued", "in-progress", "success"] == [
        status for status, _ in harness.by_deployment()[f"gh-run-{run_id}-2"]
    ]


def test_a_late_rerun_held_by_a_reviewer_is_seen_waiting_through_the_active_lists(
    make_emulator, make_provider
):
    """A re-run 3 days late (rerun_window 1d), held by a reviewer, is found by status=waiting."""
    emulator, harness, run_id = _failed_deploy_three_days_back(make_emulator, make_provider)
    emulator.rerun("octo/legacy", run_id)
    rerun_at = emulator.now()
    emulator.advance(10)
    emulator.set_run("octo/legacy", run_id, status="waiting")
    emulator.advance(20)
    emulator.reset_log()
    harness.cycle()
    asked = [r.query for r in emulator.log if r.path.endswith("/octo/legacy/actions/runs")]
    seen_waiting = [s for s, _ in harness.by_deployment().get(f"gh-run-{run_id}-2", [])]
    emulator.advance(60)
    emulator.set_run("octo/legacy", run_id, status="in_progress")
    emulator.advance(30)
    harness.cycle()
    emulator.advance(30)
    emulator.set_run("octo/legacy", run_id, status="completed", conclusion="success")
    emulator.advance(30)
    harness.cycle()
    assert any("status=waiting" in query for query in asked)
    assert ["queued", "waiting"] == seen_waiting
    assert [
        ("queued", _at(rerun_at)),
        ("waiting", _at(rerun_at + timedelta(seconds=10))),
        ("in-progress", _at(rerun_at + timedelta(seconds=90))),
        ("success", _at(rerun_at + timedelta(seconds=150))),
    ] == harness.by_deployment()[f"gh-run-{run_id}-2"]


def _at(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_cycle_cut_short_resumes_after_the_last_chunk_it_stored(
    make_emulator, make_provider, monkeypatch
):
    """Runs are stored in chunks, each with its cursor; killed after one, the rest is read next."""
    monkeypatch.setattr(runs_module, "_CHUNK", 2)
    emulator = make_emulator(start=START)
    for minute in range(5):
        start_pipeline(
            emulator, "octo/legacy", RELEASE, at=START + timedelta(minutes=minute), sha="c" * 40
        )
    emulator.advance(3600)
    provider = runs_provider(make_provider, emulator)
    pages = list(provider.poll("octo/legacy", None))
    stored = [page.cursor for page in pages if page.cursor is not None]
    marks = [cursor["mark"] for cursor in stored]
    assert (3, marks) == (len(stored), sorted(marks))
    assert ({}, True) == (stored[0].get("etags", {}), bool(stored[-1].get("etags")))
    again = Harness(runs_provider(make_provider, emulator))
    again.cursors["octo/legacy"] = stored[0]  # the process died after the first chunk
    again.cycle()
    first = {e.deployment_id for page in pages[:1] for e in page.events}
    resumed = {e.deployment_id for e in again.seen.values()}
    assert (2, set(), 3) == (len(first), first & resumed, len(resumed))

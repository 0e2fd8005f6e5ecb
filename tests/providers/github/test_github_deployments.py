"""The adapter in deployments mode, through PyGithub over real HTTP against the GitHub emulator."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs
from tests.providers.github.support import Harness, expected_deployment_keys

from deploy_fetcher.emulators.github import (
    Pipeline,
    RepoSpec,
    Scenario,
    WorkflowSpec,
    start_pipeline,
)
from deploy_fetcher.model import Status

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CHAIN = WorkflowSpec("Deploy API", "deploy.yml", ("dev", "staging", "prod"), frozenset({"prod"}))
WEB = WorkflowSpec("Deploy Web", "deploy-web.yml", ("dev", "prod"))


def scenario() -> Scenario:
    """Two repositories with history, and no random activity (the tests schedule their own)."""
    return Scenario(
        repos=[
            RepoSpec("octo/api", (CHAIN,)),
            RepoSpec("octo/web", (WEB,), tool_environments=("preview",)),
        ],
        history_pipelines=2,
        history=timedelta(hours=6),
    )


def test_many_cycles_and_a_restart_give_every_transition_exactly_once(make_emulator, make_provider):
    """Across 90 cycles and a restart, the deduplicated events equal every transition, none conflicting."""
    emulator = make_emulator(scenario=scenario(), start=START)
    plans = [
        Pipeline(),
        Pipeline("cancelled", 1),
        Pipeline("rejected", 2),
        Pipeline("failure", 0),
        Pipeline(),
    ]
    for index, plan in enumerate(plans):
        start_pipeline(
            emulator,
            "octo/api",
            CHAIN,
            at=START + timedelta(minutes=4 + 13 * index),
            sha=f"{index:040x}",
            plan=plan,
        )
    start_pipeline(emulator, "octo/web", WEB, at=START + timedelta(minutes=20), sha="f" * 40)
    emulator.schedule(
        START + timedelta(minutes=30),
        lambda at: emulator.add_deployment(
            "octo/web", "preview", sha="e" * 40, at=at, statuses=[("pending", at)]
        ),
    )
    provider, context = make_provider(emulator, repos=["octo/api", "octo/web"])
    harness = Harness(provider)
    for cycle in range(90):
        if cycle == 45:
            restarted, _ = make_provider(
                emulator,
                context=context.__class__(
                    emulator, metrics=context.metrics, defaults=context.defaults
                ),
                repos=["octo/api", "octo/web"],
            )
            harness.provider = restarted
        harness.cycle()
        emulator.advance(60)
    since = START - timedelta(days=7)
    expected = expected_deployment_keys(emulator, "octo/api", since) | expected_deployment_keys(
        emulator, "octo/web", since
    )
    assert expected == harness.dedup_keys()
    firsts: dict[tuple[str, str], str] = {}
    for dep, status, at in harness.dedup_keys():
        assert firsts.setdefault((dep, status), at) == at
    finals = {dep: steps[-1][0] for dep, steps in harness.by_deployment().items()}
    assert {"cancelled", "rejected", "failure", "success", "pending"} <= set(finals.values())
    assert not any(
        {"failure", "cancelled"} <= {s for s, _ in steps}
        for steps in harness.by_deployment().values()
    )


def test_idle_cycles_cost_no_quota_also_after_a_restart(make_emulator, make_provider):
    """Once everything is read, a cycle costs only free 304s, even for a fresh provider on the cursor."""
    emulator = make_emulator(scenario=scenario(), start=START)
    provider, _ = make_provider(emulator, repos=["octo/api", "octo/web"])
    harness = Harness(provider)
    harness.cycle()
    emulator.reset_log()
    for _ in range(20):
        assert [] == harness.cycle()
        emulator.advance(60)
    restarted, _ = make_provider(emulator, repos=["octo/api", "octo/web"])
    harness.provider = restarted
    assert [] == harness.cycle()
    assert ([], {304}) == (emulator.charged(), {r.status for r in emulator.log})


def test_parents_follow_the_needs_graph_between_environment_jobs(make_emulator, make_provider):
    """Dev → smoke → staging → prod: each deployment's parent is the previous environment's deployment."""
    emulator = make_emulator(start=START)
    run_id = start_pipeline(emulator, "octo/api", CHAIN, at=START, sha="a" * 40)
    emulator.advance(3600)
    harness = Harness(make_provider(emulator)[0])
    harness.cycle()
    deployments = {
        d.environment: d.id
        for d in emulator.repo("octo/api").deployments.values()
        if d.run_id == run_id
    }
    parents = {e.environment: e.parent_deployments for e in harness.seen.values()}
    assert {
        "dev": (),
        "staging": (f"gh-deploy-{deployments['dev']}",),
        "prod": (f"gh-deploy-{deployments['staging']}",),
    } == parents


def test_parent_from_an_earlier_cycle_survives_a_restart(make_emulator, make_provider):
    """A parent deployed before a restart is found again by asking for the run's deployments."""
    emulator = make_emulator(start=START)
    start_pipeline(emulator, "octo/api", CHAIN, at=START, sha="b" * 40)
    emulator.advance(90)
    first = Harness(make_provider(emulator)[0])
    first.cycle()
    dev = next(
        d.id for d in emulator.repo("octo/api").deployments.values() if d.environment == "dev"
    )
    second = Harness(make_provider(emulator)[0], cursors=dict(first.cursors))
    emulator.advance(3600)
    second.cycle()
    staging = {e.parent_deployments for e in second.seen.values() if e.environment == "staging"}
    assert {(f"gh-deploy-{dev}",)} == staging


def test_failure_is_emitted_once_the_run_says_cancelled(make_emulator, make_provider):
    """A failure while the run still runs is held back, then emitted as cancelled when the run ends so."""
    emulator = make_emulator(start=START)
    wf = emulator.add_workflow("octo/api", "Deploy API", "deploy.yml")
    run = emulator.add_run(
        "octo/api", wf, at=START - timedelta(minutes=5), sha="c" * 40, status="in_progress"
    )
    dep = emulator.add_deployment(
        "octo/api", "prod", sha="c" * 40, run=run, at=START - timedelta(minutes=4)
    )
    emulator.add_status("octo/api", dep.id, "in_progress", at=START - timedelta(minutes=4))
    emulator.add_status("octo/api", dep.id, "failure", at=START - timedelta(minutes=1))
    harness = Harness(make_provider(emulator)[0])
    assert [Status.IN_PROGRESS] == [e.status for e in harness.cycle()]
    assert [] == harness.cycle()
    emulator.set_run("octo/api", run.id, status="completed", conclusion="cancelled")
    before = harness.dedup_keys()
    harness.cycle()
    assert {
        (f"gh-deploy-{dep.id}", "cancelled", "2026-03-02T11:59:00Z")
    } == harness.dedup_keys() - before
    assert {} == harness.cursors["octo/api"].get("open", {})


def test_enterprise_server_prefix(make_emulator, make_provider):
    """With base_url …/api/v3 every REST call goes under that prefix and GraphQL under /api/graphql."""
    emulator = make_emulator(scenario=scenario(), start=START)
    provider, _ = make_provider(emulator, base_url=emulator.url("/api/v3"), repos=["octo/api"])
    harness = Harness(provider)
    events = harness.cycle()
    paths = {r.path.split("/")[1] + "/" + r.path.split("/")[2] for r in emulator.log}
    assert (
        expected_deployment_keys(emulator, "octo/api", START - timedelta(days=7))
        == harness.dedup_keys()
    )
    assert {"api/v3", "api/graphql"} == paths
    assert {"http://127.0.0.1"} == {e.metadata["commit_url"].rsplit(":", 1)[0] for e in events}


def test_backfill_walks_a_window_and_emits_oldest_first(make_emulator, make_provider):
    """A backfill yields only events inside [since, until), oldest first, in pages without a cursor."""
    emulator = make_emulator(scenario=scenario(), start=START)
    provider, _ = make_provider(emulator, repos=["octo/api"])
    since, until = START - timedelta(hours=6), START - timedelta(hours=5)
    pages = list(provider.backfill("octo/api", since, until))
    events = [e for p in pages for e in p.events]
    times = [e.happened_at for e in events]
    in_window = {
        key
        for key in expected_deployment_keys(emulator, "octo/api", since)
        if since <= datetime.fromisoformat(key[2]) < until
    }
    assert [None] == [p.cursor for p in pages]
    assert times == sorted(times)
    assert in_window == {e.dedup_key for e in events}
    # Eleven statuses in the window; the queued GitHub sets after an approval is not an event.
    assert 9 == len(in_window)


def test_open_deployment_is_rechecked_for_free_until_it_ends(make_emulator, make_provider):
    """An open deployment costs a 304 per cycle while unchanged and is never read after it ends."""
    emulator = make_emulator(start=START)
    dep = emulator.add_deployment(
        "octo/api", "prod", sha="d" * 40, at=START, statuses=[("pending", START)]
    )
    harness = Harness(make_provider(emulator)[0])
    harness.cycle()
    emulator.reset_log()
    harness.cycle()
    assert [] == emulator.charged()
    emulator.add_status("octo/api", dep.id, "success", at=START + timedelta(minutes=2))
    assert [Status.PENDING, Status.SUCCESS] == [e.status for e in harness.cycle()]
    emulator.reset_log()
    harness.cycle()
    assert ([], ["/repos/octo/api/deployments"]) == (
        emulator.charged(),
        [r.path for r in emulator.log],
    )


def test_a_deleted_open_deployment_is_dropped_after_one_read(make_emulator, make_provider):
    """Statuses answering 404 (the deployment was deleted) drop it from the open set, logged once."""
    emulator = make_emulator(start=START)
    dep = emulator.add_deployment(
        "octo/api", "prod", sha="d" * 40, at=START, statuses=[("pending", START)]
    )
    harness = Harness(make_provider(emulator)[0])
    harness.cycle()
    with emulator.state_lock:
        del emulator.repo("octo/api").deployments[dep.id]
    emulator.reset_log()
    with capture_logs() as logs:
        for _ in range(3):
            harness.cycle()
    reads = [r.path for r in emulator.log if r.path.endswith("/statuses")]
    gone = [e for e in logs if e["event"] == "github.deployment_gone"]
    assert (1, 1, {}) == (len(reads), len(gone), harness.cursors["octo/api"].get("open", {}))


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["pending"], ["pending"]),
        (["queued"], ["queued"]),
        (["in_progress"], ["in-progress"]),
        (["waiting"], ["waiting"]),
        (["queued", "success"], ["queued", "success"]),
        (["in_progress", "failure"], ["in-progress", "failure"]),
        (["in_progress", "error"], ["in-progress", "failure"]),
        (["success", "inactive"], ["success"]),
    ],
)
def test_status_mapping_table_end_to_end(make_emulator, make_provider, states, expected):
    """Each GitHub status, read through PyGithub from the emulator, maps to the documented status."""
    emulator = make_emulator(start=START)
    at = START - timedelta(minutes=10)
    statuses = [(state, at + timedelta(minutes=n)) for n, state in enumerate(states)]
    emulator.add_deployment("octo/api", "prod", sha="5" * 40, at=at, statuses=statuses)
    harness = Harness(make_provider(emulator)[0])
    harness.cycle()
    assert expected == [status for steps in harness.by_deployment().values() for status, _ in steps]


def test_repositories_polled_in_parallel_threads_share_the_provider_safely(
    make_emulator, make_provider
):
    """The scheduler polls targets of one source at once: both repositories come out complete."""
    emulator = make_emulator(scenario=scenario(), start=START)
    provider, _ = make_provider(emulator, repos=["octo/api", "octo/web"])
    results: dict[str, set[tuple[str, str, str]]] = {}
    barrier = threading.Barrier(2)

    def poll(target: str) -> None:
        barrier.wait(timeout=10)
        results[target] = {e.dedup_key for page in provider.poll(target, None) for e in page.events}

    threads = [threading.Thread(target=poll, args=(t,)) for t in ("octo/api", "octo/web")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    since = START - timedelta(days=7)
    assert {
        "octo/api": expected_deployment_keys(emulator, "octo/api", since),
        "octo/web": expected_deployment_keys(emulator, "octo/web", since),
    } == results

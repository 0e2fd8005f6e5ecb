"""``fetcher explain``'s reread: one deployment's events with the GitHub objects behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_a_reread_tool_deployment_carries_its_deployment_and_statuses(make_emulator, make_provider):
    """The deployment and its statuses list are recorded; its sibling's objects are not."""
    emulator = make_emulator(start=START)
    done = [
        ("in_progress", START + timedelta(minutes=1)),
        ("success", START + timedelta(minutes=3)),
    ]
    wanted = emulator.add_deployment("octo/api", "prod", sha="a" * 40, at=START, statuses=done)
    emulator.add_deployment("octo/api", "dev", sha="a" * 40, at=START, statuses=done)
    emulator.advance(600)
    provider, _ = make_provider(emulator)
    found = provider.reread(
        "octo/api", f"gh-deploy-{wanted.id}", since=START - timedelta(hours=1), until=emulator.now()
    )
    assert [f"deployment {wanted.id}", f"deployment {wanted.id} statuses"] == [
        what for what, _ in found.objects
    ]
    deployment, statuses = (data for _, data in found.objects)
    assert (wanted.id, "prod", ["in_progress", "success"]) == (
        deployment["id"],
        deployment["environment"],
        sorted(s["state"] for s in statuses),
    )
    assert ["in-progress", "success"] == [e.status.value for e in found.events]


def test_a_reread_workflow_run_carries_the_run_object(make_emulator, make_provider):
    """In workflow-runs mode the object is the run (its attempt) the events were mapped from."""
    emulator = make_emulator(start=START)
    workflow = emulator.add_workflow("octo/legacy", "Release", "release.yml")
    run = emulator.add_run("octo/legacy", workflow, at=START, sha="f" * 40)
    emulator.advance(30)
    emulator.set_run("octo/legacy", run.id, status="in_progress")
    emulator.advance(300)
    emulator.set_run("octo/legacy", run.id, status="completed", conclusion="success")
    emulator.advance(60)
    entry = {"repo": "octo/legacy", "mode": "workflow_runs", "workflows": ["release.yml"]}
    provider, _ = make_provider(emulator, repos=[entry])
    found = provider.reread(
        "octo/legacy", f"gh-run-{run.id}-1", since=START - timedelta(hours=1), until=emulator.now()
    )
    assert [(f"workflow run {run.id} attempt 1", run.id, "success")] == [
        (what, data["id"], data["conclusion"]) for what, data in found.objects
    ]
    assert ["queued", "in-progress", "success"] == [e.status.value for e in found.events]

"""`fetcher explain`: what was read, the rules applied, and what each sink got."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support import run_cli, write_config

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.emulators.github import demo_source as github_source

KEY = "explain-key"
T0 = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def dashboard():
    emulator = DashboardEmulator(api_key=KEY)
    emulator.start()
    yield emulator
    emulator.stop()


def _dashboard_sink(dashboard) -> dict:
    return {
        "name": "dashboard",
        "type": "deployment-dashboard",
        "url": dashboard.url(),
        "api_key": KEY,
        "backoff_initial": "50ms",
        "backoff_max": "200ms",
    }


@pytest.fixture
def scripted(tmp_path, dashboard):
    """One deployment in three statuses, a rename rule, a sink that wants only successes."""
    lines = [
        {
            "deployment_id": "dep-1",
            "service": "api",
            "environment": "production",
            "status": status,
            "happened_at": (T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for i, status in enumerate(["queued", "in-progress", "success"])
    ]
    script = tmp_path / "events.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return write_config(
        tmp_path / "fetcher.yaml",
        {
            "rules": {"environment": {"rename": {"production": "prod"}}},
            "sources": [{"name": "replay", "provider": "scripted", "script": str(script)}],
            "sinks": [
                _dashboard_sink(dashboard),
                {
                    "name": "archive",
                    "type": "jsonl",
                    "path": str(tmp_path / "out.jsonl"),
                    "include": {"statuses": ["success"]},
                    "rename": {"services": {"api": "API"}},
                },
            ],
        },
    )


def _sync(config) -> None:
    result = run_cli(
        "sync", "--config", str(config), "--since", "2026-01-31", "--until", "2026-02-02"
    )
    assert result.returncode in {0, 1}, result.stderr


def test_explain_follows_each_event_through_rules_and_sinks(scripted):
    """Each status shows the rename applied, and per sink delivered or why it was not queued."""
    _sync(scripted)
    result = run_cli("explain", "dep-1", "--config", str(scripted), "--output", "json")
    document = json.loads(result.stdout)
    assert (0, True) == (result.returncode, document["reread"])
    assert ["line 1", "line 2", "line 3"] == [o["what"] for o in document["objects"]]
    steps = {
        (e["read"]["status"], s["sink"]): s["state"] or s["verdict"]
        for e in document["events"]
        for s in e["sinks"]
    }
    assert {
        ("queued", "dashboard"): "delivered",
        ("in-progress", "dashboard"): "delivered",
        ("success", "dashboard"): "delivered",
        ("queued", "archive"): "not queued: left out by sinks[archive].include/exclude",
        ("in-progress", "archive"): "not queued: left out by sinks[archive].include/exclude",
        ("success", "archive"): "delivered",
    } == steps
    assert [["environment: 'production' → 'prod'"]] * 3 == [e["rules"] for e in document["events"]]
    (sent,) = [
        s["sent"]
        for e in document["events"]
        for s in e["sinks"]
        if s["sink"] == "archive" and s["sent"]
    ]
    assert ("API", "prod") == (sent["service"], sent["environment"])


def test_explain_shows_the_reason_of_a_dead_letter(scripted, dashboard):
    """A 422 from the dashboard appears on the event it refused, with the sink's answer."""
    dashboard.inject(
        Fault(status=422, body='{"detail":"bad"}', match="^/api/deployments$", method="POST")
    )
    _sync(scripted)
    text = run_cli("explain", "dep-1", "--config", str(scripted)).stdout
    assert "dashboard: dead-lettered after 1 attempt:" in text
    assert "bad" in text
    assert "environment: 'production' → 'prod'" in text


def test_explain_without_rereading_needs_no_provider(scripted, tmp_path):
    """--no-reread shows the outbox side alone, even when the source can no longer be read."""
    _sync(scripted)
    (tmp_path / "events.jsonl").unlink()
    result = run_cli("explain", "dep-1", "--no-reread", "--config", str(scripted))
    assert 0 == result.returncode
    assert "not read again (--no-reread)" in result.stdout
    assert 3 == result.stdout.count("→ dashboard: delivered")


def test_explain_an_unknown_deployment_exits_1(scripted):
    """An id with nothing in the outbox exits 1 and says how to read it anyway."""
    _sync(scripted)
    result = run_cli("explain", "nope", "--config", str(scripted))
    assert (1, True) == (result.returncode, "--since" in result.stderr)


def test_explain_a_github_deployment_read_again_from_the_emulator(tmp_path, dashboard):
    """A real-shaped GitHub deployment is read again and every status's delivery is shown."""
    github = GitHubEmulator()
    url = github.start()
    try:
        github.advance(3600)
        config = write_config(
            tmp_path / "fetcher.yaml",
            {"sinks": [_dashboard_sink(dashboard)], "sources": [github_source(url)]},
        )
        synced = run_cli("sync", "--config", str(config), "--since", "3d")
        assert 0 == synced.returncode, synced.stderr
        rows = json.loads(
            run_cli(
                "outbox", "list", "--state", "all", "--limit", "500",
                "--config", str(config), "--output", "json",
            ).stdout
        )  # fmt: skip
        deployment = next(
            r["deployment_id"] for r in rows if r["deployment_id"].startswith("gh-deploy-")
        )
        stored = sorted(
            (r["status"], r["happened_at"]) for r in rows if r["deployment_id"] == deployment
        )
        result = run_cli("explain", deployment, "--config", str(config), "--output", "json")
    finally:
        github.stop()
    document = json.loads(result.stdout)
    assert (0, True) == (result.returncode, document["reread"]), result.stderr
    assert document["target"].startswith("octo/")
    number = deployment.removeprefix("gh-deploy-")
    assert [f"deployment {number}", f"deployment {number} statuses"] == [
        o["what"] for o in document["objects"]
    ][:2]
    read = sorted((e["read"]["status"], e["read"]["happened_at"]) for e in document["events"])
    assert stored == read
    assert {"delivered"} == {s["state"] for e in document["events"] for s in e["sinks"]}


def _waiting_then_rejected(tmp_path, dashboard) -> Path:
    """A scripted deployment waiting, then rejected, for one dashboard sink (``status_set: auto``)."""
    lines = [
        {
            "deployment_id": "dep-2",
            "service": "api",
            "environment": "production",
            "status": status,
            "happened_at": (T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for i, status in enumerate(["waiting", "rejected"])
    ]
    script = tmp_path / "events.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return write_config(
        tmp_path / "fetcher.yaml",
        {
            "sources": [{"name": "replay", "provider": "scripted", "script": str(script)}],
            "sinks": [_dashboard_sink(dashboard)],
        },
    )


def test_explain_shows_what_a_dashboard_that_learned_three_statuses_holds(tmp_path):
    """After the switch to the original three statuses, waiting and rejected show as sent."""
    three = DashboardEmulator(api_key=KEY, status_set="three")
    three.start()
    try:
        config = _waiting_then_rejected(tmp_path, three)
        _sync(config)
        held = [(row["status"]) for row in three.rows()]
        document = json.loads(
            run_cli("explain", "dep-2", "--config", str(config), "--output", "json").stdout
        )
        text = run_cli("explain", "dep-2", "--config", str(config)).stdout
    finally:
        three.stop()
    assert ["in-progress", "failure"] == held
    sent = [(e["read"]["status"], s["state"], s["wire"]["status"]) for e in document["events"]
            for s in e["sinks"]]  # fmt: skip
    assert [("waiting", "delivered", "in-progress"), ("rejected", "delivered", "failure")] == sent
    assert "[sent as status: 'waiting' → 'in-progress']" in text
    assert "[sent as status: 'rejected' → 'failure']" in text


def test_a_dry_run_prints_the_statuses_a_dashboard_that_learned_three_would_get(tmp_path):
    """--dry-run reads the learned status set from the state store: waiting goes as in-progress."""
    three = DashboardEmulator(api_key=KEY, status_set="three")
    three.start()
    try:
        config = _waiting_then_rejected(tmp_path, three)
        before = run_cli(*_DRY_RUN, "--config", str(config))
        _sync(config)
        after = run_cli(*_DRY_RUN, "--config", str(config))
        held = len(three.rows())
    finally:
        three.stop()
    assert (0, 0) == (before.returncode, after.returncode), before.stderr + after.stderr
    assert [("dashboard", "waiting"), ("dashboard", "rejected")] == [
        (line["sink"], line["status"]) for line in map(json.loads, before.stdout.splitlines())
    ]
    assert [("dashboard", "in-progress"), ("dashboard", "failure")] == [
        (line["sink"], line["status"]) for line in map(json.loads, after.stdout.splitlines())
    ]
    assert 2 == held  # the dry runs sent nothing
    assert "2 events read, 2 deliveries to 1 sink (dry run" in after.stderr


_DRY_RUN = ("sync", "--dry-run", "--since", "2026-01-31", "--until", "2026-02-02")

"""The README's run command: `fetcher demo` brings events from all three CI emulators to the dashboard."""

from __future__ import annotations

import re

from deploy_fetcher.lifecycle import rank
from deploy_fetcher.model import Status
from tests.dashboard_view import latest_by_deployment
from tests.support import run_cli


def test_demo_delivers_events_from_every_provider():
    """A short demo run exits 0 and reports a positive count for GitHub, GitLab and Azure DevOps."""
    result = run_cli("demo", "--duration", "12s", "--plain", timeout=90)
    assert 0 == result.returncode, result.stderr[-2000:]
    counts = dict(
        re.findall(r"^\s+(github|gitlab|azure-devops)\s+(\d+)$", result.stdout, re.MULTILINE)
    )
    assert {"github", "gitlab", "azure-devops"} == set(counts)
    assert all(int(n) > 0 for n in counts.values()), counts
    rows = [line for line in result.stdout.splitlines() if line.startswith("20")]
    assert {"gh-", "gl-", "ado"} <= {line.split()[-1][:3] for line in rows}


def test_the_demo_dashboard_shows_each_deployment_at_its_furthest_state():
    """What the dashboard shows per deployment is never an earlier state than one it received."""
    result = run_cli("demo", "--duration", "12s", "--plain", timeout=90)
    assert 0 == result.returncode, result.stderr[-2000:]
    rows = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) == 6 and line.startswith("20"):
            at, provider, target, status, _version, deployment_id = fields
            service, _, environment = target.rpartition("/")
            rows.append(
                {
                    "deployment_id": deployment_id,
                    "service": service,
                    "environment": environment,
                    "status": status,
                    "happened_at": at,
                    "provider": provider,
                }
            )
    view = latest_by_deployment(rows)
    furthest: dict[str, int] = {}
    for row in rows:
        step = rank(Status(row["status"]))
        furthest[row["deployment_id"]] = max(furthest.get(row["deployment_id"], step), step)
    behind = {
        key: shown.status
        for key, shown in view.items()
        if rank(Status(shown.status)) < furthest[key]
    }
    assert {} == behind
    ended = {row["provider"] for row in rows if view[row["deployment_id"]].status in _ENDS}
    assert {"github", "gitlab", "azure-devops"} == ended


_ENDS = {"success", "failure", "cancelled", "rejected"}

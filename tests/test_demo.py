"""The README's run command: `fetcher demo` brings events from all three CI emulators to the dashboard."""

from __future__ import annotations

import re

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

"""What `fetcher demo` shows: aligned columns, a last frame equal to the summary, one naming rule."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from tests.support import run_cli


@pytest.fixture(scope="module")
def plain() -> list[str]:
    """The output lines of one short plain demo run."""
    result = run_cli("demo", "--duration", "10s", "--plain", timeout=90)
    assert 0 == result.returncode, result.stderr[-2000:]
    return result.stdout.splitlines()


def _rows(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("20")]


def test_plain_lines_are_aligned_under_their_header(plain):
    """Every row's columns start where the header's do."""
    header = plain[0]
    starts = [header.index(name) for name in ("from", "service/environment", "status", "version")]
    misaligned = [
        row for row in _rows(plain) if any(row[at - 1] != " " or row[at] == " " for at in starts)
    ]
    assert (True, []) == (bool(_rows(plain)), misaligned)


def test_the_rows_shown_add_up_to_the_summary(plain):
    """The rows printed per CI system are exactly the counts of the final summary."""
    shown = Counter(row.split()[1] for row in _rows(plain))
    text = "\n".join(plain)
    pattern = r"^\s+(github|gitlab|azure-devops)\s+(\d+)$"
    summary = {name: int(count) for name, count in re.findall(pattern, text, re.MULTILINE)}
    assert summary == dict(shown)


def test_services_are_named_after_repositories_and_projects(plain):
    """Every CI system names services by the repository's short name, never a workflow's."""
    services: dict[str, set[str]] = {row.split()[1]: set() for row in _rows(plain)}
    for row in _rows(plain):
        services[row.split()[1]].add(row.split()[2].rsplit("/", 1)[0])
    assert set() == {s for s in services.get("github", set()) if " " in s or s.startswith("Deploy")}
    assert (True, True, True) == (
        services["github"] <= {"api", "web", "legacy"},
        services["gitlab"] <= {"api", "web", "billing", "cli"},
        services["azure-devops"] <= {"api", "web", "worker"},
    )

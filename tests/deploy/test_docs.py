"""The operator docs (deployment.md, operations.md) stay true to the code they describe."""

import re
import shlex
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase
from tests.deploy._paths import ROOT

from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent, Status

DOCS = ROOT / "docs"
OPERATIONS = DOCS / "operations.md"
DEPLOYMENT = DOCS / "deployment.md"
OUR_DOCS = (OPERATIONS, DEPLOYMENT)
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: Where a documented command line stops being the fetcher's arguments.
_SHELL_BREAKS = {"|", "&&", ";", ">", "2>&1"}


def _blocks(path: Path, language: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [body for lang, body in _FENCE.findall(text) if lang == language]


def _shell_commands(path: Path) -> list[str]:
    """Shell blocks as logical lines (backslash continuations joined)."""
    out = []
    for block in _blocks(path, "sh"):
        out.extend(line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip())
    return out


def _fetcher_invocations(path: Path) -> list[list[str]]:
    """The argument lists of every ``fetcher …`` command in the file's shell blocks."""
    found = []
    for line in _shell_commands(path):
        words = shlex.split(line, comments=True)
        for index, word in enumerate(words):
            if word == "fetcher" or word.endswith("/bin/fetcher"):
                args = []
                for arg in words[index + 1 :]:
                    if arg in _SHELL_BREAKS:
                        break
                    args.append(arg)
                if args:  # a bare `fetcher` is the compose service's name, not the command
                    found.append(args)
                break
    return found


def _documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """Rows of the metrics table: name → (type, label names); ``(…)`` notes are not labels."""
    text = OPERATIONS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(fetcher_[a-z_]+)` \| (\w+) \| ([^|]+) \|", text, re.MULTILINE)
    return {
        name: (kind, set(re.findall(r"`(\w+)`", labels.split("(")[0])))
        for name, kind, labels in rows
    }


def _exported_metrics() -> dict[str, tuple[str, set[str]]]:
    out = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            suffix = {"counter": "_total", "info": "_info"}.get(metric._type, "")
            name = metric._name + suffix
            out[name] = (metric._type, set(metric._labelnames))
    return out


def test_the_metrics_table_lists_every_exported_metric_with_its_type_and_labels():
    """operations.md documents exactly the metrics the daemon exports."""
    assert _exported_metrics() == _documented_metrics()


@pytest.mark.parametrize("path", OUR_DOCS, ids=lambda p: p.name)
def test_every_documented_fetcher_command_parses(path):
    """Each ``fetcher …`` line in the docs is accepted by the real command-line parser."""
    from deploy_fetcher.cli import build_parser

    invocations = _fetcher_invocations(path)
    assert invocations
    parser = build_parser()
    rejected = []
    for args in invocations:
        try:
            parser.parse_args(args)
        except SystemExit as exc:
            if exc.code != 0:
                rejected.append(shlex.join(["fetcher", *args]))
    assert [] == rejected


def test_the_documented_online_backup_copies_uncheckpointed_writes(tmp_path):
    """The runbook's Python backup one-liner copies a live WAL state file, recent writes included."""
    from deploy_fetcher.config import StateConfig
    from deploy_fetcher.store import open_store

    (command,) = [c for c in _shell_commands(OPERATIONS) if c.startswith("python -c")]
    code = shlex.split(command)[2]
    live = tmp_path / "state.db"
    store = open_store(StateConfig(path=live))
    try:
        event = DeployEvent(
            deployment_id="gh-1",
            service="api",
            environment="prod",
            status=Status.SUCCESS,
            happened_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
        store.commit_page("github/octo/api", {"mark": 42}, [("dashboard", event)])
        assert (tmp_path / "state.db-wal").stat().st_size > 0, "the write sits in the WAL"
        backup = tmp_path / "backup.db"
        subprocess.run([sys.executable, "-c", code, str(live), str(backup)], check=True, timeout=30)
    finally:
        store.close()
    copy = open_store(StateConfig(path=backup))
    try:
        assert {"mark": 42} == copy.get_cursor("github/octo/api")
        assert 1 == copy.pending_count("dashboard")
    finally:
        copy.close()
    with sqlite3.connect(backup) as conn:
        assert "ok" == conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_every_log_event_in_the_runbook_is_emitted_by_the_code():
    """The log table names events that exist (``<provider>.…`` patterns aside)."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("## Logs", 1)[1].split("\n## ", 1)[0]
    events = set()
    for cell in re.findall(r"^\| ([^|]+) \|", section, re.MULTILINE):
        events |= {e for e in re.findall(r"`([a-z_.<>]+)`", cell) if "<" not in e}
    assert events
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py"))
    assert set() == {e for e in events if f'"{e}"' not in source}


@pytest.mark.parametrize("path", OUR_DOCS, ids=lambda p: p.name)
def test_relative_links_point_at_existing_files(path):
    """Every relative link of the doc resolves to a file or folder of the repository."""
    text = path.read_text(encoding="utf-8")
    targets = {t.split("#", 1)[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)}
    local = {t for t in targets if t and not re.match(r"^[a-z]+:", t)}
    assert set() == {t for t in local if not (path.parent / t).exists()}

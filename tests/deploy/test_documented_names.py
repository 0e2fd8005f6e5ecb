"""Every metric, command, flag and log event the documentation names exists, spelled the same.

The docs are read as an operator reads them: ``fetcher_…`` anywhere is a metric series, ``fetcher
COMMAND … --flag`` in a code block or a code span is a command line, and the runbook's log table
lists every event the code emits at info or above.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from tests.deploy._paths import ROOT

from deploy_fetcher.cli import build_parser
from deploy_fetcher.cli._completion import Command, command_tree
from deploy_fetcher.metrics import Metrics

DOCS = sorted(
    [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / "config.example.yaml",
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "deploy").rglob("*.md"),
        *(ROOT / "deploy").rglob("*.yaml"),
        *(ROOT / "deploy").rglob("*.service"),
    ]
)
_METRIC = re.compile(r"(?<![A-Za-z0-9_/.])fetcher_[a-z_]+[a-z]")
_COMMAND = re.compile(r"(?:^|[`\s$(])fetcher((?: +[^\s`|;&>)]+)+)")
_LEVELS = {"info", "warning", "error", "exception", "critical"}


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _series() -> set[str]:
    """Every series name the daemon's registry exposes (counters' _total, histograms' parts)."""
    metrics = Metrics()
    metrics.cycle("s", "t", "ok", 0.1)
    metrics.discovery("s", "auth_error")
    for gauge in (metrics.outbox_depth, metrics.dead_letters, metrics.sink_paused):
        gauge.labels("k").set(0)
    metrics.cursor_lag.labels("s", "t").set(0)
    metrics.deliveries.labels("k", "delivered").inc()
    metrics.delivery_latency.labels("k").observe(1)
    metrics.ci_request("github", 200)
    metrics.ci_request_limit("github", "deadline")
    metrics.rate_limit("github", "c", remaining=1, limit=2)
    metrics.events.labels("s", "success").inc()
    metrics.nudges.labels("github", "polled").inc()
    metrics.poll_stretch.labels("github").set(1)
    metrics.hot_targets.labels("github").set(0)
    metrics.request_limit.labels("github", "declared").set(900)
    metrics.requests_last_minute.labels("github").set(0)
    text = generate_latest(metrics.registry).decode()
    # A histogram is named by its family too; a counter only by its ``_total`` series.
    families = {f.name for f in metrics.registry.collect() if f.type in {"histogram", "info"}}
    return set(re.findall(r"^(fetcher_[a-z_]+)[{ ]", text, re.MULTILINE)) | families


@pytest.mark.parametrize("path", DOCS, ids=_ids)
def test_every_documented_metric_is_exported(path):
    """Each ``fetcher_…`` series a document names is one the daemon exports."""
    exported = _series()
    named = set(_METRIC.findall(path.read_text(encoding="utf-8")))
    assert set() == named - exported


def _tree() -> Command:
    return command_tree(build_parser())


def _flags_of(words: list[str]) -> tuple[list[str], set[str]]:
    """The command path the words start with, and every flag valid there (global ones too)."""
    node = _tree()
    flags = set(node.options)
    path: list[str] = []
    for word in words:
        child = next((c for c in node.children if c.path[-1] == word), None)
        if child is None:
            break
        node = child
        path.append(word)
        flags |= set(node.options)
    return path, flags


def _invocations(text: str) -> list[list[str]]:
    out = []
    for match in _COMMAND.finditer(text):
        words = match.group(1).split()
        if words and words[0] in {c.path[-1] for c in _tree().children} | {"--config", "--output"}:
            out.append(words)
    return out


def _wrong_flags(text: str) -> list[str]:
    """``fetcher …`` command lines of ``text`` that use a flag their command does not have."""
    wrong = []
    for words in _invocations(text):
        command_words = [w for w in words if not w.startswith("-")]
        _, flags = _flags_of(command_words)
        unknown = sorted(
            {w.split("=")[0] for w in re.findall(r"--[a-z][a-z-]*", " ".join(words))} - flags
        )
        if unknown:
            wrong.append(f"fetcher {' '.join(words)}: {', '.join(unknown)}")
    return wrong


@pytest.mark.parametrize("path", DOCS, ids=_ids)
def test_every_documented_command_and_flag_exists(path):
    """Each ``fetcher COMMAND … --flag`` a document shows names a real command and real flags."""
    assert [] == _wrong_flags(path.read_text(encoding="utf-8"))


def test_the_flag_check_finds_a_misspelt_flag_and_reads_the_readme():
    """The checker flags a wrong flag in a code span, and finds the README's command lines."""
    assert ["fetcher sync --sinse 7d: --sinse"] == _wrong_flags("run `fetcher sync --sinse 7d`")
    assert len(_invocations((ROOT / "README.md").read_text(encoding="utf-8"))) >= 10


def _emitted_events() -> dict[str, str]:
    """Events logged by the package at info or above (emulators aside), with their level."""
    found: dict[str, str] = {}
    src = ROOT / "src" / "deploy_fetcher"
    for path in src.rglob("*.py"):
        if "emulators" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _LEVELS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and re.fullmatch(r"[a-z_]+\.[a-z_.]+", node.args[0].value)
            ):
                found.setdefault(node.args[0].value, node.func.attr)
    return found


def test_the_runbook_lists_every_log_event_the_code_emits():
    """Each event logged at info or above appears in operations.md's log tables."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Logs", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+\.[a-z_.]+)`", section))
    assert [] == sorted(set(_emitted_events()) - documented)

"""The JSONL sink: one durable line per event, rotation by size, writable-path check."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks import Delivered, Retry, SinkContext
from deploy_fetcher.sinks.jsonl import JsonlConfig, JsonlSink
from deploy_fetcher.sinks.jsonl.rotation import needs_rotation

Make = Callable[..., DeployEvent]


def _sink(path: Path, context: SinkContext, **keys: Any) -> JsonlSink:
    return JsonlSink(JsonlConfig(name="archive", type="jsonl", path=path, **keys), context)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_line_per_event_in_order(
    tmp_path: Path, context: SinkContext, make_event: Make
) -> None:
    """Each event is appended as one line holding the canonical document."""
    path = tmp_path / "out" / "events.jsonl"
    sink = _sink(path, context)
    assert Delivered() == sink.send(make_event(status="in-progress", version=None, run_url=None))
    assert Delivered() == sink.send(make_event())
    first, second = _lines(path)
    assert "success" == second["status"]
    assert {
        "deployment_id": "gh-1001",
        "service": "checkout",
        "environment": "prod",
        "status": "in-progress",
        "happened_at": "2026-01-31T12:00:00Z",
        "run_number": 42,
        "actor": "octocat",
        "ref": "refs/heads/main",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "provider": "github",
        "source": "octo-github",
        "metadata": {"branch": "main", "repo": "octo/checkout", "repo_name": "checkout"},
    } == first


def test_fields_narrow_each_line(tmp_path: Path, context: SinkContext, make_event: Make) -> None:
    """fields: keeps only those keys, in that order."""
    path = tmp_path / "events.jsonl"
    _sink(path, context, fields=["happened_at", "status"]).send(make_event())
    assert '{"happened_at":"2026-01-31T12:00:00Z","status":"success"}\n' == path.read_text()


def test_rotation_by_size_keeps_the_newest_backups(
    tmp_path: Path, context: SinkContext, make_event: Make
) -> None:
    """A full file becomes .1, older ones shift up, and only `backups` of them are kept."""
    path = tmp_path / "events.jsonl"
    probe = tmp_path / "probe.jsonl"
    _sink(probe, context, fields=["deployment_id"]).send(make_event(deployment_id="gh-0"))
    line_size = probe.stat().st_size
    sink = _sink(path, context, fields=["deployment_id"], max_bytes=2 * line_size, backups=2)
    for number in range(7):
        assert Delivered() == sink.send(make_event(deployment_id=f"gh-{number}"))
    assert ["gh-6"] == [line["deployment_id"] for line in _lines(path)]
    assert ["gh-4", "gh-5"] == [
        line["deployment_id"] for line in _lines(path.with_name("events.jsonl.1"))
    ]
    assert ["gh-2", "gh-3"] == [
        line["deployment_id"] for line in _lines(path.with_name("events.jsonl.2"))
    ]
    assert not path.with_name("events.jsonl.3").exists()


def test_zero_backups_truncates(tmp_path: Path, context: SinkContext, make_event: Make) -> None:
    """With backups: 0 a full file is simply started afresh."""
    path = tmp_path / "events.jsonl"
    sink = _sink(path, context, fields=["deployment_id"], max_bytes=10, backups=0)
    sink.send(make_event(deployment_id="gh-1"))
    sink.send(make_event(deployment_id="gh-2"))
    assert ["gh-2"] == [line["deployment_id"] for line in _lines(path)]
    assert ["events.jsonl", "events.jsonl.lock"] == sorted(p.name for p in tmp_path.iterdir())


def test_needs_rotation_rules() -> None:
    """Rotate only a non-empty file that the next line would overfill; 0 disables rotation."""
    assert needs_rotation(90, 20, 100)
    assert not needs_rotation(80, 20, 100)
    assert not needs_rotation(0, 500, 100)
    assert not needs_rotation(10**9, 20, 0)


def test_unwritable_path_is_retried_not_lost(
    tmp_path: Path, context: SinkContext, make_event: Make
) -> None:
    """A write that fails (here: the path is a directory) is a Retry naming the file."""
    path = tmp_path / "events.jsonl"
    path.mkdir()
    outcome = _sink(path, context).send(make_event())
    assert isinstance(outcome, Retry)
    assert outcome.reason.startswith(f"cannot write {path}")


def test_check_accepts_a_creatable_path(tmp_path: Path, context: SinkContext) -> None:
    """A file that does not exist yet passes when its nearest directory is writable."""
    result = _sink(tmp_path / "new" / "events.jsonl", context).check()
    assert (True, True) == (result.ok, result.verified)


def test_check_refuses_a_directory(tmp_path: Path, context: SinkContext) -> None:
    """A path that is a directory cannot take lines."""
    assert not _sink(tmp_path, context).check().ok


def test_check_refuses_a_path_under_a_file(tmp_path: Path, context: SinkContext) -> None:
    """A path whose parent is a regular file can never be created."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = _sink(blocker / "events.jsonl", context).check()
    assert not result.ok
    assert "is not a directory" in result.message


_HALF_WRITE = """
import json, resource, signal, sys
from pathlib import Path

from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks import SinkContext
from deploy_fetcher.sinks.jsonl import JsonlConfig, JsonlSink

path = Path(sys.argv[1])
config = JsonlConfig(name="archive", type="jsonl", path=path, fields=["deployment_id", "actor"])
sink = JsonlSink(config, SinkContext(metrics=Metrics(), user_agent="test"))
event = DeployEvent(
    deployment_id="gh-1", service="api", environment="prod", status="success",
    happened_at="2026-01-31T12:00:00Z", provider="github", source="gh", actor="a" * 120,
)
outcomes = [type(sink.send(event)).__name__]
# The disk fills up half-way through the next line (the size limit stands in for a full disk).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 100, hard))
second = event.model_copy(update={"deployment_id": "gh-2"})
outcomes.append(type(sink.send(second)).__name__)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
outcomes.append(type(sink.send(second)).__name__)
print(json.dumps(outcomes))
"""


def test_a_half_written_line_is_undone_before_the_retry(tmp_path: Path) -> None:
    """A write cut short by a full disk is truncated away, so the retried line stands alone."""
    path = tmp_path / "events.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", _HALF_WRITE, str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert ["Delivered", "Retry", "Delivered"] == json.loads(done.stdout.splitlines()[-1])
    assert ["gh-1", "gh-2"] == [line["deployment_id"] for line in _lines(path)]

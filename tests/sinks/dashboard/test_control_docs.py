"""docs/sinks.md stays true for the dashboard contract: its snippets load, its bodies are what is sent."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy_fetcher.plugins import parse_config
from deploy_fetcher.sinks.dashboard import DashboardConfig
from deploy_fetcher.sinks.dashboard.config import ControlConfig
from deploy_fetcher.sinks.dashboard.reporter import Reporter
from deploy_fetcher.sinks.dashboard.reset import ResetChoreography

DOC = Path(__file__).parents[3] / "docs" / "sinks.md"


def _section(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1]
    return text.split("\n## ", 1)[0].split("\n### ", 1)[0]


def _blocks(heading: str, language: str) -> list[str]:
    parts = _section(heading).split("```")
    return [p.split("\n", 1)[1] for p in parts[1::2] if p.split("\n", 1)[0].strip() == language]


def _load(text: str, tmp_path: Path) -> Any:
    for name in ("dashboard_api_key", "dashboard_control_api_key"):
        (tmp_path / name).write_text(f"{name}-value\n", encoding="utf-8")
    return parse_config(text.replace("/run/secrets/", f"{tmp_path}/"), environ={})


def test_the_state_snippet_loads(tmp_path: Path) -> None:
    """The documented dashboard backend configuration validates as written."""
    [snippet] = _blocks("### Storing the cursor in the dashboard", "yaml")
    state = _load(snippet, tmp_path).state
    assert ("dashboard", "dashboard", "deploy-fetcher") == (
        state.backend,
        state.dashboard_sink,
        state.dashboard_slot,
    )


def test_the_control_snippet_loads(tmp_path: Path) -> None:
    """The documented control section validates, secret file included."""
    [snippet] = _blocks("### Reset choreography", "yaml")
    [sink] = _load(snippet, tmp_path).sinks
    assert isinstance(sink, DashboardConfig)
    assert sink.control is not None
    assert ("deploy-fetcher-eu", True, "dashboard_control_api_key-value") == (
        sink.control.component_id,
        sink.control.report_status,
        sink.control.api_key.get_secret_value(),
    )


def test_the_control_key_table_lists_every_key() -> None:
    """Every key of the control section has a row in the documented table, and no other row."""
    rows = [
        line.split("|")[1].strip().split(" / ")[0].strip("`")
        for line in _section("### Reset choreography").splitlines()
        if line.startswith("| `")
    ]
    assert list(ControlConfig.model_fields) == rows


class _Engine:
    def pause(self, sink: str, *, timeout: float) -> bool:
        return True

    def resume(self, sink: str) -> None:
        pass

    def forget(self, sink: str) -> tuple[int, int]:
        return 3, 120

    def status(self) -> dict[str, Any]:
        return {}

    def rate_limits(self) -> list[dict[str, Any]]:
        return []


def test_the_documented_bodies_are_what_the_fetcher_sends(dashboard, sink_config) -> None:
    """The ack and the `running` report carry exactly the documented fields."""
    blocks = _blocks("### Reset choreography", "http") + _blocks("### Reset choreography", "json")
    documented = [json.loads(block.strip().rsplit("\n\n", 1)[-1]) for block in blocks]
    config = sink_config(component_id="deploy-fetcher-eu")
    engine = _Engine()
    with httpx.Client(base_url=dashboard.url(), timeout=2.0) as client:
        reporter = Reporter(
            client,
            config.control,
            stop=threading.Event(),
            status=engine.status,
            rate_limits=engine.rate_limits,
        )
        choreography = ResetChoreography("dashboard", engine, reporter, reset_timeout=60)
        choreography.initiated("c-1")
        choreography.completed("c-1")
    sent = [report.body for report in dashboard.reports()]
    assert [sorted(body) for body in documented] == [sorted(body) for body in sent]
    assert [{k: v for k, v in d.items() if k != "at"} for d in documented] == [
        {k: v for k, v in s.items() if k != "at"} for s in sent
    ]


@pytest.mark.parametrize("kind", ["status", "rate-limit"])
def test_the_documented_reports_are_json(kind: str) -> None:
    """The example reports parse and name their type."""
    bodies = [json.loads(b) for b in _blocks("### Component events", "json")]
    assert kind in [body["type"] for body in bodies]

"""docs/sinks.md stays true: its full configuration validates and its verifier accepts our signature."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_fetcher.plugins import load_sink
from deploy_fetcher.sinks.webhook import sign

DOC = Path(__file__).parents[2] / "docs" / "sinks.md"


def _block(after: str, language: str) -> str:
    text = DOC.read_text(encoding="utf-8").split(after, 1)[1]
    return text.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def test_configuration_example_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sink entry of the documented configuration validates with its sink's model."""
    for name in ("dashboard_api_key", "ctoai_token", "chat_webhook_secret"):
        (tmp_path / name).write_text("value-from-file\n")
    (tmp_path / "chat_webhook_url").write_text("https://hooks.example.test/T/B/X\n")
    text = _block("## A configuration with every sink", "yaml").replace(
        "/run/secrets/", f"{tmp_path}/"
    )
    text = text.replace("${CLOUDLINK_API_URL}", "https://cloudlink.example.test")
    data: dict[str, Any] = yaml.safe_load(text)
    types = []
    for entry in data["sinks"]:
        model = load_sink(entry["type"]).config_model
        model.model_validate(entry)
        types.append(entry["type"])
    assert ["deployment-dashboard", "cloudlink", "ctoai", "webhook", "jsonl", "stdout"] == types


def test_documented_verifier_accepts_a_real_signature() -> None:
    """The Python snippet receivers copy verifies what the sink signs, and refuses a wrong secret."""
    namespace: dict[str, Any] = {}
    exec(_block("### The signature", "python"), namespace)  # noqa: S102 - our own documentation
    body = b'{"deployment_id":"gh-1","status":"success"}'
    header = sign(b"doc-secret", body, int(time.time()))
    assert namespace["verify"](b"doc-secret", body, header)
    assert not namespace["verify"](b"other-secret", body, header)

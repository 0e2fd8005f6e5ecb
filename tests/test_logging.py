"""Secrets are redacted from every log line, by key and by value."""

from __future__ import annotations

import io
import json
import sys

import structlog
from pydantic import SecretStr

from deploy_fetcher._logging import (
    configure_logging,
    redact_text,
    register_secret,
    register_secrets_in,
)


def _capture(monkeypatch, emit):
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("debug", "json")
    try:
        emit(structlog.get_logger("t"))
    finally:
        structlog.reset_defaults()
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_registered_secret_values_are_masked_anywhere(monkeypatch):
    """A token quoted inside an error message is replaced by ***."""
    register_secret("tok-abcdef123456")
    [line] = _capture(
        monkeypatch, lambda log: log.warning("x", error="GET https://h/?t=tok-abcdef123456 failed")
    )
    assert "GET https://h/?t=*** failed" == line["error"]


def test_sensitive_keys_are_masked(monkeypatch):
    """Values under keys like api_key or Authorization never reach the output."""
    [line] = _capture(
        monkeypatch,
        lambda log: log.info(
            "x", api_key="k-1", headers={"Authorization": "Bearer abc", "Accept": "json"}
        ),
    )
    assert "***" == line["api_key"]
    assert {"Authorization": "***", "Accept": "json"} == line["headers"]


def test_secrets_in_a_config_are_registered(tmp_path):
    """Every SecretStr in the validated config (a sink's api_key here) is registered for redaction."""
    from deploy_fetcher.plugins import load_config

    path = tmp_path / "c.yaml"
    path.write_text(
        "sinks: [{name: d, type: deployment-dashboard, url: 'http://127.0.0.1:9', "
        "api_key: sink-api-key-4d2f}]\n",
        encoding="utf-8",
    )
    config = load_config(path, environ={})
    assert "x sink-api-key-4d2f" == redact_text("x sink-api-key-4d2f")  # not yet registered
    register_secrets_in([config, {"nested": SecretStr("nested-secret-value")}])
    assert "x *** y ***" == redact_text("x nested-secret-value y sink-api-key-4d2f")


def test_keys_that_merely_contain_a_sensitive_word_stay_readable(monkeypatch):
    """`path`, `dispatch` and `token_type` are not secrets; `access_token` and `pat` are."""
    [line] = _capture(
        monkeypatch,
        lambda log: log.info(
            "x",
            path="/var/lib/f.db",
            dispatch="d",
            token_type="oauth",
            access_token="t0k",
            pat="p4t",
        ),
    )
    assert ("/var/lib/f.db", "d", "oauth", "***", "***") == (
        line["path"],
        line["dispatch"],
        line["token_type"],
        line["access_token"],
        line["pat"],
    )

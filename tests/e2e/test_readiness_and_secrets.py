"""Readiness, metrics and secret redaction of the real daemon."""

from __future__ import annotations

import json

from tests.support import FetcherProcess, free_port, wait_until, write_config

from deploy_fetcher.emulators.dashboard import DashboardEmulator

SECRET = "s3cr3t-dashboard-key-0f9a"


def _config(tmp_path, dashboard_url, key, script):
    port = free_port()
    path = write_config(
        tmp_path / "config.yaml",
        {
            "state": {"path": str(tmp_path / "state.db")},
            "server": {"port": port},
            "defaults": {"interval": "1s", "jitter": "0s"},
            "sources": [{"name": "scripted", "provider": "scripted", "script": str(script)}],
            "sinks": [
                {
                    "name": "dashboard",
                    "type": "deployment-dashboard",
                    "url": dashboard_url,
                    "api_key_file": str(key),
                    "backoff_initial": "100ms",
                    "backoff_max": "1s",
                }
            ],
        },
    )
    return path, port


def _line(n):
    return json.dumps(
        {
            "deployment_id": f"d{n}",
            "service": "api",
            "environment": "prod",
            "status": "success",
            "happened_at": f"2026-03-01T10:00:{n:02d}Z",
        }
    )


def test_rejected_credentials_make_readiness_503_and_keep_the_events(tmp_path):
    """A dashboard answering 401 pauses the sink: /readyz is 503 naming it, and the events wait.

    After a restart with the right key everything is delivered; the wrong key and the right key never
    appear in the log, the metrics or the readiness body.
    """
    dashboard = DashboardEmulator(api_key=SECRET)
    dashboard.start()
    script = tmp_path / "events.jsonl"
    script.write_text("".join(_line(n) + "\n" for n in range(5)), encoding="utf-8")
    key = tmp_path / "key"
    wrong = "wrong-key-7e1c9b2d"
    key.write_text(wrong + "\n", encoding="utf-8")
    config, port = _config(tmp_path, dashboard.url(), key, script)
    log = tmp_path / "fetcher.log"
    try:
        proc = FetcherProcess(config, port, log).start()
        _, body = wait_until(
            lambda: (r := proc.get("/readyz"))[0] == 503 and "credentials rejected" in r[1] and r,
            timeout=20,
        )
        assert "sink dashboard" in body
        _, metrics = proc.get("/metrics")
        assert 'fetcher_sink_paused{sink="dashboard"} 1.0' in metrics
        assert [] == dashboard.rows()
        assert 0 == proc.terminate()

        key.write_text(SECRET + "\n", encoding="utf-8")
        proc = FetcherProcess(config, port, log).start()
        wait_until(lambda: len(dashboard.rows()) == 5)
        wait_until(lambda: proc.get("/readyz")[0] == 200)
        _, metrics = proc.get("/metrics")
        assert 0 == proc.terminate()
    finally:
        dashboard.stop()
    text = log.read_text()
    assert "sink.paused" in text
    for secret in (SECRET, wrong):
        assert secret not in text
        assert secret not in metrics
        assert secret not in body


def test_readiness_waits_for_the_first_successful_poll(tmp_path):
    """Before any source has been polled /readyz is 503; /healthz is 200 from the start."""
    dashboard = DashboardEmulator(api_key=SECRET)
    dashboard.start()
    script = tmp_path / "events.jsonl"
    script.write_text("", encoding="utf-8")
    key = tmp_path / "key"
    key.write_text(SECRET, encoding="utf-8")
    config, port = _config(tmp_path, dashboard.url(), key, script)
    try:
        proc = FetcherProcess(config, port, tmp_path / "fetcher.log").start()
        assert 200 == proc.get("/healthz")[0]
        wait_until(lambda: proc.get("/readyz")[0] == 200)
        ready = json.loads(proc.get("/readyz")[1])
        assert {"status": "ready", "problems": []} == ready
        assert 0 == proc.terminate()
    finally:
        dashboard.stop()

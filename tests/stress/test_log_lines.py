"""The daemon's log stays one JSON object per line, libraries' warnings included, secrets masked.

Libraries (APScheduler, urllib3, httpx) log through the standard library. Found under the CI-fault
suite: APScheduler's "skipped: maximum number of running instances reached" came out as a bare text
line in the JSON stream, unredacted. Run in a subprocess so the logging setup is the real one.
"""

from __future__ import annotations

import json
import subprocess
import sys

SECRET = "tok-3b9f0c1d2e"

SCRIPT = f"""
import logging
import structlog
from deploy_fetcher._logging import configure_logging, register_secret

configure_logging("info", "json")
register_secret("Bearer {SECRET}")
logging.getLogger("apscheduler.scheduler").warning(
    'Execution of job "poll" skipped: maximum number of running instances reached (1)'
)
logging.getLogger("urllib3.connectionpool").warning("Retrying after failure: /hook?token={SECRET}")
logging.getLogger("apscheduler.scheduler").info("quiet below warning")
structlog.get_logger("deploy_fetcher").info("fetcher.started", sources=1)
"""


def test_library_warnings_are_json_lines_with_secrets_masked() -> None:
    """Every stderr line parses as JSON; a library's warning keeps its text and logger, minus the secret."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30, check=True
    )
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert ["warning", "warning", "info"] == [line["level"] for line in lines]
    assert "apscheduler.scheduler" == lines[0]["logger"]
    assert "maximum number of running instances" in lines[0]["event"]
    assert "/hook?token=***" in lines[1]["event"]
    assert "fetcher.started" == lines[2]["event"]
    assert SECRET not in result.stderr

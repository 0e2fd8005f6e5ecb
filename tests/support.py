"""Shared test helpers: bounded waiting, free ports, a real `fetcher` subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

#: The keys of the suite's dashboard emulator (the ``dashboard`` fixture).
DASHBOARD_KEY = "dash-ingest-key-1234"
DASHBOARD_CONTROL_KEY = "dash-control-key-5678"


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class FetcherProcess:
    """`fetcher run` as a real subprocess, its log captured to a file."""

    def __init__(self, config_path: Path, port: int, log_path: Path) -> None:
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FetcherProcess:
        env = {**os.environ, "FETCHER_LOG__FORMAT": "json", "FETCHER_LOG__LEVEL": "debug"}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deploy_fetcher.cli",
                "run",
                "--config",
                str(self.config_path),
                "--grace",
                "5",
            ],
            stdout=log,
            stderr=log,
            env=env,
        )
        log.close()
        wait_until(self._alive, timeout=30)
        return self

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(
                f"fetcher exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Killed here, so one daemon that will not stop fails its own test and no other.
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"fetcher did not stop within {timeout:g}s of SIGTERM") from None

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `fetcher ARGS` as a subprocess (in ``cwd``, fed ``stdin``) and return its result."""
    return subprocess.run(
        [sys.executable, "-m", "deploy_fetcher.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


class SleepRecorder:
    """A ``ProviderContext.sleep`` that records waits instead of sleeping; time moves by them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return True

    def elapsed(self) -> timedelta:
        """Everything slept so far."""
        return timedelta(seconds=sum(self.waits))

    def clock(self, base: Callable[[], datetime]) -> Callable[[], datetime]:
        """``base`` moved forward by everything slept so far."""
        return lambda: base() + self.elapsed()

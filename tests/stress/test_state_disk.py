"""The state file's disk filling up or turning read-only under a running daemon, and coming back.

Both are real: the state file lives on a small tmpfs mounted for the test (filled with a ballast
file), and a read-only bind mount over its directory. The daemon must say so — readiness 503 naming
the state file and why, one ``store.unwritable`` log line — keep running, and once the disk is usable
again deliver everything without a copy and leave a state file SQLite finds intact.
"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from tests.stress.harness import INGEST, Stage, metric
from tests.support import FetcherProcess, run_cli, wait_until

from deploy_fetcher.emulators._server import Fault

MIB = 1024 * 1024


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (skipped, saying why, where mounting is not allowed)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", str(where))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def stage(tmp_path: Path, small_disk: Path) -> Iterator[Stage]:
    s = Stage(tmp_path, state_dir=small_disk)
    yield s
    s.close()


def _written(handle: BinaryIO, data: bytes) -> bool:
    """Write ``data``; False once the disk is full (any other error is raised)."""
    try:
        handle.write(data)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return False
    return True


def fill(directory: Path) -> Path:
    """Write a ballast file until the disk is full (in MiB, then in pages); returns it."""
    ballast = directory / "ballast"
    with ballast.open("wb", buffering=0) as handle:
        for size in (MIB, 4096):
            for _ in range(64 * MIB // size):
                if not _written(handle, b"\0" * size):
                    break
    return ballast


def readiness(proc: FetcherProcess) -> tuple[int, str]:
    return proc.get("/readyz")


def unwritable_lines(proc: FetcherProcess) -> list[str]:
    return [
        str(line.get("problem")) for line in proc.logs() if line.get("event") == "store.unwritable"
    ]


def intact(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_full_disk_is_reported_and_nothing_is_lost_when_space_returns(stage, small_disk):
    """Disk full mid-delivery: /readyz 503 naming the disk, logged once; freed: all delivered once.

    The dashboard is slowed so the disk fills while rows are being sent: a POST that succeeded
    while its row could not be marked delivered must not be sent again, nor overtaken.
    """
    stage.dashboard.inject(Fault(kind="delay", delay=0.02, count=10**9, match=INGEST))
    proc = stage.fetcher(housekeeping=0.5).start()
    try:
        stage.add(300)
        wait_until(lambda: len(stage.dashboard.rows()) >= 40)
        ballast = fill(small_disk)
        stage.dashboard.clear_faults()
        stage.add(2000)  # more than the write-ahead log's slack: the commits themselves fail
        _status, body = wait_until(lambda: (r := readiness(proc))[0] == 503 and r)
        assert "state store" in body
        assert str(stage.state) in body
        wait_until(lambda: any("disk is full" in p for p in unwritable_lines(proc)) or None)
        time.sleep(1)
        ballast.unlink()
        wait_until(lambda: readiness(proc)[0] == 200)
        wait_until(stage.all_delivered, timeout=60)
        wait_until(lambda: metric(proc, "fetcher_outbox_depth", sink="dashboard") == 0.0)
    finally:
        assert 0 == proc.terminate()
    assert 1 == len(unwritable_lines(proc))  # one transition logged, not one line per retry
    tally = stage.tally()
    assert 0 == tally.duplicates
    arrived = [happened for _, _, happened in tally.rows]
    assert sorted(arrived) == arrived
    assert "ok" == intact(stage.state)
    listed = run_cli("state", "list", "--config", str(stage.config))
    assert 0 == listed.returncode
    assert "scripted" in listed.stdout


def test_a_read_only_state_directory_is_reported_and_recovered(stage, small_disk):
    """Remounted read-only: /readyz 503 saying so; writable again: every event delivered once."""
    proc = stage.fetcher(housekeeping=0.5).start()
    bound = False
    try:
        stage.add(10)
        wait_until(stage.all_delivered)
        assert 0 == _mount("--bind", str(small_disk), str(small_disk)).returncode
        bound = True
        assert 0 == _mount("-o", "remount,bind,ro", str(small_disk)).returncode
        stage.add(30)
        _status, body = wait_until(lambda: (r := readiness(proc))[0] == 503 and r)
        assert "read-only" in body
        assert str(stage.state) in body
        subprocess.run(["umount", str(small_disk)], check=True)
        bound = False
        wait_until(lambda: readiness(proc)[0] == 200)
        wait_until(stage.all_delivered)
    finally:
        if bound:
            subprocess.run(["umount", str(small_disk)], check=False)
        assert 0 == proc.terminate()
    assert 0 == stage.tally().duplicates
    assert "ok" == intact(stage.state)


def test_a_read_only_disk_at_start_is_one_clear_error(stage, small_disk):
    """Starting on a read-only state directory: exit 1, one line naming the file, nothing written."""
    assert 0 == _mount("--bind", str(small_disk), str(small_disk)).returncode
    try:
        assert 0 == _mount("-o", "remount,bind,ro", str(small_disk)).returncode
        result = run_cli("run", "--config", str(stage.config), timeout=30)
    finally:
        subprocess.run(["umount", str(small_disk)], check=False)
    print(result.stderr)
    assert 1 == result.returncode
    assert str(stage.state) in result.stderr
    assert "Traceback" not in result.stderr
    assert [] == list(small_disk.iterdir())

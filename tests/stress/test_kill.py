"""SIGKILL of the daemon at random moments, restarted each time: nothing lost, at most one copy per kill.

A writer keeps appending events while the daemon polls and delivers, so kills land in every phase:
reading the script, committing pages, claiming rows, a POST in flight. Each POST is slowed a little
so that "in flight" is a window a kill can hit. After the last restart every event must be at the
dashboard, and every duplicate must be the one POST that was in flight when a kill came: at most
one per kill, attributed by the dashboard's row count at each kill.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections import defaultdict

import pytest
from tests.stress.harness import INGEST, Stage, key_of
from tests.support import wait_until

from deploy_fetcher.emulators._server import Fault

#: Events the writer appends at most: enough to span the first kills, and a backlog the last run
#: reads in the same time on a loaded machine as on an idle one (the writer does not slow down).
WRITER_EVENTS = 600


def _writer(stage: Stage, stop: threading.Event) -> None:
    """Append a few events every 50 ms until told to stop or ``WRITER_EVENTS`` are written."""
    for _ in range(WRITER_EVENTS // 5):
        if stop.wait(0.05):
            return
        stage.add(5)


def kill_repeatedly(stage: Stage, kills: int, seed: int) -> dict[str, object]:
    """Start, run a random while, SIGKILL — ``kills`` times; then let a last run deliver the rest."""
    rng = random.Random(seed)
    stage.dashboard.inject(Fault(kind="delay", delay=0.005, count=10**9, match=INGEST))
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(stage, stop), daemon=True)
    stage.add(50)
    writer.start()
    marks: list[int] = []  # dashboard rows when each kill landed
    try:
        for _ in range(kills):
            proc = stage.fetcher().start()
            time.sleep(rng.uniform(0.2, 1.5))
            proc.kill()
            time.sleep(0.1)  # a POST in flight is stored by the emulator after its 5 ms delay
            marks.append(len(stage.dashboard.rows()))
    finally:
        stop.set()
        writer.join(timeout=5)
    final = stage.fetcher().start()
    try:
        wait_until(stage.all_delivered, timeout=120)
        time.sleep(1.5)  # one more poll cycle: nothing already delivered comes again
    finally:
        assert 0 == final.terminate()
    rows = [key_of(row) for row in stage.dashboard.rows()]
    first_seen: dict[tuple[str, str, str], int] = {}
    per_kill: defaultdict[int, int] = defaultdict(int)
    for index, key in enumerate(rows):
        if key in first_seen:
            # A copy was sent by the run the first one came from and never marked delivered.
            per_kill[bisect.bisect_right(marks, first_seen[key])] += 1
        else:
            first_seen[key] = index
    return {"rows": rows, "marks": marks, "per_kill": dict(per_kill)}


def _check(stage: Stage, kills: int, outcome: dict[str, object]) -> None:
    tally = stage.tally()
    print(
        f"kills={kills} events={len(tally.expected)} rows={len(tally.rows)} "
        f"duplicates={tally.duplicates} per_kill={outcome['per_kill']}"
    )
    assert set() == tally.missing
    assert set() == tally.unexpected
    assert tally.duplicates <= kills
    assert all(count <= 1 for count in outcome["per_kill"].values())  # type: ignore[attr-defined]


@pytest.fixture
def stage(tmp_path):
    s = Stage(tmp_path, page_size=20)
    yield s
    s.close()


@pytest.mark.timeout(300)  # above the final delivery wait of 120 s
def test_eight_kills_lose_nothing_and_duplicate_at_most_once_each(stage):
    """Eight SIGKILLs at random moments: every event delivered, at most one duplicate per kill."""
    _check(stage, 8, kill_repeatedly(stage, 8, seed=8))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_thirty_kills_lose_nothing_and_duplicate_at_most_once_each(stage):
    """Thirty SIGKILLs at random moments: every event delivered, at most one duplicate per kill."""
    _check(stage, 30, kill_repeatedly(stage, 30, seed=30))


def test_sigterm_delivers_within_the_grace_and_the_next_start_the_rest(stage):
    """SIGTERM mid-backlog: exit 0 within the grace period, the rest arrives after a restart, once each."""
    stage.dashboard.inject(Fault(kind="delay", delay=0.05, count=10**9, match=INGEST))
    stage.add(400)
    proc = stage.fetcher().start()
    wait_until(lambda: len(stage.dashboard.rows()) >= 20)
    assert 0 == proc.terminate(timeout=15)
    at_stop = len(stage.dashboard.rows())
    stopped = [line for line in proc.logs() if line.get("event") == "fetcher.stopped"]
    assert 1 == len(stopped)
    assert 0 < stopped[0]["pending"]["dashboard"] < 400
    stage.dashboard.clear_faults()
    proc = stage.fetcher().start()
    try:
        wait_until(stage.all_delivered, timeout=60)
    finally:
        assert 0 == proc.terminate()
    tally = stage.tally()
    assert at_stop < len(tally.rows)
    assert 0 == tally.duplicates

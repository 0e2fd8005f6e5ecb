"""The compose trial's clock script, against real emulator servers on 127.0.0.1."""

import importlib.util
import threading
from types import ModuleType

import pytest
from tests.deploy._paths import COMPOSE_DIR

from deploy_fetcher.emulators._server import EmulatorServer


class RecordingEmulator(EmulatorServer):
    """An emulator that remembers every advance it was asked for."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port=port)
        self.advanced: list[float] = []

    def advance(self, seconds: float) -> None:
        self.advanced.append(seconds)


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "advance_clocks", COMPOSE_DIR / "advance_clocks.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def emulators():
    started = [RecordingEmulator(), RecordingEmulator()]
    for emulator in started:
        emulator.start()
    yield started
    for emulator in started:
        emulator.stop()


def test_each_round_advances_every_emulator_by_the_elapsed_time(script, emulators):
    """Three rounds ten (fake) seconds apart advance each emulator by 10 s three times."""
    ticks = iter(range(0, 100, 10))
    rounds = script.run(
        [e.url() for e in emulators],
        every=0.01,
        stop=threading.Event(),
        rounds=3,
        clock=lambda: next(ticks),
    )
    assert 3 == rounds
    assert [[10.0, 10.0, 10.0], [10.0, 10.0, 10.0]] == [e.advanced for e in emulators]


def test_an_emulator_that_was_down_catches_up_on_the_missed_time(script, emulators, capsys):
    """A refused emulator is reported once; when it is back it is advanced by all it missed."""
    down, up = emulators
    port = down.port
    down.stop()
    revived = RecordingEmulator(port=port)
    times = [0, 10, 20, 30]

    def clock() -> float:
        now = times.pop(0)
        if now == 30:
            revived.start()
        return now

    try:
        script.run(
            [f"http://127.0.0.1:{port}", up.url()],
            every=0.01,
            stop=threading.Event(),
            rounds=3,
            clock=clock,
        )
    finally:
        revived.stop()
    assert [30.0] == revived.advanced
    assert [10.0, 10.0, 10.0] == up.advanced
    reported = capsys.readouterr().err.splitlines()
    assert 2 == len(reported)
    assert "did not answer" in reported[0]
    assert "answers again" in reported[1]


def test_a_set_stop_event_ends_the_loop_before_any_round(script, emulators):
    """Stopping (SIGTERM in the container) ends the loop without another request."""
    stop = threading.Event()
    stop.set()
    assert 0 == script.run([emulators[0].url()], every=60, stop=stop)
    assert [] == emulators[0].advanced


def test_a_non_positive_interval_is_refused(script):
    """``--every 0`` is a usage error, not a busy loop."""
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--every", "0", "http://127.0.0.1:9"])
    assert 2 == exit_info.value.code

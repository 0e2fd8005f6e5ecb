"""The image's command, run as it would run in the container but from this environment.

No Docker engine here: the ENTRYPOINT + CMD argv and the ENV are read from the Dockerfile, the
container's mounts (config file, state volume) are recreated in a temp dir, and the resulting
command runs against a scripted source and the dashboard emulator. Only the listening address
differs from the image: tests bind 127.0.0.1 on a free port, not 0.0.0.0:8080.
"""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy._dockerfile import Stage, parse_file
from tests.deploy._paths import DOCKERFILE
from tests.deploy._pod import PodFiles
from tests.support import free_port, wait_until

from deploy_fetcher.emulators.dashboard import DashboardEmulator

API_KEY = "entrypoint-test-key"
EVENTS = 6


def _events() -> list[dict[str, Any]]:
    return [
        {
            "deployment_id": f"run-{n // 2}",
            "service": "api",
            "environment": "prod",
            "status": ("in-progress", "success")[n % 2],
            "happened_at": f"2026-03-01T10:00:{n:02d}Z",
        }
        for n in range(EVENTS)
    ]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - 127.0.0.1 only
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture
def dashboard():
    emulator = DashboardEmulator(api_key=API_KEY)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def image() -> Stage:
    return parse_file(DOCKERFILE).final


def _container(
    tmp_path: Path, image: Stage, dashboard: DashboardEmulator
) -> tuple[PodFiles, list[str]]:
    """Mount a config and the state volume; return the mounts and the image's argv, rewritten."""
    script = tmp_path / "events.jsonl"
    script.write_text("".join(json.dumps(e) + "\n" for e in _events()), encoding="utf-8")
    config = {
        "defaults": {"interval": "1s", "jitter": "0s"},
        "sources": [{"name": "scripted", "provider": "scripted", "script": str(script)}],
        "sinks": [
            {
                "name": "dashboard",
                "type": "deployment-dashboard",
                "url": dashboard.url(),
                "api_key": "${DASHBOARD_API_KEY}",
            }
        ],
    }
    argv = [*image.last("ENTRYPOINT").exec_form, *image.last("CMD").exec_form]
    pod = PodFiles(tmp_path / "container")
    pod.mount_file(argv[argv.index("--config") + 1], yaml.safe_dump(config))
    (volume,) = [v.args for v in image.all("VOLUME")]
    pod.mount(volume)
    return pod, [pod.rewrite(arg) for arg in argv]


def _console_script(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.skip(f"the {name} console script is not installed next to {sys.executable}")
    return str(path)


def test_the_images_command_serves_health_delivers_and_stops_cleanly(tmp_path, image, dashboard):
    """ENTRYPOINT+CMD start the daemon, /healthz and the HEALTHCHECK pass, SIGTERM exits 0."""
    pod, argv = _container(tmp_path, image, dashboard)
    port = free_port()
    env = {
        **os.environ,
        **pod.environ(image.env()),
        "FETCHER_SERVER__HOST": "127.0.0.1",
        "FETCHER_SERVER__PORT": str(port),
        "DASHBOARD_API_KEY": API_KEY,
    }
    workdir = pod.host_path(image.last("WORKDIR").args)
    log = tmp_path / "fetcher.log"
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [_console_script(argv[0]), *argv[1:]],
            cwd=workdir,
            env=env,
            stdout=output,
            stderr=output,
        )
    try:
        wait_until(
            lambda: proc.poll() is not None or _status(f"http://127.0.0.1:{port}/healthz") == 200,
            timeout=30,
        )
        assert None is proc.poll(), log.read_text()[-2000:]
        wait_until(lambda: len(dashboard.rows()) >= EVENTS, timeout=20)
        healthcheck = image.last("HEALTHCHECK").args.removeprefix("CMD").strip()
        probe = [*json.loads(healthcheck), "--url", f"http://127.0.0.1:{port}/healthz"]
        probe[0] = _console_script(probe[0])
        checked = wait_until(
            lambda: (
                subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0
            ),
            timeout=15,
        )
        assert checked
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert 0 == code, log.read_text()[-2000:]
    assert {(e["deployment_id"], e["status"]) for e in _events()} == {
        (r["deployment_id"], r["status"]) for r in dashboard.rows()
    }
    assert pod.host_path(image.env()["FETCHER_STATE__PATH"]).is_file()
    first = log.read_text(encoding="utf-8").splitlines()[0]
    assert isinstance(json.loads(first), dict), "FETCHER_LOG__FORMAT=json makes every line JSON"


def test_the_healthcheck_fails_when_nothing_answers(image):
    """The HEALTHCHECK command exits non-zero when the daemon is not there."""
    healthcheck = json.loads(image.last("HEALTHCHECK").args.removeprefix("CMD").strip())
    probe = [
        _console_script(healthcheck[0]),
        *healthcheck[1:],
        "--url",
        f"http://127.0.0.1:{free_port()}/healthz",
    ]
    assert 1 == subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode

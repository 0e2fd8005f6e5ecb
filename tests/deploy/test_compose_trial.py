"""The compose local trial, run without Docker: each service's command as a process on 127.0.0.1.

Every service of the default profile starts with the entrypoint and command docker compose would
give it (the fetcher with the image's), in ``depends_on`` order, gated by its own healthcheck. Only
addresses change: services listen on 127.0.0.1 on free ports instead of 0.0.0.0 on fixed ones, and
the URLs between them are rewritten to match. The clock ticks every second instead of every 15.
"""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy._dockerfile import parse_file
from tests.deploy._paths import COMPOSE_FILE, DOCKERFILE
from tests.deploy._pod import PodFiles
from tests.support import free_port, wait_until

CI_EMULATORS = ("github", "gitlab", "azure-devops")
#: deployment_id prefixes by provider (the canonical event's convention).
PREFIXES = {"gh-": "github", "gl-": "gitlab", "ado-": "azure-devops"}


class Trial:
    """The processes of the trial and the address each service got."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
        self.services: dict[str, Any] = self.compose["services"]
        self.ports = {name: free_port() for name in self.services}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _arg(self, name: str, flag: str) -> str:
        command = self.services[name]["command"]
        return command[command.index(flag) + 1]

    def rewrite(self, text: str) -> str:
        """Point ``http://<service>:<port>`` (compose DNS) at the local processes."""
        for name in self.services:
            if "--port" in self.services[name].get("command", []):
                compose_url = f"http://{name}:{self._arg(name, '--port')}"
                text = text.replace(compose_url, f"http://127.0.0.1:{self.ports[name]}")
        return text

    def _local_command(self, name: str) -> list[str]:
        service = self.services[name]
        argv = [*service["entrypoint"], *service["command"]]
        overrides = {"--host": "127.0.0.1", "--port": str(self.ports[name]), "--every": "1"}
        out = [
            self.rewrite(overrides.get(argv[index - 1], arg) if index else arg)
            for index, arg in enumerate(argv)
        ]
        mounts = dict(reversed(v.split(":")[:2]) for v in service.get("volumes", []))
        out = [str((COMPOSE_FILE.parent / mounts[a]).resolve()) if a in mounts else a for a in out]
        if out[0] == "python":
            out[0] = sys.executable
        return out

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        log = (self.tmp_path / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=log, env={**os.environ, **(env or {})}, cwd=cwd
        )
        log.close()

    def start_service(self, name: str) -> None:
        self.start(name, self._local_command(name))

    def healthy(self, name: str) -> bool:
        """The service's own compose healthcheck, run against its local port."""
        process = self.processes[name]
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}: {self.log(name)}")
        test = self.services[name]["healthcheck"]["test"][1:]
        port = self._arg(name, "--port")
        argv = [re.sub(rf"127\.0\.0\.1:{port}\b", f"127.0.0.1:{self.ports[name]}", a) for a in test]
        argv[0] = sys.executable if argv[0] == "python" else argv[0]
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-2000:]

    def stop_all(self) -> dict[str, int]:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait(timeout=10)
        return codes


@pytest.fixture
def trial(tmp_path):
    started = Trial(tmp_path)
    yield started
    started.stop_all()


def _dashboard_rows(port: int, api_key: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/deployments", headers={"X-Api-Key": api_key}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return list(json.load(response)["items"])
    except (urllib.error.URLError, OSError):
        return []


def test_the_trial_delivers_events_from_every_ci_emulator_to_the_dashboard(trial, tmp_path):
    """Emulators, clock and fetcher as compose runs them: all three providers reach the dashboard."""
    for name in ("dashboard", *CI_EMULATORS):
        trial.start_service(name)
    for name in ("dashboard", *CI_EMULATORS):
        wait_until(lambda name=name: trial.healthy(name), timeout=30, interval=0.2)
    trial.start_service("clock")

    image = parse_file(DOCKERFILE).final
    fetcher = trial.services["fetcher"]
    argv = [*image.last("ENTRYPOINT").exec_form, *image.last("CMD").exec_form]
    pod = PodFiles(tmp_path / "fetcher")
    mounts = dict(reversed(v.split(":")[:2]) for v in fetcher["volumes"])
    config_path = argv[argv.index("--config") + 1]
    config_text = (COMPOSE_FILE.parent / mounts[config_path]).read_text(encoding="utf-8")
    pod.mount_file(config_path, trial.rewrite(config_text))
    (volume,) = [v.args for v in image.all("VOLUME")]
    pod.mount(volume)
    port = trial.ports["fetcher"]
    env = {
        **pod.environ(image.env()),
        **{k: str(v) for k, v in fetcher["environment"].items()},
        "FETCHER_SERVER__HOST": "127.0.0.1",
        "FETCHER_SERVER__PORT": str(port),
    }
    executable = Path(sys.executable).with_name(argv[0])
    trial.start(
        "fetcher",
        [str(executable), *[pod.rewrite(a) for a in argv[1:]]],
        env,
        cwd=pod.host_path(volume),
    )

    api_key = fetcher["environment"]["DASHBOARD_API_KEY"]

    def providers_seen() -> set[str]:
        if trial.processes["fetcher"].poll() is not None:
            pytest.fail(f"fetcher exited: {trial.log('fetcher')}")
        ids = [row["deployment_id"] for row in _dashboard_rows(trial.ports["dashboard"], api_key)]
        return {
            provider for prefix, provider in PREFIXES.items() for i in ids if i.startswith(prefix)
        }

    wait_until(lambda: providers_seen() == set(CI_EMULATORS), timeout=45, interval=0.5)
    probe = [
        str(executable),
        *fetcher["healthcheck"]["test"][2:],
        "--url",
        f"http://127.0.0.1:{port}/readyz",
    ]
    wait_until(
        lambda: subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0,
        timeout=30,
        interval=0.5,
    )
    assert None is trial.processes["clock"].poll(), trial.log("clock")
    codes = trial.stop_all()
    assert 0 == codes["fetcher"], trial.log("fetcher")
    assert 0 == codes["clock"], trial.log("clock")

"""The nudge endpoint of a running daemon: an authentic webhook makes it poll that one target now.

Real parts throughout: the daemon (scheduler, server, nudge endpoint) in this process, the GitHub and
GitLab emulators as the CI systems it polls, HTTP on 127.0.0.1, the providers' published payloads.
Polls are counted as the requests the emulators received for the nudged repository or project.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deploy_fetcher.config import parse_config
from deploy_fetcher.daemon import Daemon
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.emulators.gitlab import Scenario as GitLabScenario
from deploy_fetcher.plugins import load_provider, load_sink
from tests.support import free_port, wait_until

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "webhooks"
SECRET = "gh-hook-secret-0123"
GL_TOKEN = "gl-hook-token-4567"
REPO = "octo-org/octo-repo"  # the repository of GitHub's published workflow_run example
PROJECT = "gitlab-org/gitlab-test"  # the project of GitLab's published pipeline example


class World:
    """Two emulators, a daemon with nudges on, and helpers to count polls and send webhooks."""

    def __init__(self, tmp_path: Path, *, enabled: bool = True, read_timeout: float = 2.0) -> None:
        self.github = GitHubEmulator(scenario=None)
        self.github.add_repo(REPO)
        self.github.add_repo("octo-org/other-repo")
        self.gitlab = GitLabEmulator(scenario=GitLabScenario(0))
        self.gitlab.add_project(PROJECT)
        self.github.start()
        self.gitlab.start()
        self.port = free_port()
        config = parse_config(
            yaml.safe_dump(
                {
                    "state": {"path": str(tmp_path / "state.db")},
                    "server": {"port": self.port},
                    # Only nudges poll again within a test: the schedule's next run is an hour away.
                    "defaults": {"interval": "1h", "jitter": "0s", "lookback": "1d"},
                    "nudges": {
                        "enabled": enabled,
                        "min_gap": "60s",
                        "read_timeout": f"{read_timeout}s",
                        "max_body": 65536,
                        "github": {"secret": SECRET},
                        "gitlab": {"token": GL_TOKEN},
                    },
                    "sources": [
                        {
                            "name": "gh",
                            "provider": "github",
                            "token": "emulator-token",
                            "base_url": self.github.url(),
                            "repos": [REPO, "octo-org/other-repo"],
                        },
                        {
                            "name": "gl",
                            "provider": "gitlab",
                            "token": "emulator-token",
                            "url": self.gitlab.url(),
                            "projects": [PROJECT],
                        },
                    ],
                }
            ),
            environ={},
            provider_resolver=load_provider,
            sink_resolver=load_sink,
        )
        self.daemon = Daemon(config, grace=2.0)
        self.daemon.start()
        # Every target's first poll, then quiet.
        wait_until(lambda: self.polls(REPO) >= 1 and self.polls(PROJECT) >= 1, timeout=30)
        time.sleep(0.5)

    def polls(self, name: str) -> int:
        """Requests either emulator received about one repository or project (path-encoded or not)."""
        encoded = name.replace("/", "%2F")
        return len(self.github.requests_to(f"/repos/{name}/")) + len(
            [r for r in self.gitlab.log if encoded in r.path or f"/{name}/" in r.path]
        )

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{provider}"

    def github_hook(self, event: str, body: bytes, *, secret: str = SECRET) -> httpx.Response:
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return httpx.post(
            self.url("github"),
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                "X-Hub-Signature-256": signature,
            },
            timeout=10,
        )

    def nudges(self, provider: str, outcome: str) -> float:
        value = self.daemon.runtime.metrics.registry.get_sample_value(
            "fetcher_nudges_total", {"provider": provider, "outcome": outcome}
        )
        return value or 0.0

    def stop(self) -> None:
        self.daemon.stop()
        self.github.stop()
        self.gitlab.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.stop()


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_signed_github_event_polls_its_repository_now(world: World) -> None:
    """GitHub's workflow_run example, signed, makes the daemon poll octo-org/octo-repo at once."""
    before, other = world.polls(REPO), world.polls("octo-org/other-repo")
    answer = world.github_hook("workflow_run", _fixture("github_workflow_run_completed.json"))
    wait_until(lambda: world.polls(REPO) > before, timeout=10)
    assert (202, "polled", other, 1.0) == (
        answer.status_code,
        answer.json()["outcome"],
        world.polls("octo-org/other-repo"),
        world.nudges("github", "polled"),
    )


def test_forged_github_event_polls_nothing(world: World) -> None:
    """A body signed with another secret is refused with 401 and costs no request to GitHub."""
    before = world.polls(REPO)
    answer = world.github_hook(
        "workflow_run", _fixture("github_workflow_run_completed.json"), secret="guessed"
    )
    time.sleep(1.5)
    assert (401, before, 1.0) == (
        answer.status_code,
        world.polls(REPO),
        world.nudges("github", "unauthorized"),
    )


def test_repeated_nudges_cost_one_poll_per_gap(world: World) -> None:
    """Twenty authentic nudges of one repository within the 60 s gap: one poll now, one at its end."""
    body = _fixture("github_workflow_run_completed.json")
    first = world.github_hook("workflow_run", body)
    wait_until(lambda: world.nudges("github", "polled") == 1, timeout=5)
    for _ in range(19):
        world.github_hook("workflow_run", body)
    time.sleep(1.0)
    polls_after_first = world.polls(REPO)
    time.sleep(1.0)
    assert (202, 1.0, 1.0, 18.0, polls_after_first) == (
        first.status_code,
        world.nudges("github", "polled"),
        world.nudges("github", "deferred"),
        world.nudges("github", "throttled"),
        world.polls(REPO),
    )


def test_gitlab_token_event_polls_its_project(world: World) -> None:
    """GitLab's pipeline example with the right token polls gitlab-org/gitlab-test; a wrong token does not."""
    body = _fixture("gitlab_pipeline_hook.json")
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": "Pipeline Hook"}
    before = world.polls(PROJECT)
    wrong = httpx.post(
        world.url("gitlab"), content=body, headers={**headers, "X-Gitlab-Token": "nope"}
    )
    time.sleep(1.0)
    unchanged = world.polls(PROJECT)
    right = httpx.post(
        world.url("gitlab"), content=body, headers={**headers, "X-Gitlab-Token": GL_TOKEN}
    )
    wait_until(lambda: world.polls(PROJECT) > before, timeout=10)
    assert (401, before, 202) == (wrong.status_code, unchanged, right.status_code)


def test_authentic_event_for_an_unknown_repository_polls_nothing(world: World) -> None:
    """An authentic event about a repository no source reads is answered and polls nothing."""
    payload: dict[str, Any] = json.loads(_fixture("github_workflow_run_completed.json"))
    payload["repository"]["full_name"] = "octo-org/not-configured"
    before = world.polls(REPO)
    answer = world.github_hook("workflow_run", json.dumps(payload).encode())
    assert (202, "unknown_target", before) == (
        answer.status_code,
        answer.json()["outcome"],
        world.polls(REPO),
    )


def test_ping_is_answered_without_a_poll(world: World) -> None:
    """GitHub's ping, sent when the hook is created, gets 200 and polls nothing."""
    answer = world.github_hook("ping", _fixture("github_ping.json"))
    assert (200, 0) == (answer.status_code, answer.json()["nudged"])


def test_oversized_and_unannounced_bodies_are_refused_before_reading(world: World) -> None:
    """A body over max_body gets 413 and one without Content-Length gets 411, neither read."""
    big = world.github_hook("workflow_run", b"{" + b" " * 70_000 + b"}")
    with socket.create_connection(("127.0.0.1", world.port), timeout=5) as sock:
        sock.sendall(
            b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        unannounced = sock.recv(200).split(b" ", 2)[1]
    assert (413, b"411") == (big.status_code, unannounced)


def test_a_body_that_never_arrives_is_given_up(tmp_path: Path) -> None:
    """A client announcing a body and sending a trickle is answered 408 within the read timeout."""
    made = World(tmp_path, read_timeout=1.0)
    try:
        with socket.create_connection(("127.0.0.1", made.port), timeout=30) as sock:
            sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{")
            started = time.monotonic()
            status = None
            while status is None and time.monotonic() - started < 20:
                # A byte at a time keeps each read from timing out; once the server answered and
                # closed, sending fails and the answer waits to be read.
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")
                sock.settimeout(0.3)
                try:
                    status = sock.recv(200).split(b" ", 2)[1]
                except TimeoutError:
                    continue
            elapsed = time.monotonic() - started
        assert (b"408", True) == (status, elapsed < 5)
    finally:
        made.stop()


def test_nudges_are_off_by_default(tmp_path: Path) -> None:
    """Without nudges enabled, /hooks/github is not served: the signed event polls nothing."""
    made = World(tmp_path, enabled=False)
    try:
        before = made.polls(REPO)
        answer = made.github_hook("workflow_run", _fixture("github_workflow_run_completed.json"))
        time.sleep(1.0)
        assert (405, before) == (answer.status_code, made.polls(REPO))
    finally:
        made.stop()

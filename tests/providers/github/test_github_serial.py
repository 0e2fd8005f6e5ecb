"""One GitHub credential sends one request at a time, as GitHub asks of integrators.

GitHub's REST API best practices: "make requests serially instead of concurrently" to avoid its
secondary limits. A server here holds every request until several are in flight together (or a
deadline passes), and counts how many it saw at once.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deploy_fetcher.config import DefaultsConfig
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.providers.github import GitHubConfig, GitHubProvider

TOKEN = "token-connections-0123"


class _Gathering(ThreadingHTTPServer):
    """Answers each GET once ``together`` requests are in flight, or after ``patience`` seconds."""

    daemon_threads = True

    def __init__(self, together: int, patience: float) -> None:
        self.barrier = threading.Barrier(together, timeout=patience)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.tokens: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Gathering

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.most = max(server.most, server.in_flight)
            server.tokens.append(self.headers.get("Authorization", ""))
        with contextlib.suppress(threading.BrokenBarrierError):  # fewer came at once: answer
            server.barrier.wait()
        body = json.dumps({"id": 1}).encode()
        with server.lock:
            server.in_flight -= 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def gathering(request: pytest.FixtureRequest) -> Iterator[_Gathering]:
    together, patience = request.param
    server = _Gathering(together, patience)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _get_at_once(server: _Gathering, count: int, **keys: object) -> list[int]:
    """``count`` sources of one token each GET their repository at once; the answers' statuses."""
    context = ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    providers = [
        GitHubProvider(
            GitHubConfig.model_validate(
                {
                    "name": f"svc{i}",
                    "provider": "github",
                    "token": TOKEN,
                    "base_url": base_url,
                    "repos": [f"octo/svc{i}"],
                    **keys,
                }
            ),
            context,
        )
        for i in range(count)
    ]
    statuses: list[int] = []
    try:
        threads = [
            threading.Thread(
                target=lambda p=p, i=i: statuses.append(p.client.get(f"/repos/octo/svc{i}").status)
            )
            for i, p in enumerate(providers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    finally:
        context.shared.close()
    return statuses


@pytest.mark.parametrize("gathering", [(2, 0.3)], indirect=True)
def test_requests_of_one_credential_go_one_at_a_time(gathering: _Gathering) -> None:
    """Four sources of one token asking at once: each request is sent once the one before is answered."""
    statuses = _get_at_once(gathering, 4)
    assert ([200] * 4, 1, [f"token {TOKEN}"] * 4) == (statuses, gathering.most, gathering.tokens)

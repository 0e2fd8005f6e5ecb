"""The sink's HTTP layer under delivery lanes: one kept-alive connection per request in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr
from tests.support import wait_until

from deploy_fetcher.sinks import Delivered, SinkContext
from deploy_fetcher.sinks.http import HttpSinkConfig, HttpUrl, SinkHttpClient

SENDERS = 4
SENDS_EACH = 5


class _Config(HttpSinkConfig):
    url: HttpUrl
    api_key: SecretStr


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.opened: set[int] = set()  # client ports of connections that sent a request
        self.ended: set[int] = set()  # ... and that the client closed since


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.opened.add(self.client_address[1])
        time.sleep(0.02)  # long enough for the senders to overlap
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def finish(self) -> None:
        super().finish()
        with self.server.lock:
            self.server.ended.add(self.client_address[1])

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        return


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield running
    running.shutdown()
    running.server_close()
    thread.join(5)


def test_concurrent_senders_keep_one_connection_each_and_close_ends_them(
    server: _Server, context: SinkContext
) -> None:
    """Four lanes sending five events each use four kept-alive connections; close() ends all four."""
    port = server.server_address[1]
    config = _Config(name="s", type="t", url=f"http://127.0.0.1:{port}", api_key="k")
    http = SinkHttpClient(config, context)
    outcomes: list[object] = []
    start = threading.Barrier(SENDERS, timeout=10)

    def sender() -> None:
        start.wait()
        url = f"http://127.0.0.1:{port}/ingest"
        outcomes.extend(
            http.send("POST", url, headers={}, content=b"{}") for _ in range(SENDS_EACH)
        )

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    used = len(server.opened)
    http.close()
    wait_until(lambda: server.ended >= server.opened, timeout=10)

    assert ([Delivered(201)] * SENDERS * SENDS_EACH, SENDERS) == (outcomes, used)

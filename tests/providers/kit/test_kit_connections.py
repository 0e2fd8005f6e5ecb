"""One requests session serves every poll of a credential at once, over kept-alive connections."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.providers.kit.conftest import TestContext, make_policy

from deploy_fetcher.providers.kit import Limits, policed_session

#: More polls at once than requests' default pool of 10 connections per host.
CONCURRENT = 16


class _Together(BaseHTTPRequestHandler):
    """Answers only once CONCURRENT requests are in flight together (or after 5 s)."""

    protocol_version = "HTTP/1.1"
    barrier: threading.Barrier

    def do_GET(self) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=5)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    handler = type("Handler", (_Together,), {"barrier": threading.Barrier(CONCURRENT)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_concurrent_polls_keep_their_connections_without_a_pool_full_warning(
    server: ThreadingHTTPServer, context: TestContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Sixteen requests at once through one session: every connection is kept, none discarded."""
    session = policed_session(make_policy(context, limits=Limits(timeout=10.0, max_bytes=1024)))
    url = f"http://127.0.0.1:{server.server_address[1]}/projects"
    caplog.set_level(logging.WARNING, logger="urllib3")
    try:
        with ThreadPoolExecutor(CONCURRENT) as pool:
            statuses = list(
                pool.map(lambda _: session.get(url, timeout=10).status_code, range(CONCURRENT))
            )
    finally:
        session.close()

    assert [200] * CONCURRENT == statuses
    assert [] == [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]

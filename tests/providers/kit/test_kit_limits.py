"""The limits of one request, against a real hostile server on 127.0.0.1, over both transports.

``requests`` (PyGithub, python-gitlab) gets them from :class:`PolicyAdapter`, httpx (Azure DevOps)
from :class:`HttpClient`; each test runs over both. The servers misbehave for a bounded time, so a
client without the limit would end the test with an answer instead of the limit's error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.hostile_http import HostileServer
from tests.providers.kit.conftest import TestContext, make_policy

from deploy_fetcher.errors import TransientError
from deploy_fetcher.providers.kit import (
    SLOW_SERVER_CUTS,
    SLOW_SERVER_PAUSE,
    DeadlineExceeded,
    HttpClient,
    Limits,
    RedirectRefused,
    RequestPolicy,
    ResponseTooLarge,
    check_redirect,
    policed_session,
)

SECRET = "glpat-hostile-test-0001"
Get = Callable[[str], tuple[int, bytes]]


def _requests_get(context: TestContext, limits: Limits) -> Iterator[Get]:
    session = policed_session(make_policy(context, limits=limits))
    session.headers["PRIVATE-TOKEN"] = SECRET

    def get(url: str) -> tuple[int, bytes]:
        response = session.get(url, timeout=30)
        return response.status_code, response.content

    yield get
    session.close()


def _httpx_get(context: TestContext, limits: Limits) -> Iterator[Get]:
    client = HttpClient(make_policy(context, limits=limits), headers={"PRIVATE-TOKEN": SECRET})

    def get(url: str) -> tuple[int, bytes]:
        reply = client.get(url)
        return reply.status, reply.body

    yield get
    client.close()


TRANSPORTS = {"requests": _requests_get, "httpx": _httpx_get}


@pytest.fixture(params=sorted(TRANSPORTS))
def make_get(request: pytest.FixtureRequest, context: TestContext) -> Iterator[Callable[..., Get]]:
    """``make_get(timeout=…, max_bytes=…)``: a GET through the transport under test."""
    made: list[Iterator[Get]] = []

    def make(timeout: float = 5.0, max_bytes: int = 64 * 1024) -> Get:
        gen = TRANSPORTS[request.param](context, Limits(timeout=timeout, max_bytes=max_bytes))
        made.append(gen)
        return next(gen)

    yield make
    for gen in made:
        next(gen, None)


def test_a_redirect_to_another_host_is_refused_and_the_credential_stays_home(
    make_get: Callable[..., Get], context: TestContext
) -> None:
    """A 302 to another host is an error naming both hosts; that host never sees the token."""
    with HostileServer() as elsewhere:
        target = elsewhere.url("/api/v4/projects", host="localhost")
        with HostileServer(mode="redirect", location=target) as server:
            get = make_get()
            with pytest.raises(RedirectRefused) as caught:
                get(server.url("/api/v4/projects"))
    assert [] == elsewhere.requests
    message = str(caught.value)
    assert f"http://127.0.0.1:{server.port}" in message
    assert f"http://localhost:{elsewhere.port}" in message
    assert SECRET not in message
    assert ["redirect"] == [hit.limit for hit in context.hits]


def test_a_redirect_on_the_same_host_is_followed_with_the_credential(
    make_get: Callable[..., Get],
) -> None:
    """A redirect that only changes the path is followed, the token kept (same origin)."""
    with HostileServer(body=b'["moved"]', redirects={"/old": "/new"}) as server:
        assert (200, b'["moved"]') == make_get()(server.url("/old"))
    assert [("/old", SECRET), ("/new", SECRET)] == [
        (seen.path, seen.headers.get("private-token")) for seen in server.requests
    ]


def test_a_redirect_to_another_port_of_the_same_host_is_refused(
    make_get: Callable[..., Get],
) -> None:
    """Another port is another origin (another service): refused like another host."""
    with HostileServer() as other, HostileServer(mode="redirect") as server:
        server.location = other.url("/x")
        with pytest.raises(RedirectRefused):
            make_get()(server.url("/y"))
    assert [] == other.requests


def test_a_server_trickling_its_answer_hits_the_whole_request_deadline(
    make_get: Callable[..., Get], context: TestContext
) -> None:
    """One byte every 0.2 s keeps every read in time; the 1 s deadline still ends the request."""
    body = b"[" + b" " * 200 + b"]"  # 40 s of trickle without the deadline
    with HostileServer(mode="slow", body=body, interval=0.2) as server:
        get = make_get(timeout=1.0)
        with pytest.raises(DeadlineExceeded) as caught:
            get(server.url("/slow"))
    assert isinstance(caught.value, TransientError)
    assert f"http://127.0.0.1:{server.port}/slow" in str(caught.value)
    assert ["deadline"] == [hit.limit for hit in context.hits]
    assert 1.0 == context.metrics.ci_request_limits.labels("test", "deadline")._value.get()


def test_a_server_that_ran_into_the_deadline_is_left_alone_then_probed(
    make_get: Callable[..., Get], context: TestContext
) -> None:
    """After deadline hits in a row nothing reaches the server for SLOW_SERVER_PAUSE; then one does.

    Without the pause every poll of every source of the credential would hold a worker for the
    whole ``timeout`` again, cycle after cycle.
    """
    with HostileServer(mode="slow", body=b"[" + b" " * 200 + b"]", interval=0.2) as server:
        get = make_get(timeout=1.0)
        for _ in range(SLOW_SERVER_CUTS):
            with pytest.raises(DeadlineExceeded):
                get(server.url("/slow"))
        server.mode = "json"
        seen = len(server.requests)
        with pytest.raises(TransientError, match=r"/slow ran into its 1s deadline.*left alone"):
            get(server.url("/other"))
        assert seen == len(server.requests)
        context.time.now += SLOW_SERVER_PAUSE
        assert 200 == get(server.url("/other"))[0]
        assert 200 == get(server.url("/again"))[0]
        assert seen + 2 == len(server.requests)


def _exchange(policy: RequestPolicy, url: str, seconds: float = 0.0) -> None:
    """One exchange through ``policy``; with ``seconds``, a server silent that long, then gone."""
    with policy.exchange(url, (OSError,)):
        if seconds:
            time.sleep(seconds)
            raise OSError


def test_while_the_probe_runs_other_requests_still_wait(context: TestContext) -> None:
    """One request tries a paused server: the others fail at once until it has answered."""
    policy = make_policy(context, limits=Limits(timeout=0.05, max_bytes=1024))

    for _ in range(SLOW_SERVER_CUTS):
        with pytest.raises(DeadlineExceeded):
            _exchange(policy, "http://ci/slow", 0.1)
    context.time.now += SLOW_SERVER_PAUSE
    with (
        policy.exchange("http://ci/probe", (OSError,)),
        pytest.raises(TransientError, match="left alone"),
    ):
        _exchange(policy, "http://ci/other")
    _exchange(policy, "http://ci/other")


def test_one_slow_answer_among_answers_leaves_the_server_open(context: TestContext) -> None:
    """Cuts with answers in between never pause the credential; cuts in a row do, from the last one.

    A credential serves every source that uses it: one slow endpoint among healthy ones must cost
    its own poll, not a minute of every poll of the credential.
    """
    policy = make_policy(context, limits=Limits(timeout=0.05, max_bytes=1024))

    for _ in range(2 * SLOW_SERVER_CUTS):
        with pytest.raises(DeadlineExceeded):
            _exchange(policy, "http://ci/big-project", 0.1)
        _exchange(policy, "http://ci/small-project")
    for _ in range(SLOW_SERVER_CUTS - 1):
        with pytest.raises(DeadlineExceeded):
            _exchange(policy, "http://ci/big-project", 0.1)
    _exchange(policy, "http://ci/small-project")  # SLOW_SERVER_CUTS - 1 in a row: still open
    for _ in range(SLOW_SERVER_CUTS):
        with pytest.raises(DeadlineExceeded):
            _exchange(policy, "http://ci/big-project", 0.1)
    with pytest.raises(
        TransientError, match=r"big-project ran into its 0\.05s deadline.*left alone"
    ):
        _exchange(policy, "http://ci/small-project")


def test_an_endless_body_is_cut_at_the_byte_cap_naming_the_url(
    make_get: Callable[..., Get], context: TestContext
) -> None:
    """A body that never ends is read up to the cap, then the request fails naming its URL."""
    with HostileServer(mode="endless", limit=8 * 1024 * 1024) as server:
        get = make_get(max_bytes=256 * 1024)
        with pytest.raises(ResponseTooLarge) as caught:
            get(server.url("/api/v4/projects/1/deployments"))
    assert f"http://127.0.0.1:{server.port}/api/v4/projects/1/deployments" in str(caught.value)
    assert ["size"] == [hit.limit for hit in context.hits]


def test_an_answer_within_the_limits_is_read_whole(make_get: Callable[..., Get]) -> None:
    """A normal answer passes every limit untouched, and is counted by status."""
    with HostileServer(body=b'[{"id": 1}]') as server:
        get = make_get()
        assert (200, b'[{"id": 1}]') == get(server.url("/ok"))
        assert (200, b'[{"id": 1}]') == get(server.url("/ok"))


@pytest.mark.parametrize(
    ("url", "location", "refused"),
    [
        ("https://gitlab.example.com/api/v4/x", "/api/v4/y", False),
        ("https://gitlab.example.com/api/v4/x", "https://gitlab.example.com/z", False),
        ("http://gitlab.example.com/api/v4/x", "https://gitlab.example.com/api/v4/x", False),
        ("https://gitlab.example.com/api/v4/x", "http://gitlab.example.com/api/v4/x", True),
        ("https://gitlab.example.com/api/v4/x", "https://evil.example.net/x", True),
        ("https://gitlab.example.com/api/v4/x", "https://gitlab.example.com:8443/x", True),
        ("http://gitlab.example.com:8080/x", "https://gitlab.example.com/x", True),
    ],
)
def test_the_redirect_rule(url: str, location: str, refused: bool) -> None:
    """Same origin and an https upgrade on the same host pass; a downgrade or another host do not."""
    outcome: Any = None
    try:
        check_redirect(url, 302, location)
    except RedirectRefused as exc:
        outcome = exc
    assert refused == (outcome is not None)

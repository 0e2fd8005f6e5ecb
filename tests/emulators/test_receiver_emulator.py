"""The catch-all receiver records exact requests and can demand a bearer token."""

from __future__ import annotations

import httpx

from deploy_fetcher.emulators.receiver import ReceiverEmulator


def test_records_method_path_headers_and_raw_body() -> None:
    """What a sink sent is kept byte for byte, and the configured status is answered."""
    with ReceiverEmulator(status=202) as receiver, httpx.Client(timeout=5.0) as client:
        response = client.post(
            receiver.url("/deploys"), content=b'{"a": 1}', headers={"X-Test": "yes"}
        )
        [received] = receiver.received()
    assert 202 == response.status_code
    assert ("POST", "/deploys", b'{"a": 1}', "yes") == (
        received.method,
        received.path,
        received.body,
        received.header("x-test"),
    )
    assert {"a": 1} == received.json()


def test_bearer_is_enforced() -> None:
    """With a bearer configured, a missing or wrong token is 401 (and still recorded)."""
    with ReceiverEmulator(bearer="tok-123") as receiver, httpx.Client(timeout=5.0) as client:
        refused = client.post(receiver.url("/"), json={})
        wrong = client.post(receiver.url("/"), json={}, headers={"Authorization": "Bearer nope"})
        accepted = client.post(
            receiver.url("/"), json={}, headers={"Authorization": "Bearer tok-123"}
        )
        count = len(receiver.received("/"))
    assert (401, 401, 200, 3) == (
        refused.status_code,
        wrong.status_code,
        accepted.status_code,
        count,
    )


def test_head_answers_for_reachability_probes() -> None:
    """HEAD on any path is 200 and records nothing."""
    with ReceiverEmulator() as receiver, httpx.Client(timeout=5.0) as client:
        assert 200 == client.head(receiver.url("/any/path")).status_code
        assert [] == receiver.received()

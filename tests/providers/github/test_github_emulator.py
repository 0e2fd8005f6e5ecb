"""The GitHub emulator on its own, spoken to with plain HTTP like any client would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.providers.github.test_github_deployments import START

from deploy_fetcher.emulators.github import GitHubEmulator, Scenario, demo_source
from deploy_fetcher.providers.github import GitHubConfig


def call(
    emulator: GitHubEmulator,
    path: str,
    *,
    token: str = "emulator-token",  # noqa: S107 - the emulator's test token
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(emulator.url(path), data=data, method=method)  # noqa: S310 - 127.0.0.1
    if token:
        request.add_header("Authorization", f"token {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - 127.0.0.1
            raw = response.read()
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                json.loads(raw) if raw else None,
            )
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return (
            exc.code,
            {k.lower(): v for k, v in exc.headers.items()},
            json.loads(raw) if raw else None,
        )


def test_link_pagination_walks_every_deployment_once(make_emulator):
    """per_page and Link rel=next give every deployment exactly once, newest first."""
    emulator = make_emulator(start=START)
    for n in range(7):
        emulator.add_deployment(
            "octo/api", "prod", sha=f"{n:040x}", at=START - timedelta(minutes=10 - n)
        )
    ids: list[int] = []
    path: str | None = "/repos/octo/api/deployments?per_page=3"
    while path:
        status, headers, body = call(emulator, path)
        assert 200 == status
        ids += [d["id"] for d in body]
        links = {
            rel.split('"')[1]: url.strip("<> ")
            for url, rel in (p.split(";") for p in headers.get("link", "").split(",") if ";" in p)
        }
        path = links["next"].removeprefix(emulator.url()) if "next" in links else None
    assert sorted(ids, reverse=True) == ids
    assert 7 == len(set(ids))


def test_matching_etag_is_a_free_304(make_emulator):
    """A request with the ETag of an unchanged resource answers 304 and costs no quota."""
    emulator = make_emulator(start=START)
    emulator.add_repo("octo/api")
    status, headers, _ = call(emulator, "/repos/octo/api/deployments")
    again, again_headers, body = call(
        emulator, "/repos/octo/api/deployments", headers={"If-None-Match": headers["etag"]}
    )
    assert (200, 304, None) == (status, again, body)
    assert ("4999", "4999") == (
        headers["x-ratelimit-remaining"],
        again_headers["x-ratelimit-remaining"],
    )
    assert 1 == len(emulator.charged())


def test_spent_quota_answers_403_with_reset(make_emulator):
    """Past the limit GitHub's 403 'API rate limit exceeded' comes back with remaining 0."""
    emulator = make_emulator(start=START, rate_limit=2)
    emulator.add_repo("octo/api")
    for _ in range(2):
        call(emulator, "/repos/octo/api")
    status, headers, body = call(emulator, "/repos/octo/api")
    assert (403, "0") == (status, headers["x-ratelimit-remaining"])
    assert body["message"].startswith("API rate limit exceeded")
    assert str(int((START + timedelta(hours=1)).timestamp())) == headers["x-ratelimit-reset"]


def test_secondary_limit_counts_every_answer_and_refuses_with_retry_after(make_emulator):
    """Over the secondary limit's points a minute (a free 304 counted), GitHub's 403 with retry-after."""
    emulator = make_emulator(start=START, secondary_points_per_minute=3)
    emulator.add_repo("octo/api")
    _, headers, _ = call(emulator, "/repos/octo/api")
    statuses = [
        call(emulator, "/repos/octo/api", headers={"If-None-Match": headers["etag"]})[0]
        for _ in range(2)
    ]
    status, refused_headers, body = call(emulator, "/repos/octo/api")
    assert ([304, 304], 403, "60", 1) == (
        statuses,
        status,
        refused_headers["retry-after"],
        emulator.secondary_refusals,
    )
    assert body["message"].startswith("You have exceeded a secondary rate limit")


def test_installation_tokens_need_a_jwt_signed_by_the_apps_key(make_emulator):
    """Only a JWT signed with the registered key buys a token, and the token expires on the emulator clock."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    emulator = make_emulator(start=START)
    emulator.add_repo("octo/api")
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    emulator.install_app(9, public, 5, ["octo/api"])
    now = int(time.time())
    claims = {"iat": now - 60, "exp": now + 300, "iss": "9"}
    forged = jwt.encode(claims, other, algorithm="RS256")
    good = jwt.encode(claims, key, algorithm="RS256")
    refused, _, _ = call(
        emulator,
        "/app/installations/5/access_tokens",
        token="",
        method="POST",
        body={},
        headers={"Authorization": f"Bearer {forged}"},
    )
    status, _, grant = call(
        emulator,
        "/app/installations/5/access_tokens",
        token="",
        method="POST",
        body={},
        headers={"Authorization": f"Bearer {good}"},
    )
    assert (401, 201) == (refused, status)
    assert "2026-03-02T13:00:00Z" == grant["expires_at"]
    assert 200 == call(emulator, "/repos/octo/api", token=grant["token"])[0]
    emulator.advance(3600)
    assert 401 == call(emulator, "/repos/octo/api", token=grant["token"])[0]


def test_enterprise_prefix_and_graphql_refusal(make_emulator):
    """/api/v3 serves the same API; a GraphQL query it does not know gets a GraphQL error."""
    emulator = make_emulator(start=START)
    emulator.add_repo("octo/api")
    status, _, body = call(emulator, "/api/v3/repos/octo/api")
    assert (200, "octo/api") == (status, body["full_name"])
    _, _, answer = call(
        emulator, "/api/graphql", method="POST", body={"query": "{ viewer { login } }"}
    )
    assert "errors" in answer


def test_created_filter_and_listing_cap(make_emulator):
    """created=>=X filters runs; a filtered listing reports its total but serves at most 1000."""
    emulator = make_emulator(start=START)
    wf = emulator.add_workflow("octo/api", "Deploy", "deploy.yml")
    for n in range(1005):
        emulator.add_run("octo/api", wf, at=START - timedelta(minutes=n), sha=f"{n:040x}")
    _, _, recent = call(
        emulator,
        "/repos/octo/api/actions/workflows/deploy.yml/runs?created=%3E%3D2026-03-02T11:58:00Z",
    )
    _, _, capped = call(
        emulator,
        "/repos/octo/api/actions/runs?created=%3E%3D2026-02-01T00:00:00Z&per_page=100&page=11",
    )
    assert (3, 3) == (recent["total_count"], len(recent["workflow_runs"]))
    assert (1005, 0) == (capped["total_count"], len(capped["workflow_runs"]))


def test_scenarios_are_deterministic_for_a_seed():
    """The same seed and start give the same history."""

    def shape(seed: int) -> list[tuple[str, str, list[str]]]:
        emulator = GitHubEmulator(scenario=Scenario.demo(seed=seed), start=START)
        return [
            (repo.full_name, dep.environment, [s.state for s in dep.statuses])
            for repo in emulator.repos.values()
            for dep in repo.deployments.values()
        ]

    assert shape(3) == shape(3)
    assert shape(3) != shape(4)


def test_demo_source_is_a_valid_github_source():
    """demo_source() gives a sources[] entry the GitHub config model accepts."""
    made = GitHubConfig.model_validate(demo_source("http://127.0.0.1:9999/"))
    assert ("http://127.0.0.1:9999", ["octo"], "workflow_runs") == (
        made.base_url,
        made.wildcard_owners,
        made.settings_for("octo/legacy").mode,
    )


def test_module_entry_point_serves_until_stopped(tmp_path):
    """Python -m deploy_fetcher.emulators.github prints where it listens and answers there."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy_fetcher.emulators.github",
            "--port",
            "0",
            "--token",
            "T",
            "--scenario",
            "demo",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        request = urllib.request.Request(  # noqa: S310 - the emulator on 127.0.0.1
            f"{url}/orgs/octo/repos", headers={"Authorization": "token T"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            names = [r["full_name"] for r in json.loads(response.read())]
        assert ["octo/api", "octo/legacy", "octo/web"] == names
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"{url}/rate_limit", timeout=2)  # noqa: S310

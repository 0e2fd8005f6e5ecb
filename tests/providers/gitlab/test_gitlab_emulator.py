"""The GitLab emulator speaks GitLab's REST v4: auth, shapes, paging, finder rules, limits, time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from tests.providers.gitlab.support import START, TOKEN

from deploy_fetcher.emulators.gitlab import GitLabEmulator, demo_source
from deploy_fetcher.providers.gitlab import GitLabSourceConfig

HEADERS = {"PRIVATE-TOKEN": TOKEN}


def get(emulator: GitLabEmulator, path: str, prefix: str = "", **params) -> requests.Response:
    return requests.get(
        emulator.url(f"{prefix}/api/v4{path}"), headers=HEADERS, params=params, timeout=5
    )


def test_requests_without_a_valid_token_get_gitlabs_401(emulator):
    """A missing or wrong token is answered 401 with GitLab's body."""
    wrong = requests.get(emulator.url("/api/v4/user"), headers={"PRIVATE-TOKEN": "nope"}, timeout=5)
    assert (401, {"message": "401 Unauthorized"}) == (wrong.status_code, wrong.json())


def test_oauth_bearer_tokens_are_accepted(emulator):
    """Authorization: Bearer works like PRIVATE-TOKEN."""
    response = requests.get(
        emulator.url("/api/v4/user"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert 200 == response.status_code


def test_deployment_lists_page_with_gitlabs_headers_and_links(emulator):
    """Offset paging: x-* headers and a Link header whose next URL carries the same filters."""
    for _ in range(3):
        emulator.add_pipeline("acme/api", ago=600)
    response = get(emulator, "/projects/acme%2Fapi/deployments", per_page=4, page=1)
    next_link = response.headers["Link"].split(",")[0]
    next_url = next_link[next_link.index("<") + 1 : next_link.index(">")]
    assert (
        ["1", "4", "6", "2", "2", ""],
        {"page": ["2"], "per_page": ["4"]},
        4,
        'rel="next"' in next_link,
    ) == (
        [
            response.headers[h]
            for h in (
                "x-page",
                "x-per-page",
                "x-total",
                "x-total-pages",
                "x-next-page",
                "x-prev-page",
            )
        ],
        parse_qs(urlsplit(next_url).query),
        len(response.json()),
        True,
    )


def test_updated_filter_without_updated_sort_is_refused_like_gitlab(emulator):
    """The deployments finder refuses updated_after without order_by=updated_at (400)."""
    response = get(
        emulator, "/projects/acme%2Fapi/deployments", updated_after="2026-03-01T00:00:00Z"
    )
    assert (400, "400 Bad request - `updated_at` filter requires `updated_at` sort") == (
        response.status_code,
        response.json()["message"],
    )


def test_deployments_are_ordered_by_updated_at_then_id_descending(emulator):
    """Equal updated_at values are tie-broken by id, newest first, as GitLab does."""
    emulator.add_pipeline("acme/api", ago=0)  # both deployments created at the same instant
    response = get(
        emulator,
        "/projects/acme%2Fapi/deployments",
        order_by="updated_at",
        sort="asc",
        updated_after="2026-03-01T00:00:00Z",
    )
    ids = [d["id"] for d in response.json()]
    assert sorted(ids, reverse=True) == ids


def test_state_follows_the_emulator_clock(emulator):
    """A new deployment is created, then running, then successful as the clock advances."""
    pipeline = emulator.add_pipeline("acme/api", environments=["staging"], ago=0)
    deployment = emulator.deployments_of(pipeline)["staging"]
    seen = []
    for _ in range(10):
        seen.append(
            get(emulator, f"/projects/acme%2Fapi/deployments/{deployment.id}").json()["status"]
        )
        emulator.advance(15)
    assert ["created", "running", "success"] == list(dict.fromkeys(seen))


def test_approval_endpoint_unblocks_a_gated_deployment(emulator):
    """POST .../approval approves a blocked deployment; approvals show on the single view."""
    pipeline = emulator.add_pipeline(
        "acme/api", environments=["production"], gates={"production": "manual"}, ago=600
    )
    deployment = emulator.deployments_of(pipeline)["production"]
    path = f"/api/v4/projects/acme%2Fapi/deployments/{deployment.id}"
    before = requests.get(emulator.url(path), headers=HEADERS, timeout=5).json()
    posted = requests.post(
        emulator.url(path + "/approval"), headers=HEADERS, json={"status": "approved"}, timeout=5
    )
    emulator.advance(300)
    after = requests.get(emulator.url(path), headers=HEADERS, timeout=5).json()
    assert ("blocked", 1, 201, "success", ["approved"]) == (
        before["status"],
        before["pending_approval_count"],
        posted.status_code,
        after["status"],
        [a["status"] for a in after["approvals"]],
    )


def test_rate_limit_headers_and_429_past_the_limit():
    """Every answer carries RateLimit-*; past the limit GitLab answers 429 with Retry-After."""
    with GitLabEmulator(token=TOKEN, scenario="empty", start=START, rate_limit=2) as server:
        answers = [
            requests.get(server.url("/api/v4/user"), headers=HEADERS, timeout=5) for _ in range(3)
        ]
    assert (["1", "0"], [200, 200, 429], True) == (
        [a.headers["RateLimit-Remaining"] for a in answers[:2]],
        [a.status_code for a in answers],
        int(answers[2].headers["Retry-After"]) >= 1,
    )


def test_a_path_prefix_serves_the_api_under_it():
    """A self-managed emulator answers under its prefix and not at the root."""
    with GitLabEmulator(token=TOKEN, scenario="demo", start=START, prefix="/gitlab") as server:
        under = get(server, "/projects/acme%2Fapi", prefix="/gitlab")
        root = get(server, "/projects/acme%2Fapi")
    assert (200, "acme/api", 404) == (
        under.status_code,
        under.json()["path_with_namespace"],
        root.status_code,
    )


def test_missing_and_forbidden_projects_answer_404_and_403(emulator):
    """Unknown projects are 404; a project the token may not read is 403."""
    emulator.add_project("acme/secret")
    emulator.set_forbidden("acme/secret")
    assert (404, 403) == (
        get(emulator, "/projects/acme%2Fnope/deployments").status_code,
        get(emulator, "/projects/acme%2Fsecret/deployments").status_code,
    )


def test_token_without_api_scope_gets_insufficient_scope():
    """A token lacking read_api is refused with GitLab's insufficient_scope body."""
    with GitLabEmulator(token=TOKEN, scenario="empty", start=START, scopes=["read_user"]) as server:
        response = get(server, "/projects/acme%2Fapi")
    assert (403, "insufficient_scope") == (response.status_code, response.json()["error"])


def test_group_projects_include_subgroups_only_when_asked():
    """include_subgroups=true lists projects of subgroups too."""
    with GitLabEmulator(token=TOKEN, scenario="demo", start=START) as server:
        direct = get(server, "/groups/acme/projects")
        deep = get(server, "/groups/acme/projects", include_subgroups="true")
    paths = [p["path_with_namespace"] for p in deep.json()]
    assert (
        ["acme/api", "acme/web"],
        ["acme/api", "acme/web", "acme/platform/billing", "acme/tools/cli"],
    ) == (
        [p["path_with_namespace"] for p in direct.json()],
        paths,
    )


def test_same_seed_gives_the_same_world():
    """Scenarios are deterministic for a seed (ids, shas, statuses)."""

    def snapshot(seed: int) -> list[tuple[int, str, str]]:
        server = GitLabEmulator(token=TOKEN, scenario="demo", seed=seed, start=START)
        server.advance(3600)
        return [
            (d.id, d.sha, d.status(server.now))
            for p in server.world.projects.values()
            for d in p.deployments
        ]

    assert snapshot(3) == snapshot(3)
    assert snapshot(3) != snapshot(4)


def test_demo_scenario_keeps_producing_deployments_as_time_passes():
    """Advancing the demo clock creates new pipelines and deployments."""
    server = GitLabEmulator(token=TOKEN, scenario="demo", start=START)
    before = len(server.world.deployments)
    server.advance(3600)
    assert len(server.world.deployments) > before


def test_demo_source_is_a_valid_gitlab_source():
    """demo_source returns a sources[] entry the GitLab config model accepts."""
    config = GitLabSourceConfig.model_validate(demo_source("http://127.0.0.1:9/gitlab"))
    assert ("http://127.0.0.1:9/gitlab", "acme/*", "pipelines") == (
        config.url,
        config.projects[0].project,
        config.projects[1].mode,
    )


def test_unknown_scenario_is_refused():
    """An unknown scenario name fails with the list of known ones."""
    with pytest.raises(ValueError, match="benchmark"):
        GitLabEmulator(scenario="nope")


def test_the_reset_is_stated_on_the_clock_of_the_date_header():
    """The window is a real minute, stated on the emulator's clock (here two hours behind).

    A client turns ``RateLimit-Reset`` into a wait with the answer's ``Date``, as GitLab's two agree.
    """
    start = datetime.now(UTC) - timedelta(hours=2)
    with GitLabEmulator(token=TOKEN, scenario="empty", start=start, rate_limit=5) as server:
        answer = requests.get(server.url("/api/v4/user"), headers=HEADERS, timeout=5)
    said = parsedate_to_datetime(answer.headers["Date"]).timestamp()
    wait = int(answer.headers["RateLimit-Reset"]) - said
    stated = parsedate_to_datetime(answer.headers["RateLimit-ResetTime"]).timestamp()
    assert (True, stated) == (0 <= wait <= 61, int(answer.headers["RateLimit-Reset"]))

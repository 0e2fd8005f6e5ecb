"""The emulator behaves like Azure DevOps where the adapter depends on it."""

from __future__ import annotations

import base64
import subprocess
import sys

import httpx
from tests.providers.azure_devops.support import TOKEN, Harness, make_context

from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator, demo_source
from deploy_fetcher.providers.azure_devops import AzureDevOpsConfig, AzureDevOpsProvider

AUTH = {"Authorization": "Basic " + base64.b64encode(f":{TOKEN}".encode()).decode()}


def _get(emulator, path, **params):
    return httpx.get(emulator.url(path), params=params, headers=AUTH)


def test_api_version_is_required(emulator):
    """Without api-version the service answers 400 VssVersionNotSpecifiedException."""
    response = _get(emulator, "/contoso/shop/_apis/build/builds")
    assert (400, "VssVersionNotSpecifiedException") == (
        response.status_code,
        response.json()["typeKey"],
    )


def test_preview_resources_need_the_preview_flag(emulator):
    """Environment records at plain 7.1 are refused; 7.1-preview.1 works."""
    path = "/contoso/shop/_apis/distributedtask/environments/1/environmentdeploymentrecords"
    plain = _get(emulator, path, **{"api-version": "7.1"})
    preview = _get(emulator, path, **{"api-version": "7.1-preview.1"})
    assert (400, 200) == (plain.status_code, preview.status_code)


def test_lists_are_count_and_value_with_a_continuation_header(emulator):
    """``{count, value}`` and x-ms-continuationtoken while more follows."""
    for n in range(3):
        emulator.add_run("web", ago=3600 - n * 60)
    first = _get(
        emulator, "/contoso/shop/_apis/build/builds", **{"api-version": "7.1", "$top": "2"}
    )
    token = first.headers["x-ms-continuationtoken"]
    rest = _get(
        emulator,
        "/contoso/shop/_apis/build/builds",
        **{"api-version": "7.1", "$top": "2", "continuationToken": token},
    )
    assert (2, 2, 1, None) == (
        first.json()["count"],
        len(first.json()["value"]),
        rest.json()["count"],
        rest.headers.get("x-ms-continuationtoken"),
    )


def test_release_endpoints_live_on_the_release_prefix_only(emulator):
    """Release deployments on the organization host are 404, on the release prefix 200."""
    params = {"api-version": "7.1-preview.2"}
    assert (404, 200) == (
        _get(emulator, "/contoso/shop/_apis/release/deployments", **params).status_code,
        _get(emulator, "/vsrm/contoso/shop/_apis/release/deployments", **params).status_code,
    )


def test_no_credentials_get_the_sign_in_page(emulator):
    """An anonymous call gets 203 and HTML, as Azure DevOps does."""
    response = httpx.get(emulator.url("/contoso/_apis/projects"), params={"api-version": "7.1"})
    assert (203, "text/html") == (
        response.status_code,
        response.headers["content-type"].split(";")[0],
    )


def test_spending_the_budget_adds_throttling_headers_then_429(emulator):
    """Half the TSTU budget brings X-RateLimit-*, the whole of it a 429 with Retry-After."""
    emulator.tstu_limit = 0.3
    params = {"api-version": "7.1"}
    quiet = _get(emulator, "/contoso/_apis/projects", **params)
    warned = _get(emulator, "/contoso/_apis/projects", **params)
    blocked = _get(emulator, "/contoso/_apis/projects", **params)
    assert (None, "0.1", 429, True) == (
        quiet.headers.get("x-ratelimit-remaining"),
        warned.headers.get("x-ratelimit-remaining"),
        blocked.status_code,
        int(blocked.headers["retry-after"]) > 0,
    )


def test_advancing_the_clock_moves_runs_forward(emulator):
    """A queued run starts, waits for its approval and finishes as time passes."""
    run = emulator.add_run("web")
    seen = [emulator.run_view(run.id).status]
    emulator.advance(400)
    seen.append(emulator.run_view(run.id).stages[-1].state)
    emulator.advance(3600)
    seen.append(emulator.run_view(run.id).result)
    assert ["notStarted", "inProgress", "succeeded"] == seen


def test_the_demo_scenario_is_deterministic_for_a_seed():
    """Same seed, same history and the same future."""
    a = AzureDevOpsEmulator(scenario="demo", seed=3, start=None)
    b = AzureDevOpsEmulator(scenario="demo", seed=3, start=a.start_time)
    for emulator in (a, b):
        emulator.advance(7200)
    assert [(r.id, r.sha, r.cancel_at) for r in a.scenario.runs] == [
        (r.id, r.sha, r.cancel_at) for r in b.scenario.runs
    ]


def test_demo_source_polls_the_demo_scenario():
    """The demo_source entry is valid config that yields events from the demo scenario."""
    emulator = AzureDevOpsEmulator(scenario="demo")
    with emulator:
        entry = demo_source(emulator.url())
        config = AzureDevOpsConfig.model_validate(entry)
        provider = AzureDevOpsProvider(config, make_context(emulator))
        try:
            harness = Harness(provider)
            harness.cycle()
        finally:
            provider.close()
            provider.context.shared.close()
    statuses = {e.status.value for e in harness.seen.values()}
    assert (True, "azure-devops") == ({"success", "waiting"} <= statuses, entry["provider"])


def test_module_serves_until_interrupted():
    """Python -m deploy_fetcher.emulators.azure_devops prints its URL and serves."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy_fetcher.emulators.azure_devops",
            "--port",
            "0",
            "--token",
            "T",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        url = line.rsplit(" ", 1)[-1].strip()
        response = httpx.get(
            f"{url}/contoso/_apis/projects",
            params={"api-version": "7.1"},
            headers={"Authorization": "Basic " + base64.b64encode(b":T").decode()},
            timeout=10,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    assert ["shop"] == [p["name"] for p in response.json()["value"]]

"""Small pieces tested alone: workflow graphs, Link headers, cursors, the config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from deploy_fetcher.providers.github.client import redirected_base_url
from deploy_fetcher.providers.github.config import GitHubConfig, scope_hash
from deploy_fetcher.providers.github.cursor import (
    DeploymentsCursor,
    OpenDeployment,
    OpenRun,
    RunsCursor,
)
from deploy_fetcher.providers.github.graph import may_be_reviewed, parse_workflow
from deploy_fetcher.providers.kit import parse_link_header

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

CHAIN = """
name: Deploy API
on: push
jobs:
  build:
    runs-on: ubuntu-latest
  deploy-dev:
    needs: build
    environment: dev
  smoke:
    needs: [deploy-dev]
  lint:
    runs-on: ubuntu-latest
  deploy-staging:
    needs: [smoke, lint]
    environment: Staging
  deploy-prod:
    needs: deploy-staging
    environment:
      name: prod
      url: https://example.com
  deploy-dynamic:
    needs: deploy-staging
    environment: ${{ inputs.target }}
  after-dynamic:
    needs: deploy-dynamic
    environment: canary
"""


# -- graph ----------------------------------------------------------------------------------------
def test_graph_looks_through_jobs_without_environment():
    """Each environment's parents are the nearest environment jobs up the needs graph."""
    assert {
        "dev": frozenset(),
        "staging": frozenset({"dev"}),
        "prod": frozenset({"staging"}),
        "canary": frozenset(),
    } == parse_workflow(CHAIN)


@pytest.mark.parametrize("text", ["jobs: [1, 2]", "name: x", ": : :\n  - ["])
def test_graph_refuses_what_is_not_a_workflow(text):
    """Text without a jobs mapping (or not YAML at all) is a ValueError, never a crash."""
    with pytest.raises(ValueError, match="workflow file"):
        parse_workflow(text)


# -- paging ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ("    runs-on: ubuntu-latest", False),
        ("    environment: prod", True),
        ("    uses: ./.github/workflows/deploy.yml", True),
    ],
)
def test_only_environment_jobs_and_reusable_calls_can_be_reviewed(job, expected):
    """A reviewer can hold a run only through an environment job or a called workflow's jobs."""
    text = f"name: Release\non: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n  go:\n{job}\n"
    assert expected == may_be_reviewed(text)


_SCHEME = (
    "Github server redirected from http protocol to https, please correct your Github server URL "
    "via base_url: Github(base_url=...)"
)
_HOST = (
    "Github server redirected from host ghes.example.com to git.example.com, please correct your "
    "Github server URL via base_url: Github(base_url=...)"
)
_PORT = (
    "Requested http://ghes.example.com/api/v3/repos/o/r but server redirected to "
    "http://ghes.example.com:8080/api/v3/repos/o/r, you may need to correct your Github server "
    "URL via base_url: Github(base_url=...)"
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (_SCHEME, "https://ghes.example.com/api/v3"),
        (_HOST, "http://git.example.com/api/v3"),
        (_PORT, "http://ghes.example.com:8080/api/v3"),
        ("GraphQL path ['data'] not found in data: {}", None),
    ],
)
def test_a_refused_redirect_names_the_base_url_it_points_to(message, expected):
    """PyGithub's three redirect refusals give the base_url to set; other errors give None."""
    assert expected == redirected_base_url("http://ghes.example.com/api/v3", message)


def test_link_header_is_parsed_by_rel():
    """Every rel of a Link header maps to its URL."""
    header = '<https://api.github.com/r?page=2>; rel="next", <https://api.github.com/r?page=5>; rel="last"'
    assert {
        "next": "https://api.github.com/r?page=2",
        "last": "https://api.github.com/r?page=5",
    } == parse_link_header(header)


# -- cursors --------------------------------------------------------------------------------------
def _deployments(**open_items: OpenDeployment) -> DeploymentsCursor:
    cursor = DeploymentsCursor(T0, scope="s1", etag='W/"abc"')
    for key, entry in open_items.items():
        cursor.keep_open(int(key.removeprefix("d")), entry)
    return cursor


def test_deployments_cursor_round_trips():
    """A cursor read back from its JSON equals what was written."""
    cursor = _deployments(
        d7=OpenDeployment(
            "2026-03-02T08:00:00Z",
            {"id": 7, "environment": "dev"},
            'W/"e"',
            42,
            awaiting_run=True,
            waited=True,
        )
    )
    cursor.close(5, "2026-03-02T08:59:00Z")
    again = DeploymentsCursor.load(cursor.sealed(), scope="s1")
    assert (cursor, cursor.opened()) == (again, again.opened())


def test_cursor_of_another_scope_starts_over():
    """A cursor written for other settings is not continued, and that is logged as information."""
    cursor = DeploymentsCursor(T0, scope="old").sealed()
    with capture_logs() as logs:
        assert (
            DeploymentsCursor.resume(cursor, scope="new", log_name="github", target="o/r") is None
        )
    assert [("github.cursor_reset", "info", "o/r")] == [
        (e["event"], e["log_level"], e["target"]) for e in logs
    ]


def test_unreadable_cursor_is_reported_not_half_read():
    """A damaged cursor of the right scope is not continued, and that is a warning."""
    damaged = {**DeploymentsCursor(T0, scope="s").sealed(), "open": {"1": ["yesterday", {}]}}
    with capture_logs() as logs:
        assert DeploymentsCursor.resume(damaged, scope="s", log_name="github", target="o/r") is None
    assert [("github.cursor_reset", "warning")] == [(e["event"], e["log_level"]) for e in logs]
    assert "not a timestamp" in logs[0]["reason"]


def test_forget_drops_old_and_excess_open_items_and_done_behind_the_window():
    """Open items expire by age and count; finished ones are forgotten behind mark - overlap."""
    cursor = _deployments(
        d1=OpenDeployment("2026-03-01T00:00:00Z", {}),
        d2=OpenDeployment("2026-03-02T00:00:00Z", {}),
        d3=OpenDeployment("2026-02-01T00:00:00Z", {}),
    )
    cursor.close(8, "2026-03-02T08:58:00Z")
    cursor.close(9, "2026-03-02T07:00:00Z")
    dropped = cursor.forget(
        now=T0, overlap=timedelta(minutes=5), max_open=1, max_age=timedelta(days=3)
    )
    assert ([3, 1], [2], ["8"]) == (
        dropped,
        [i for i, _ in cursor.opened()],
        list(cursor.done.items),
    )


def test_runs_cursor_round_trips():
    """Runs cursors keep ETags per list, open attempts with their wait times, and done attempts."""
    cursor = RunsCursor(T0, scope="s", etags={"1|x": 'W/"a"'})
    cursor.keep_open(4, OpenRun(2, "2026-03-02T08:00:00Z", 'W/"r"', "2026-03-02T08:01:00Z", None))
    cursor.close(3, 1, "2026-03-02T07:00:00Z")
    again = RunsCursor.load(cursor.sealed(), scope="s")
    assert (cursor, 1, cursor.opened(4)) == (again, again.done_attempt(3), again.opened(4))


# -- config ---------------------------------------------------------------------------------------
def config(**kw):
    base = {"name": "gh", "provider": "github", "token": "t0ken-value", "repos": ["octo/api"]}
    return GitHubConfig.model_validate(base | kw)


def test_config_needs_exactly_one_credential(tmp_path: Path):
    """A token or an App, not both and not neither; the App key may come from a file."""
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n")
    app = {"app_id": 1, "private_key_file": str(key), "installation_id": 2}
    with pytest.raises(ValidationError, match="exactly one of token"):
        config(app=app)
    with pytest.raises(ValidationError, match="exactly one of token"):
        config(token=None)
    made = config(token=None, app=app)
    assert ("app-1-2", "MIIE" in made.app.private_key.get_secret_value()) == (
        made.credential_label,
        True,
    )
    assert "t0ken-value" not in repr(config())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("repos", ["octo"], "owner/name or owner/"),
        ("repos", [], "at least 1"),
        ("version", "tag", "sha7, sha, ref"),
        ("service", "{workflow}-{colour}", "unknown field"),
        ("base_url", "ftp://ghe", "must start with https://"),
        ("quota_share", 0, "greater than 0"),
    ],
)
def test_config_refuses_bad_values(key, value, message):
    """Bad values fail loudly at start-up with a message naming the problem."""
    with pytest.raises(ValidationError, match=message):
        config(**{key: value})


def test_settings_resolve_explicit_entry_before_wildcard():
    """An explicit repo entry wins over a matching owner/*; source settings fill the rest."""
    made = config(
        service="{repo_name}",
        repos=[
            "octo/*",
            {"repo": "octo/legacy", "mode": "workflow_runs", "workflows": ["release.yml"]},
        ],
    )
    legacy, api = made.settings_for("Octo/Legacy"), made.settings_for("octo/api")
    assert ("workflow_runs", ["release.yml"], "{repo_name}") == (
        legacy.mode,
        legacy.workflows,
        legacy.service,
    )
    assert ("deployments", "{repo_name}") == (api.mode, api.service)
    assert (["octo/legacy"], ["octo"]) == (made.explicit_repos, made.wildcard_owners)
    assert scope_hash(legacy) != scope_hash(api)

"""Which target an authentic webhook event names, on the providers' published example payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deploy_fetcher.nudges import Ignored, Named, identify

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "webhooks"


def _payload(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("event", "fixture", "names"),
    [
        ("workflow_run", "github_workflow_run_completed.json", {"octo-org/octo-repo"}),
        ("deployment_status", "github_deployment_status.json", {"Codertocat/Hello-World"}),
    ],
)
def test_github_event_names_its_repository(event: str, fixture: str, names: set[str]) -> None:
    """A GitHub deployment or workflow event names the repository it happened in."""
    assert Named(frozenset(names)) == identify(
        "github", {"x-github-event": event}, _payload(fixture), {}
    )


def test_github_ping_and_unwatched_events_are_ignored() -> None:
    """GitHub's ping (sent when a hook is created) and events we do not watch poll nothing."""
    ping = identify("github", {"x-github-event": "ping"}, _payload("github_ping.json"), {})
    push = identify("github", {"x-github-event": "push"}, {"repository": {"full_name": "a/b"}}, {})
    assert (True, True) == (isinstance(ping, Ignored), isinstance(push, Ignored))


def test_gitlab_pipeline_names_its_project_not_the_upstream_one() -> None:
    """A pipeline event names its project by path and id; the triggering upstream project is not named."""
    found = identify(
        "gitlab", {"x-gitlab-event": "Pipeline Hook"}, _payload("gitlab_pipeline_hook.json"), {}
    )
    assert Named(frozenset({"gitlab-org/gitlab-test", "1"})) == found


def test_gitlab_deployment_names_its_project() -> None:
    """A deployment event names its project by path and id."""
    found = identify(
        "gitlab", {"x-gitlab-event": "Deployment Hook"}, _payload("gitlab_deployment_hook.json"), {}
    )
    assert Named(frozenset({"root/test-deployment-webhooks", "30"})) == found


def test_gitlab_system_hook_is_ignored() -> None:
    """The same body under another X-Gitlab-Event (a system hook) polls nothing."""
    found = identify(
        "gitlab", {"x-gitlab-event": "System Hook"}, _payload("gitlab_deployment_hook.json"), {}
    )
    assert isinstance(found, Ignored)


def test_azure_devops_job_event_names_the_project_of_its_links() -> None:
    """A pipeline job event names its project only in its links; that name is a candidate."""
    found = identify("azure-devops", {}, _payload("azure_devops_job_state_changed.json"), {})
    assert isinstance(found, Named)
    assert {"fabrikamfiber-viva", "be9b3917-87e6-42a4-a549-2bc06a7a878f"} <= found.names


def test_azure_devops_run_event_with_ids_only_takes_the_url_hint() -> None:
    """A run event whose links carry the project's id names the project given in the hook's URL."""
    payload = _payload("azure_devops_run_state_changed.json")
    bare = identify("azure-devops", {}, payload, {})
    hinted = identify("azure-devops", {}, payload, {"project": "shop"})
    assert isinstance(bare, Named)
    assert isinstance(hinted, Named)
    assert ("shop" in bare.names, "shop" in hinted.names) == (False, True)
    assert {"be9b3917-87e6-42a4-a549-2bc06a7a878f", "863d0a5b-3c91-4bf3-8ad7-7f33736b7f4c"} <= (
        bare.names
    )


def test_azure_devops_release_event_names_its_project() -> None:
    """A release deployment event names its project in ``resource.project`` and in its links."""
    found = identify(
        "azure-devops", {}, _payload("azure_devops_release_deployment_started.json"), {}
    )
    assert isinstance(found, Named)
    assert {"Fabrikam", "Fabrikam-Fiber-Git"} <= found.names


def test_azure_devops_unwatched_event_is_ignored() -> None:
    """An event type we do not watch (a push) polls nothing."""
    assert isinstance(identify("azure-devops", {}, {"eventType": "git.push"}, {}), Ignored)


def test_body_that_is_not_an_object_is_ignored() -> None:
    """JSON that is not an object names nothing."""
    assert isinstance(identify("github", {"x-github-event": "workflow_run"}, [1, 2], {}), Ignored)

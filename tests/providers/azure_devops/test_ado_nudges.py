"""A webhook about one pipeline nudges the sources that read it, not every source of its project."""

from __future__ import annotations

import json
from pathlib import Path

from deploy_fetcher.nudges import Named, identify

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "webhooks"


def _job_event() -> Named:
    payload = json.loads((FIXTURES / "azure_devops_job_state_changed.json").read_text())
    found = identify("azure-devops", {}, payload, {})
    assert isinstance(found, Named)
    return found


def test_the_published_job_event_names_its_pipeline_by_id_and_name() -> None:
    """Azure DevOps' job-state example names pipeline 2, ``TEST-CI``."""
    assert {"2", "TEST-CI"} == set(_job_event().pipelines)


def test_a_source_is_nudged_only_for_its_pipelines(providers) -> None:
    """Sources reading TEST-CI (by name or id), or every pipeline, want it; another does not."""
    pipelines = _job_event().pipelines
    assert [True, True, True, False] == [
        providers(pipelines=["TEST-CI"]).accepts_nudge("shop", pipelines),
        providers(pipelines=["2"]).accepts_nudge("shop", pipelines),
        providers().accepts_nudge("shop", pipelines),
        providers(pipelines=["svc-web"]).accepts_nudge("shop", pipelines),
    ]


def test_an_event_without_a_pipeline_concerns_every_source(providers) -> None:
    """A release or approval event names no pipeline: every source of the project is nudged."""
    assert providers(pipelines=["svc-web"]).accepts_nudge("shop", frozenset())

"""The GitLab emulator's scenario: when quiet projects begin to change."""

from __future__ import annotations

from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.emulators.gitlab import Scenario as GitLabScenario


def _pipelines(emulator: GitLabEmulator, path: str) -> int:
    project = emulator.world.project(path)
    assert project is not None
    return len(project.pipelines)


def test_first_activity_sets_when_a_projects_first_new_pipeline_comes() -> None:
    """Projects whose first pipelines are set at 0, 10 and 20 s: after 15 s the first two changed."""
    scenario = GitLabScenario(1)
    for index, path in enumerate(("acme/a", "acme/b", "acme/c")):
        scenario.project(path, activity=3600.0, first_activity=index * 10.0)
    emulator = GitLabEmulator(scenario=scenario)
    emulator.advance(15)
    assert [1, 1, 0] == [_pipelines(emulator, p) for p in ("acme/a", "acme/b", "acme/c")]


def test_without_first_activity_a_quiet_project_waits_at_least_a_fifth_of_its_activity() -> None:
    """Left random, a project with an hour between pipelines has none in its first 12 minutes."""
    scenario = GitLabScenario(1)
    for index in range(20):
        scenario.project(f"acme/p{index}", activity=3600.0)
    emulator = GitLabEmulator(scenario=scenario)
    emulator.advance(0.2 * 3600 - 1)
    assert 0 == sum(_pipelines(emulator, f"acme/p{index}") for index in range(20))

"""The promotion graph of a workflow: which environments a deploy job waits for.

A workflow file's jobs declare ``environment:`` (a string or ``{name, url}``) and ``needs:`` (a string
or a list). Between two jobs that target environments there are often jobs that do not (smoke tests,
approvals gates); they are looked through, so ``deploy-dev → smoke → deploy-staging`` makes ``dev`` the
parent of ``staging``. Pure functions: the adapter fetches the file, this module only reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["EnvironmentGraph", "may_be_reviewed", "parse_workflow"]

#: Parent environments per environment, lower-cased (GitHub compares environment names that way).
EnvironmentGraph = dict[str, frozenset[str]]


def _environment_of(job: Mapping[str, Any]) -> str | None:
    env = job.get("environment")
    if isinstance(env, Mapping):
        env = env.get("name")
    if isinstance(env, str) and env.strip():
        return env.strip().lower()
    return None


def _needs_of(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs")
    if isinstance(needs, str):
        return [needs]
    if isinstance(needs, list):
        return [n for n in needs if isinstance(n, str)]
    return []


def _jobs(text: str) -> dict[str, Mapping[str, Any]]:
    """A workflow file's jobs by name; ValueError when the text is not a workflow."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"workflow file is not YAML: {exc}"
        raise ValueError(msg) from None
    if not isinstance(data, Mapping) or not isinstance(data.get("jobs"), Mapping):
        msg = "workflow file has no jobs mapping"
        raise ValueError(msg)  # noqa: TRY004 - an unusable file, whatever its shape
    return {str(k): v for k, v in data["jobs"].items() if isinstance(v, Mapping)}


def may_be_reviewed(text: str) -> bool:
    """Whether a run of this workflow can wait for (and be refused by) a reviewer.

    Only a job that targets an environment can, or one calling a reusable workflow (``uses:``),
    whose own jobs may. Raises ValueError when the text is not a workflow.
    """
    return any("environment" in job or "uses" in job for job in _jobs(text).values())


def parse_workflow(text: str) -> EnvironmentGraph:
    """Return each environment's parent environments from a workflow file's text.

    Expressions (``environment: ${{ inputs.target }}``) cannot be resolved without the run's inputs:
    such a job counts as an environment job of an unknown name, so it neither gets nor gives parents.
    Raises ValueError when the text is not a workflow (the caller gives ``[]`` parents then).
    """
    jobs = _jobs(text)
    env_of = {name: _environment_of(job) for name, job in jobs.items()}
    is_env_job = {name: "environment" in job for name, job in jobs.items()}

    def upstream_envs(job: str) -> set[str]:
        """Environments reached walking ``needs`` up from ``job``, stopping at environment jobs."""
        found: set[str] = set()
        seen: set[str] = set()
        stack = list(_needs_of(jobs[job]))
        while stack:
            current = stack.pop()
            if current in seen or current not in jobs:
                continue
            seen.add(current)
            if is_env_job[current]:
                env = env_of[current]
                if env is not None and "${{" not in env:
                    found.add(env)
                continue
            stack.extend(_needs_of(jobs[current]))
        return found

    graph: dict[str, set[str]] = {}
    for name in jobs:
        env = env_of[name]
        if env is None or "${{" in env:
            continue
        graph.setdefault(env, set()).update(upstream_envs(name) - {env})
    return {env: frozenset(parents) for env, parents in graph.items()}

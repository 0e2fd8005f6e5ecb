"""The webhooks the CI systems send as their emulators' worlds change: the events, no more, no fewer.

After each step of an emulator's clock, :class:`Hooks` lists the events the real service would have
sent since the last step and POSTs one webhook per event, with the service's event header and
authentication, naming the repository, project or pipeline where its payloads name it (cut down to
what a nudge reads). Which change sends which event is the providers' documentation:

* **GitHub** (https://docs.github.com/en/webhooks/webhook-events-and-payloads): ``deployment``
  when a deployment is created; ``deployment_status`` when a status is created (every status:
  queued, waiting, in_progress, success, failure, inactive …); ``workflow_run`` when a run is
  requested, starts (``in_progress``) and completes; ``workflow_job`` when a job is queued, starts
  and completes (the emulator's runs have one job, which follows its run).
* **GitLab** (https://docs.gitlab.com/user/project/integrations/webhook_events/): a *Deployment
  event* when a deployment "starts, succeeds, fails, or is canceled" — ``running``, ``success``,
  ``failed``, ``canceled``; not ``created`` nor ``blocked``; a *Pipeline event* whenever "a
  pipeline status changes". Job events exist too, but a nudge subscription does not take them.
* **Azure DevOps** (MicrosoftDocs/azure-devops-docs, ``docs/service-hooks/events.md`` at
  09dc63ed0e56c9e324f697fd41998b4f2f6e9675): *Run state changed* when a run starts or completes;
  *Run stage state changed* when a stage starts (running, or waiting on a check) or completes;
  *Run stage waiting for approval* / *approval completed*; *Run job state changed* when "a new job
  is running, or it has completed, or is waiting for an agent".

Each event is keyed by what it announces (a status id, an object and its new state), so a change
is sent once, however many steps later it is still true.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from deploy_fetcher.emulators.azure_devops.scenario import run_view

#: Azure DevOps runs older than this are complete: their events were sent long ago.
_AZURE_RECENT = timedelta(hours=2)
#: GitHub's ``workflow_run`` action for each status a run's attempt passes through.
_RUN_ACTIONS = {"queued": "requested", "in_progress": "in_progress", "completed": "completed"}
_JOB_ACTIONS = {"queued": "queued", "in_progress": "in_progress", "completed": "completed"}
#: The deployment statuses GitLab sends a Deployment event for.
_GITLAB_DEPLOYMENT_EVENTS = frozenset({"running", "success", "failed", "canceled"})

#: One event: (its key, the target it names, the event's name, the body's event-specific part).
Event = tuple[tuple[Any, ...], str, str, dict[str, Any]]


class Hooks:
    """Sends one CI emulator's webhooks to ``url`` (``/github``, ``/gitlab``, ``/azure-devops``)."""

    def __init__(self, kind: str, emulator: Any, url: str, secret: str) -> None:
        self.kind = kind
        self.emulator = emulator
        self.url = url
        self.secret = secret
        #: Webhooks sent, by event name; and the answers that were not a 2xx (by status).
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._seen = {key for key, *_ in self._events()}
        self._queue: queue.Queue[tuple[str, bytes, dict[str, str], str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._send_all, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending (what is queued is dropped)."""
        self._queue.put(None)
        self._thread.join(10)

    def figures(self) -> dict[str, Any]:
        """Webhooks sent by event, and failed sends by answer."""
        return {"sent": dict(self.sent), "failed": dict(self.failed)}

    def after_advance(self) -> None:
        """Queue one webhook per event the last clock step caused."""
        current = set()
        for key, target, event, body in self._events():
            current.add(key)
            if key not in self._seen:
                self._queue.put((*self._request(target, event, body), event))
        self._seen = current

    # -- which events ------------------------------------------------------------------------------
    def _events(self) -> Iterator[Event]:
        if self.kind == "github":
            return self._github()
        if self.kind == "gitlab":
            return self._gitlab()
        return self._azure()

    def _github(self) -> Iterator[Event]:
        with self.emulator.state_lock:
            for repo in self.emulator.repos.values():
                name = repo.full_name
                for dep in repo.deployments.values():
                    yield ("d", dep.id), name, "deployment", {"deployment": {"id": dep.id}}
                    for status in dep.statuses:
                        body = {"deployment_status": {"id": status.id, "state": status.state}}
                        yield ("s", status.id), name, "deployment_status", body
                for run in repo.runs.values():
                    for attempt, state in enumerate(run.attempts, 1):
                        status = state.get("status", "queued")
                        action = _RUN_ACTIONS.get(status)
                        if action is None:
                            continue
                        ids = {"id": run.id, "run_attempt": attempt}
                        run_body = {"action": action, "workflow_run": ids}
                        yield ("r", run.id, attempt, action), name, "workflow_run", run_body
                        job = _JOB_ACTIONS[status]
                        job_body = {"action": job, "workflow_job": {"run_id": run.id, **ids}}
                        yield ("j", run.id, attempt, job), name, "workflow_job", job_body

    def _gitlab(self) -> Iterator[Event]:
        now = self.emulator.now
        for project in self.emulator.world.projects.values():
            name = project.path
            for dep in project.deployments:
                if not dep.visible(now):
                    continue
                status = dep.status(now)
                if status in _GITLAB_DEPLOYMENT_EVENTS:
                    body = {"deployment_id": dep.id, "status": status}
                    yield ("d", dep.id, status), name, "Deployment Hook", body
            for pipeline in project.pipelines:
                if not pipeline.visible(now):
                    continue
                status = pipeline.status(now)
                body = {"object_attributes": {"id": pipeline.id, "status": status}}
                yield ("p", pipeline.id, status), name, "Pipeline Hook", body

    def _azure(self) -> Iterator[Event]:
        now = self.emulator.now()
        for run in self.emulator.scenario.runs:
            if run.queued > now or run.queued < now - _AZURE_RECENT:
                continue
            view = run_view(run, now)
            name = run.pipeline.name
            if view.started is not None:
                yield from _azure_event(("run", run.id, "inProgress"), name, "run")
            if view.status == "completed":
                yield from _azure_event(("run", run.id, "completed"), name, "run")
            for stage in view.stages:
                yield from _azure_stage(run.id, name, stage)

    # -- sending -----------------------------------------------------------------------------------
    def _request(
        self, target: str, event: str, body: dict[str, Any]
    ) -> tuple[str, bytes, dict[str, str]]:
        if self.kind == "github":
            payload = {"action": "created", "repository": {"full_name": target}, **body}
            data = json.dumps(payload)
            raw = data.encode()
            signature = hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
            headers = {"X-GitHub-Event": event, "X-Hub-Signature-256": "sha256=" + signature}
            return self.url + "/github", raw, headers
        if self.kind == "gitlab":
            kind = "deployment" if event == "Deployment Hook" else "pipeline"
            payload = {"object_kind": kind, "project": {"path_with_namespace": target}, **body}
            headers = {"X-Gitlab-Event": event, "X-Gitlab-Token": self.secret}
            return self.url + "/gitlab", json.dumps(payload).encode(), headers
        payload = {"eventType": event, "resource": {"pipeline": {"name": target}, **body}}
        basic = base64.b64encode(f"hooks:{self.secret}".encode()).decode()
        headers = {"Authorization": "Basic " + basic}
        return self.url + "/azure-devops?project=shop", json.dumps(payload).encode(), headers

    def _send_all(self) -> None:
        while (item := self._queue.get()) is not None:
            url, body, headers, event = item
            request = urllib.request.Request(  # noqa: S310 - a local http URL
                url, data=body, headers={"Content-Type": "application/json", **headers}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                    answer.read()
                self.sent[event] += 1
            except urllib.error.HTTPError as error:
                self.failed[str(error.code)] += 1
            except OSError:
                self.failed["network"] += 1


_AZURE_EVENTS = {
    "run": "ms.vss-pipelines.run-state-changed-event",
    "stage": "ms.vss-pipelines.stage-state-changed-event",
    "job": "ms.vss-pipelines.job-state-changed-event",
    "approval-pending": "ms.vss-pipelinechecks-events.approval-pending",
    "approval-completed": "ms.vss-pipelinechecks-events.approval-completed",
}


def _azure_event(key: tuple[Any, ...], name: str, kind: str) -> Iterator[Event]:
    yield key, name, _AZURE_EVENTS[kind], {"state": key[-1]}


def _azure_stage(run_id: int, name: str, stage: Any) -> Iterator[Event]:
    """A stage's events: started (waiting on its check, or running), its approval, job, end."""
    where = (run_id, stage.spec.name)
    checked = stage.checkpoint_started is not None
    if stage.started is not None:
        yield from _azure_event(
            ("stage", *where, "waiting" if checked else "running"), name, "stage"
        )
    if checked:
        yield from _azure_event(("approval-pending", *where, "pending"), name, "approval-pending")
    if stage.checkpoint_finished is not None:
        key = ("approval-completed", *where, "completed")
        yield from _azure_event(key, name, "approval-completed")
        if stage.approval_result == "succeeded":
            yield from _azure_event(("stage", *where, "running"), name, "stage")
    job = stage.job
    if job is not None:
        yield from _azure_event(("job", *where, "waiting"), name, "job")
        if job.started is not None:
            yield from _azure_event(("job", *where, "running"), name, "job")
        if job.finished is not None:
            yield from _azure_event(("job", *where, "completed"), name, "job")
    if stage.state == "completed":
        yield from _azure_event(("stage", *where, "completed"), name, "stage")

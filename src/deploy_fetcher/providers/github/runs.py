"""Workflow-runs mode: each run attempt of the selected workflows is one deployment.

For repositories whose deploy workflows use no GitHub environments (so no Deployments API objects
exist). One cycle:

1. the workflow list (``If-None-Match``; free while unchanged) resolves the configured file names and
   name patterns to workflow ids and YAML names;
2. per selected workflow, ``GET …/workflows/{id}/runs?created=>=W`` with ``If-None-Match``, where ``W``
   is ``mark − rerun_window``: the URL stays the same while nothing new happens, so an idle workflow
   answers ``304``; within the window a re-run (``run_attempt`` + 1) of a recent run is seen;
3. open runs that fell out of the window: ``GET …/runs/{id}`` with ``If-None-Match``;
4. re-runs of runs older than the window: ``GET …/actions/runs?status=in_progress`` and
   ``?status=waiting`` for the whole repository, with ``If-None-Match`` (free while nothing runs
   or waits): a re-run started days later is active, whatever its run's creation time, so a poll
   that sees it running or waiting follows it to its end.

A filtered run listing stops at 1 000 results; a window with more is split at a whole second into
halves until each half fits.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Unpack

from deploy_fetcher.lifecycle import lifecycle_order
from deploy_fetcher.model import DeployEvent, format_rfc3339, parse_timestamp
from deploy_fetcher.providers._base import Cursor, Page
from deploy_fetcher.providers.github.client import GitHubClient, MalformedResponse, NotFound
from deploy_fetcher.providers.github.cursor import OpenRun, RunsCursor
from deploy_fetcher.providers.github.lookups import LRU, Lookups
from deploy_fetcher.providers.github.mapping import (
    JobTimes,
    RunOutcome,
    job_times,
    run_events,
    run_problem,
)
from deploy_fetcher.providers.github.walker import RepoWalker, WalkerArgs
from deploy_fetcher.providers.kit import backfill_pages, cursor_pages, record_raw

__all__ = ["RunWalker", "Workflow", "select_workflows"]


_LIST_CAP: Final = 1000
#: Runs handled (and stored) per step of a cycle.
_CHUNK: Final = 100
_MAX_SPLITS: Final = 8
#: Earlier attempts of a re-run read at most this far back (each costs a request).
_MAX_PREVIOUS_ATTEMPTS: Final = 3
#: Job times of attempts kept in memory (a started attempt's start never changes).
_JOB_TIMES_CACHE: Final = 4096
#: Statuses under which a re-run of an old run is listed by the repository's run list.
_ACTIVE_STATUSES: Final = ("in_progress", "waiting")
#: Run states whose attempt may have a job running or done: their jobs are read.
_JOB_STATES: Final = frozenset({"in_progress", "completed"})

Workflow = tuple[int, str, str]  # id, YAML name, path


def select_workflows(workflows: list[Workflow], patterns: list[str]) -> list[Workflow]:
    """Workflows matching a file name (``deploy.yml``) or a glob over the YAML name; all if none."""
    if not patterns:
        return list(workflows)
    chosen: list[Workflow] = []
    for wf in workflows:
        file_name = wf[2].rsplit("/", 1)[-1]
        for pattern in patterns:
            if pattern.endswith((".yml", ".yaml")):
                if fnmatch.fnmatchcase(file_name, pattern) or fnmatch.fnmatchcase(wf[2], pattern):
                    chosen.append(wf)
                    break
            elif fnmatch.fnmatchcase(wf[1], pattern):
                chosen.append(wf)
                break
    return chosen


class RunWalker(RepoWalker):
    """Polls one repository in workflow-runs mode; kept across cycles for its caches."""

    def __init__(self, client: GitHubClient, lookups: Lookups, **args: Unpack[WalkerArgs]) -> None:
        super().__init__(client, lookups, **args)
        self._workflows_etag: str | None = None
        self._workflows: list[Workflow] = []
        self._job_times: LRU[tuple[int, int], JobTimes] = LRU(_JOB_TIMES_CACHE)

    # -- workflows ---------------------------------------------------------------------------------
    def workflows(self) -> list[Workflow]:
        """The selected workflows (the list is re-validated each cycle, free while unchanged)."""
        url = f"/repos/{self.repo.full_name}/actions/workflows"
        found: list[Workflow] = []
        etag = self._workflows_etag
        for index, page in enumerate(self.client.pages(url, {"per_page": 100}, etag=etag)):
            if page.not_modified:
                return select_workflows(self._workflows, self.settings.workflows)
            if index == 0:
                etag = page.etag
            items = page.data.get("workflows") if isinstance(page.data, Mapping) else None
            if not isinstance(items, list):
                msg = f"GitHub sent a workflow list without workflows: {page.url}"
                raise MalformedResponse(msg, url=page.url)
            found.extend(
                (wf["id"], str(wf.get("name") or wf.get("path")), str(wf.get("path") or ""))
                for wf in items
                if isinstance(wf, Mapping) and isinstance(wf.get("id"), int)
            )
        self._workflows, self._workflows_etag = found, etag
        return select_workflows(found, self.settings.workflows)

    # -- the cycle ---------------------------------------------------------------------------------
    def poll(
        self, cursor: Cursor | None, *, now: datetime, lookback: timedelta, overlap: timedelta
    ) -> Iterator[Page]:
        """One incremental cycle (see the module docstring)."""
        stored = RunsCursor.resume(
            cursor, scope=self.scope, log_name="github", target=self.repo.full_name
        )
        state = stored or RunsCursor(now - lookback, scope=self.scope)
        fresh = not (
            cursor
            and cursor.get("scope") == self.scope
            and cursor.get("mode") == RunsCursor.MODE
            and cursor.get("v") == RunsCursor.VERSION
        )
        reach = overlap if fresh else max(overlap, self.settings.rerun_window)
        walk = self._walk(state, now=now, reach=reach)
        yield from cursor_pages(walk, state.sealed, cursor, order=lifecycle_order)

    def _walk(
        self, state: RunsCursor, *, now: datetime, reach: timedelta
    ) -> Iterator[list[DeployEvent]]:
        """The cycle's events, yielded where ``state`` covers exactly what was yielded so far."""
        runs, names, etags = self._gather(state, state.mark - reach)
        ordered = sorted(runs.values(), key=lambda r: (r["created_at"], r["id"]))
        ceiling = self.client.policy.mark_ceiling()
        # Oldest first, in chunks: each page's cursor covers that chunk (the mark at its newest
        # run; the list ETags only once everything is stored), so a cycle cut short resumes there.
        for start in range(0, max(len(ordered), 1), _CHUNK):
            events: list[DeployEvent] = []
            for run in ordered[start : start + _CHUNK]:
                known = state.done_attempt(run["id"]) is not None or state.opened(run["id"])
                events += self._process(run, state, names)
                created = parse_timestamp(run["created_at"])
                if not state.advance(created, ceiling=ceiling) and not known:
                    url = self.client.display(f"/repos/{self.repo.full_name}/actions/runs")
                    self.client.policy.future_item(url=url, item=run["id"], at=created)
            if start + _CHUNK >= len(ordered):
                state.etags = etags
            for dropped in state.forget(
                now=now, overlap=reach, max_open=self.max_open, max_age=self.open_max_age
            ):
                self._log.info("github.open_run_dropped", run=dropped, reason="too old or too many")
            yield events

    def _gather(
        self, state: RunsCursor, window: datetime
    ) -> tuple[dict[int, dict[str, Any]], dict[int, str], dict[str, str]]:
        """Runs listed since ``window`` (per workflow, conditionally), open runs re-read, new ETags."""
        names: dict[int, str] = {}
        runs: dict[int, dict[str, Any]] = {}
        etags: dict[str, str] = {}
        for wf_id, wf_name, _path in self.workflows():
            names[wf_id] = wf_name
            key = f"{wf_id}|{format_rfc3339(window)}"
            listed, etag = self._list(wf_id, window, None, etag=state.etags.get(key))
            if etag:
                etags[key] = etag
            runs.update((run["id"], run) for run in listed)
        for run_id, entry in state.open_runs():
            if run_id not in runs:
                reread = self._reread(run_id, entry)
                if reread is not None:
                    state.keep_open(run_id, entry)  # with the ETag it came back with
                    runs[run_id] = reread
        for status in _ACTIVE_STATUSES:
            key = f"active|{status}"
            active, etag = self._active(status, etag=state.etags.get(key))
            if etag:
                etags[key] = etag
            for run in active:
                if run["id"] not in runs and run.get("workflow_id") in names:
                    runs[run["id"]] = run
        return runs, names, etags

    def _active(self, status: str, *, etag: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Runs of the repository now ``status`` (one page of 100), ``([], etag)`` when unchanged."""
        url = f"/repos/{self.repo.full_name}/actions/runs"
        response = self.client.get(url, {"per_page": 100, "status": status}, etag=etag)
        if response.not_modified:
            return [], etag
        data = response.data if isinstance(response.data, Mapping) else {}
        items = data.get("workflow_runs")
        if not isinstance(items, list):
            msg = f"GitHub sent a run list without workflow_runs: {response.url}"
            raise MalformedResponse(msg, url=response.url)
        out: list[dict[str, Any]] = []
        for run in items:
            problem = run_problem(run)
            if problem:
                self._log.warning(
                    "github.malformed_item", url=response.url, reason=f"run: {problem}"
                )
            elif self._branch_selected(run):
                out.append(run)
        return out, response.etag

    def backfill(self, since: datetime, until: datetime) -> Iterator[Page]:
        """Every event of runs created in ``[since, until)``, oldest first, without cursor."""
        names: dict[int, str] = {}
        runs: dict[int, dict[str, Any]] = {}
        for wf_id, wf_name, _path in self.workflows():
            names[wf_id] = wf_name
            listed, _ = self._list(wf_id, since, until, etag=None)
            runs.update({r["id"]: r for r in listed})
        scratch = RunsCursor(since, scope=self.scope)
        ordered = sorted(runs.values(), key=lambda r: (r["created_at"], r["id"]))

        def walk() -> Iterator[list[DeployEvent]]:
            for start in range(0, len(ordered), _CHUNK):
                events: list[DeployEvent] = []
                for run in ordered[start : start + _CHUNK]:
                    events += self._process(run, scratch, names, previous=False)
                yield [e for e in events if since <= e.happened_at < until]

        yield from backfill_pages(walk(), order=lifecycle_order)

    # -- steps -------------------------------------------------------------------------------------
    def _list(
        self, wf_id: int, start: datetime, end: datetime | None, *, etag: str | None, depth: int = 0
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Runs of one workflow created in ``[start, end]``; ``([], etag)`` when unchanged (304)."""
        created = (
            f">={format_rfc3339(start)}"
            if end is None
            else f"{format_rfc3339(start)}..{format_rfc3339(end)}"
        )
        params: dict[str, Any] = {"per_page": 100, "created": created}
        branches = self.settings.branches
        if len(branches) == 1 and not any(c in branches[0] for c in "*?["):
            params["branch"] = branches[0]
        url = f"/repos/{self.repo.full_name}/actions/workflows/{wf_id}/runs"
        out: list[dict[str, Any]] = []
        first_etag: str | None = None
        for index, page in enumerate(self.client.pages(url, params, etag=etag)):
            if page.not_modified:
                return [], etag
            data = page.data if isinstance(page.data, Mapping) else {}
            items = data.get("workflow_runs")
            if not isinstance(items, list):
                msg = f"GitHub sent a run list without workflow_runs: {page.url}"
                raise MalformedResponse(msg, url=page.url)
            if index == 0:
                first_etag = page.etag
                total = data.get("total_count")
                if isinstance(total, int) and total > _LIST_CAP and depth < _MAX_SPLITS:
                    return self._split(wf_id, start, end, depth), None
            for run in items:
                problem = run_problem(run)
                if problem:
                    self._log.warning(
                        "github.malformed_item", url=page.url, reason=f"run: {problem}"
                    )
                    continue
                if self._branch_selected(run):
                    out.append(run)
        return out, first_etag

    def _split(
        self, wf_id: int, start: datetime, end: datetime | None, depth: int
    ) -> list[dict[str, Any]]:
        """Both halves of a window, ``[start..middle]`` and ``[middle + 1 s..end]``.

        Run times have whole seconds, so ``middle`` is a whole second too: the halves then meet
        without a gap (with a fractional middle, the second after it fell in neither).
        """
        stop = end or self.client.context.clock()
        middle = (start + (stop - start) / 2).replace(microsecond=0)
        self._log.info(
            "github.run_window_split", start=format_rfc3339(start), end=format_rfc3339(stop)
        )
        first, _ = self._list(wf_id, start, middle, etag=None, depth=depth + 1)
        second, _ = self._list(
            wf_id, middle + timedelta(seconds=1), end, etag=None, depth=depth + 1
        )
        return first + second

    def _branch_selected(self, run: Mapping[str, Any]) -> bool:
        if not self.settings.branches:
            return True
        branch = run.get("head_branch")
        return isinstance(branch, str) and any(
            fnmatch.fnmatchcase(branch, p) for p in self.settings.branches
        )

    def _reread(self, run_id: int, entry: OpenRun) -> dict[str, Any] | None:
        """An open run outside the window, re-validated with its ETag (None when unchanged)."""
        url = f"/repos/{self.repo.full_name}/actions/runs/{run_id}"
        try:
            response = self.client.get(url, etag=entry.etag)
        except NotFound as exc:
            self._log.info("github.run_gone", url=exc.url, status=exc.status)
            return None
        except MalformedResponse as exc:
            self._log.warning("github.malformed_item", url=exc.url, reason="run body is not JSON")
            return None
        if response.not_modified:
            return None
        problem = run_problem(response.data)
        if problem:
            self._log.warning("github.malformed_item", url=response.url, reason=f"run: {problem}")
            return None
        entry.etag = response.etag
        return dict(response.data)

    def _attempt(self, run_id: int, attempt: int) -> dict[str, Any] | None:
        url = f"/repos/{self.repo.full_name}/actions/runs/{run_id}/attempts/{attempt}"
        try:
            response = self.client.get(url)
        except (NotFound, MalformedResponse) as exc:
            self._log.info(
                "github.attempt_unavailable", url=getattr(exc, "url", url), reason=str(exc)
            )
            return None
        problem = run_problem(response.data)
        if problem:
            self._log.warning(
                "github.malformed_item", url=response.url, reason=f"attempt: {problem}"
            )
            return None
        return dict(response.data)

    def _jobs(self, run: Mapping[str, Any]) -> JobTimes | None:
        """When the attempt's jobs started and ended; None when that cannot be read.

        One request per attempt once it runs (``GET …/runs/{id}/attempts/{n}/jobs``, one page of
        100 jobs); a known start is kept in memory, so a running attempt costs it once and its
        completion once more. Runs that deployed nothing (skipped, neutral, stale) are not read.
        An end is kept only from a read of the completed attempt: read while it runs, the latest
        end so far is that of a job finished before the last one.
        """
        if run.get("status") not in _JOB_STATES or run.get("conclusion") in (
            "skipped",
            "neutral",
            "stale",
        ):
            return None
        attempt = run["run_attempt"] if isinstance(run.get("run_attempt"), int) else 1
        key = (int(run["id"]), attempt)
        known = self._job_times.get(key)
        done = run.get("status") == "completed"
        if known is not None and (known.completed if done else known.started):
            return known
        url = f"/repos/{self.repo.full_name}/actions/runs/{run['id']}/attempts/{attempt}/jobs"
        try:
            response = self.client.get(url, {"per_page": 100})
        except (NotFound, MalformedResponse) as exc:
            self._log.info("github.jobs_unavailable", url=getattr(exc, "url", url), reason=str(exc))
            return None
        data = response.data if isinstance(response.data, Mapping) else {}
        if not isinstance(data.get("jobs"), list):
            self._log.warning("github.malformed_item", url=response.url, reason="jobs: no list")
            return None
        times = job_times(data["jobs"])
        self._job_times.put(key, times if done else JobTimes(started=times.started))
        return times

    def _process(
        self,
        run: dict[str, Any],
        state: RunsCursor,
        names: Mapping[int, str],
        *,
        previous: bool = True,
    ) -> list[DeployEvent]:
        run_id = int(run["id"])
        attempt: int = run["run_attempt"] if isinstance(run.get("run_attempt"), int) else 1
        done = state.done_attempt(run_id)
        if done is not None and done >= attempt:
            return []
        entry = state.opened(run_id)
        events: list[DeployEvent] = []
        if previous and attempt > 1:
            known = (
                entry.attempt - 1
                if entry
                else (done or max(0, attempt - 1 - _MAX_PREVIOUS_ATTEMPTS))
            )
            for number in range(max(1, known + 1), attempt):
                old = self._attempt(run_id, number)
                if old is not None:
                    same = entry if entry and entry.attempt == number else None
                    events += self._map(old, names, same).events
        current = entry if entry and entry.attempt == attempt else None
        outcome = self._map(run, names, current)
        events += outcome.events
        if outcome.terminal:
            state.close(run_id, attempt, str(run["created_at"]))
        else:
            # A re-run's age counts from its attempt, not from its run's creation days before.
            started = run.get("run_started_at")
            since = started if attempt > 1 and isinstance(started, str) else run["created_at"]
            state.keep_open(
                run_id,
                OpenRun(
                    attempt=attempt,
                    created_at=str(since),
                    etag=current.etag if current else None,
                    waiting_since=outcome.waiting_since,
                    resumed_at=outcome.resumed_at,
                ),
            )
        return events

    def _map(
        self, run: Mapping[str, Any], names: Mapping[int, str], entry: OpenRun | None
    ) -> RunOutcome:
        rejected = False
        if run.get("status") == "completed" and run.get("conclusion") in ("failure", "cancelled"):
            # A rejected review ends a run failed, whether or not a poll saw it waiting (a
            # backfill never does; a review can come between two polls). Only the review history
            # tells, one request per run, kept once the run is complete: spent unless the run's
            # workflow is known to have nothing a reviewer could hold.
            waited = entry is not None and entry.waiting_since is not None
            repo = self.repo.full_name
            if waited or self.lookups.reviewable(repo, run) is not False:
                rejected = bool(self.lookups.rejected_environments(repo, run))
        workflow_id = run.get("workflow_id")
        outcome = run_events(
            run,
            repo=self.repo,
            source=self.source,
            settings=self.settings,
            workflow=names.get(workflow_id) if isinstance(workflow_id, int) else None,
            rejected=rejected,
            waiting_since=entry.waiting_since if entry else None,
            resumed_at=entry.resumed_at if entry else None,
            jobs=self._jobs(run),
        )
        for problem in outcome.problems:
            self._log.warning(
                "github.malformed_item",
                url=self.client.display(f"/repos/{self.repo.full_name}/actions/runs/{run['id']}"),
                reason=problem,
            )
        record_raw(
            f"workflow run {run.get('id')} attempt {run.get('run_attempt', 1)}", run, outcome.events
        )
        return outcome

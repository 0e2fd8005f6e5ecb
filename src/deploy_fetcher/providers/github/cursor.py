"""The GitHub adapter's cursors: a high-water mark, an open set, and the validators of free re-reads.

Both modes keep the same three parts (see ARCHITECTURE.md):

* ``mark`` — the newest ``created_at`` seen; each poll lists back to ``mark − overlap`` and no further;
* ``open`` — items seen in a non-terminal state, re-checked every cycle (with ``If-None-Match``, so an
  unchanged one costs nothing) until they end, bounded in count and age;
* ``done`` — items inside the overlap window already seen to their end, so a re-read window never
  fetches them again;

plus the ETags of the list pages, so that an idle repository costs only ``304`` answers — also after
a restart, since the cursor is stored. A cursor written for another scope (mode, workflows, branches)
is ignored: the old high-water mark says nothing about the new selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from deploy_fetcher.model import format_rfc3339, parse_timestamp
from deploy_fetcher.providers._base import Cursor

__all__ = [
    "CURSOR_VERSION",
    "DeploymentsCursor",
    "OpenDeployment",
    "OpenRun",
    "RunsCursor",
]

CURSOR_VERSION: Final = 1


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        msg = f"not a timestamp: {value!r}"
        raise TypeError(msg)
    return parse_timestamp(value)


def _checked(value: Any) -> str:
    _time(value)
    return str(value)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class OpenDeployment:
    """A deployment not yet seen to its end."""

    created_at: str
    #: The deployment's own fields the events need (environment, sha, ref, creator …).
    deployment: dict[str, Any] = field(default_factory=dict)
    #: ETag of its statuses list (None until it was read over REST).
    etag: str | None = None
    run_id: int | None = None
    #: Its last status is a failure, held back until the run says whether it was cancelled.
    awaiting_run: bool = False
    waited: bool = False

    def to_json(self) -> dict[str, Any]:
        """Compact JSON (short keys: a cursor is stored after every page)."""
        out: dict[str, Any] = {"c": self.created_at, "d": self.deployment}
        if self.etag:
            out["e"] = self.etag
        if self.run_id is not None:
            out["r"] = self.run_id
        if self.awaiting_run:
            out["a"] = 1
        if self.waited:
            out["w"] = 1
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenDeployment:
        """Inverse of :meth:`to_json`."""
        _time(data["c"])
        run = data.get("r")
        deployment = data.get("d")
        if not isinstance(deployment, dict):
            msg = "deployment snapshot missing"
            raise TypeError(msg)
        return cls(
            created_at=data["c"],
            deployment=deployment,
            etag=_opt_str(data.get("e")),
            run_id=run if isinstance(run, int) else None,
            awaiting_run=bool(data.get("a")),
            waited=bool(data.get("w")),
        )


def _prune_open(
    items: dict[int, Any], *, now: datetime, max_open: int, max_age: timedelta
) -> list[int]:
    """Drop open items older than ``max_age``, then the oldest beyond ``max_open``."""
    dropped = [k for k, v in items.items() if now - parse_timestamp(v.created_at) > max_age]
    for key in dropped:
        del items[key]
    if len(items) > max_open:
        by_age = sorted(items, key=lambda k: (parse_timestamp(items[k].created_at), k))
        extra = by_age[: len(items) - max_open]
        for key in extra:
            del items[key]
        dropped += extra
    return dropped


@dataclass
class DeploymentsCursor:
    """Cursor of one repository in ``deployments`` mode."""

    scope: str
    mark: datetime
    etag: str | None = None
    open: dict[int, OpenDeployment] = field(default_factory=dict)
    #: Deployment id → created_at, for finished deployments inside the overlap window.
    done: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> Cursor:
        """The JSON object the store keeps."""
        return {
            "v": CURSOR_VERSION,
            "mode": "deployments",
            "scope": self.scope,
            "mark": format_rfc3339(self.mark),
            "etag": self.etag,
            "open": {str(k): v.to_json() for k, v in sorted(self.open.items())},
            "done": {str(k): v for k, v in sorted(self.done.items())},
        }

    @classmethod
    def from_json(cls, data: Cursor | None, *, scope: str, start: datetime) -> DeploymentsCursor:
        """Read a stored cursor; a missing, foreign or other-scope cursor starts at ``start``.

        Raises ValueError for a cursor of this scope that cannot be read (the caller logs it and
        starts over).
        """
        fresh = cls(scope=scope, mark=start)
        if not data or data.get("mode") != "deployments" or data.get("scope") != scope:
            return fresh
        if data.get("v") != CURSOR_VERSION:
            return fresh
        try:
            return cls(
                scope=scope,
                mark=_time(data["mark"]),
                etag=_opt_str(data.get("etag")),
                open={
                    int(k): OpenDeployment.from_json(v)
                    for k, v in dict(data.get("open") or {}).items()
                },
                done={int(k): _checked(v) for k, v in dict(data.get("done") or {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = f"unreadable GitHub deployments cursor: {exc}"
            raise ValueError(msg) from None

    def prune(
        self, *, now: datetime, overlap: timedelta, max_open: int, max_age: timedelta
    ) -> list[int]:
        """Forget finished items behind the window and open items too old or too many."""
        floor = self.mark - overlap
        self.done = {k: v for k, v in self.done.items() if parse_timestamp(v) >= floor}
        return _prune_open(self.open, now=now, max_open=max_open, max_age=max_age)


@dataclass
class OpenRun:
    """A workflow run attempt not yet seen to its end."""

    attempt: int
    created_at: str
    etag: str | None = None
    waiting_since: str | None = None
    resumed_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Compact JSON."""
        out: dict[str, Any] = {"n": self.attempt, "c": self.created_at}
        if self.etag:
            out["e"] = self.etag
        if self.waiting_since:
            out["w"] = self.waiting_since
        if self.resumed_at:
            out["p"] = self.resumed_at
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenRun:
        """Inverse of :meth:`to_json`."""
        _time(data["c"])
        attempt = data.get("n")
        if not isinstance(attempt, int):
            msg = "attempt missing"
            raise TypeError(msg)
        return cls(
            attempt=attempt,
            created_at=data["c"],
            etag=_opt_str(data.get("e")),
            waiting_since=_opt_str(data.get("w")),
            resumed_at=_opt_str(data.get("p")),
        )


@dataclass
class RunsCursor:
    """Cursor of one repository in ``workflow_runs`` mode."""

    scope: str
    mark: datetime
    #: ETag per list URL (workflow and window), so an idle workflow answers 304.
    etags: dict[str, str] = field(default_factory=dict)
    open: dict[int, OpenRun] = field(default_factory=dict)
    #: Run id → [last finished attempt, created_at], inside the listing window.
    done: dict[int, tuple[int, str]] = field(default_factory=dict)

    def to_json(self) -> Cursor:
        """The JSON object the store keeps."""
        return {
            "v": CURSOR_VERSION,
            "mode": "workflow_runs",
            "scope": self.scope,
            "mark": format_rfc3339(self.mark),
            "etags": dict(sorted(self.etags.items())),
            "open": {str(k): v.to_json() for k, v in sorted(self.open.items())},
            "done": {str(k): [a, c] for k, (a, c) in sorted(self.done.items())},
        }

    @classmethod
    def from_json(cls, data: Cursor | None, *, scope: str, start: datetime) -> RunsCursor:
        """Read a stored cursor (see :meth:`DeploymentsCursor.from_json`)."""
        fresh = cls(scope=scope, mark=start)
        if not data or data.get("mode") != "workflow_runs" or data.get("scope") != scope:
            return fresh
        if data.get("v") != CURSOR_VERSION:
            return fresh
        try:
            done: dict[int, tuple[int, str]] = {}
            for key, value in dict(data.get("done") or {}).items():
                attempt, created = value
                _time(created)
                done[int(key)] = (int(attempt), str(created))
            return cls(
                scope=scope,
                mark=_time(data["mark"]),
                etags={str(k): str(v) for k, v in dict(data.get("etags") or {}).items()},
                open={
                    int(k): OpenRun.from_json(v) for k, v in dict(data.get("open") or {}).items()
                },
                done=done,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = f"unreadable GitHub workflow-runs cursor: {exc}"
            raise ValueError(msg) from None

    def prune(
        self, *, now: datetime, window: timedelta, max_open: int, max_age: timedelta
    ) -> list[int]:
        """Forget finished runs behind the listing window and open runs too old or too many."""
        floor = self.mark - window
        self.done = {k: v for k, v in self.done.items() if parse_timestamp(v[1]) >= floor}
        return _prune_open(self.open, now=now, max_open=max_open, max_age=max_age)

"""Which statuses a dashboard takes, learned from its answers when ``status_set: auto``.

A dashboard built to the original contract (seed 001) answers a ``pending`` with 422 and an
``errors[]`` entry naming ``status``; a newer one stores it. In ``auto`` mode the sink sends the eight
canonical statuses until the first such 422, then folds them into the original three for good: the
switch is logged once and kept in the state store, so a restart does not pay for a refused POST again.
The store entry names the dashboard's URL, so pointing the sink at another dashboard learns anew.
"""

from __future__ import annotations

import json
from typing import Final

import structlog

from deploy_fetcher.errors import StoreError
from deploy_fetcher.model import Status, format_rfc3339, utc_now
from deploy_fetcher.sinks._base import ValueStore
from deploy_fetcher.sinks.dashboard.mapping import StatusSet

__all__ = ["LearnedStatusSet", "status_set_key"]

_log = structlog.get_logger(__name__)
_THREE: Final = "three"


def status_set_key(sink: str) -> str:
    """The state store key under which a dashboard sink remembers the status set it learned."""
    return f"sink/{sink}/status-set"


class LearnedStatusSet:
    """The status set of one ``auto`` sink: ``eight`` until :meth:`fold` is called, then ``three``."""

    def __init__(self, *, sink: str, url: str, values: ValueStore | None) -> None:
        self._key = status_set_key(sink)
        self._url = url
        self._values = values
        self._log = _log.bind(sink=sink)
        self.current: StatusSet = self._load()

    def _load(self) -> StatusSet:
        if self._values is None:
            return "eight"
        try:
            stored = self._values.get_value(self._key)
        except StoreError as exc:
            self._log.warning("dashboard.status_set_unreadable", error=str(exc))
            return "eight"
        try:
            learned = json.loads(stored) if stored else None
        except ValueError:
            learned = None
        if (
            isinstance(learned, dict)
            and learned.get("status_set") == _THREE
            and learned.get("url") == self._url
        ):
            self._log.info("dashboard.status_set_remembered", status_set=_THREE)
            return _THREE
        return "eight"

    def fold(self, refused: Status, url: str) -> None:
        """The dashboard refused ``refused``: send the three statuses from now on, and remember it."""
        self.current = _THREE
        self._log.warning(
            "dashboard.status_set_switched",
            refused=refused.value,
            url=url,
            status_set=_THREE,
            detail=(
                "the dashboard takes only in-progress, success and failure: pending, queued and "
                "waiting are sent as in-progress, cancelled and rejected as failure"
            ),
        )
        if self._values is None:
            return
        record = {"status_set": _THREE, "url": self._url, "learned_at": format_rfc3339(utc_now())}
        try:
            self._values.set_value(self._key, json.dumps(record, sort_keys=True))
        except StoreError as exc:
            self._log.warning("dashboard.status_set_not_saved", error=str(exc))

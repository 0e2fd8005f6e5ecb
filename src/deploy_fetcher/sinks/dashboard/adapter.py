"""Delivering events to the Deployment Dashboard and checking its URL and key."""

from __future__ import annotations

from typing import Any, ClassVar, Final

from deploy_fetcher.config import SinkConfig, settings_of
from deploy_fetcher.model import DeployEvent
from deploy_fetcher.sinks._base import (
    CheckResult,
    Delivered,
    Delivery,
    Rejected,
    Sink,
    SinkContext,
    Unauthorized,
)
from deploy_fetcher.sinks._document import dumps
from deploy_fetcher.sinks.dashboard import mapping
from deploy_fetcher.sinks.dashboard.backend import DashboardStore
from deploy_fetcher.sinks.dashboard.config import DashboardConfig
from deploy_fetcher.sinks.dashboard.slot import HttpStateSlot
from deploy_fetcher.sinks.dashboard.statuses import LearnedStatusSet
from deploy_fetcher.sinks.http import Answer, SinkHttpClient, display_url

__all__ = ["DashboardSink"]

INGEST_PATH: Final = "/api/deployments"
#: What ``check()`` posts: an event without any required field, which the contract answers with 422
#: and never stores.
EMPTY_EVENT: Final = b"{}"
_UNPROCESSABLE: Final = 422


class DashboardSink(Sink):
    """``POST {url}/api/deployments``; 201 is delivered, 422 carries the problem+json errors."""

    name: ClassVar[str] = "deployment-dashboard"
    config_model: ClassVar[type[SinkConfig]] = DashboardConfig
    concurrent: ClassVar[bool] = True  # one stateless request per event: lanes share the sink

    def __init__(self, config: SinkConfig, context: SinkContext) -> None:
        super().__init__(config, context)
        self.settings = settings_of(config, DashboardConfig)
        self.http = SinkHttpClient(self.settings, context)
        self._where = display_url(self.settings.url)
        self._learned: LearnedStatusSet | None = None
        if self.settings.status_set == "auto":
            self._learned = LearnedStatusSet(
                sink=self.settings.name, url=self._where, values=context.values
            )

    @property
    def status_set(self) -> mapping.StatusSet:
        """The statuses sent now: configured, or learned from the dashboard's answers."""
        if self._learned is not None:
            return self._learned.current
        return "three" if self.settings.status_set == "three" else "eight"

    def send(self, event: DeployEvent) -> Delivery:
        """Post one event; the dashboard appends a row per POST, so the worker must not double-send.

        In ``auto`` mode a 422 naming ``status`` for a status the original contract lacks switches
        the sink to that contract's three statuses, and the same event is posted again at once: it
        is never dead-lettered for that reason.
        """
        status_set = self.status_set
        answer = self._post(event, status_set)
        if self._learned is not None and self._refused_status(event, status_set, answer):
            self._learned.fold(event.status, self._where)
            answer = self._post(event, self._learned.current)
        return answer.outcome

    def wire(self, event: DeployEvent) -> dict[str, Any]:
        """The ingest body with the status set in force now (configured or learned)."""
        return self._body(event, self.status_set)

    def _body(self, event: DeployEvent, status_set: mapping.StatusSet) -> dict[str, Any]:
        return mapping.body(
            event, run_number_type=self.settings.run_number_type, status_set=status_set
        )

    def _post(self, event: DeployEvent, status_set: mapping.StatusSet) -> Answer:
        return self.http.exchange(
            "POST",
            self.settings.url + INGEST_PATH,
            headers=mapping.headers(event, self.settings.api_key.get_secret_value()),
            content=dumps(self._body(event, status_set)),
        )

    @staticmethod
    def _refused_status(event: DeployEvent, status_set: mapping.StatusSet, answer: Answer) -> bool:
        """Whether the answer is the original contract refusing a status it does not know."""
        folded = mapping.wire_status(event.status, "three")
        return (
            status_set == "eight"
            and folded != event.status
            and isinstance(answer.outcome, Rejected)
            and answer.outcome.status_code == _UNPROCESSABLE
            and mapping.names_field(answer.body, "status")
        )

    def check(self) -> CheckResult:
        """Prove URL and key where the contract checks the key: on ``POST /api/deployments``.

        An empty event is posted twice, with the key and without it. The contract answers 422 to
        it (it lacks every required field) and stores nothing; 401 without the key shows that the
        dashboard checks keys before it validates, so the 422 with the key proves the key.
        """
        with_key = self._post_empty(with_key=True)
        failed = self._check_failure(with_key)
        if failed is not None:
            return failed
        without_key = self._post_empty(with_key=False)
        if isinstance(without_key, Unauthorized):
            return CheckResult(
                ok=True, message=f"the dashboard at {self._where} accepted the API key"
            )
        return CheckResult(
            ok=True,
            verified=False,
            message=(
                f"the dashboard at {self._where} answers, but refused an empty event alike with and "
                "without the API key: the key cannot be verified without sending an event"
            ),
        )

    def _post_empty(self, *, with_key: bool) -> Delivery:
        headers = {"Content-Type": "application/json"}
        if with_key:
            headers["X-Api-Key"] = self.settings.api_key.get_secret_value()
        return self.http.send(
            "POST", self.settings.url + INGEST_PATH, headers=headers, content=EMPTY_EVENT
        )

    def _check_failure(self, outcome: Delivery) -> CheckResult | None:
        """What is wrong when the keyed empty event got anything but the contract's 422."""
        code = outcome.status_code
        if isinstance(outcome, Rejected) and code == _UNPROCESSABLE:
            return None
        if isinstance(outcome, Unauthorized):
            message = f"the dashboard at {self._where} rejected the API key (HTTP {code})"
        elif isinstance(outcome, Delivered):
            message = (
                f"{self._where}{INGEST_PATH} stored an empty event (HTTP {code}): "
                "it does not follow the Deployment Dashboard's contract"
            )
        elif code in {404, 405}:
            message = (
                f"no Deployment Dashboard ingest endpoint at {self._where}{INGEST_PATH} "
                f"(HTTP {code}): is url the dashboard's base URL?"
            )
        elif code is None:
            message = f"cannot reach the dashboard at {self._where}: {outcome.reason}"
        else:
            message = f"unexpected answer from the dashboard at {self._where}: {outcome.reason}"
        return CheckResult(ok=False, message=message)

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.http.close()

    @classmethod
    def open_state_store(cls, config: SinkConfig, slot: str) -> DashboardStore:
        """The ``dashboard`` state backend: cursors in this dashboard's state slot ``slot``."""
        return DashboardStore(HttpStateSlot(config, slot))

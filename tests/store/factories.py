"""Test data for the state store: a clock the test moves, and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from deploy_fetcher.model import DeployEvent, Status

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """A clock that only moves when told to."""

    now: datetime = field(default=T0)

    def __call__(self) -> datetime:
        """The current fake time."""
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move time forward and return the new now."""
        self.now += timedelta(seconds=seconds)
        return self.now


def make_event(
    deployment_id: str = "run-1",
    *,
    status: Status = Status.SUCCESS,
    minute: int = 0,
    service: str = "api",
    environment: str = "prod",
    sha: str | None = "abc123",
    source: str = "gh",
) -> DeployEvent:
    """An event ``minute`` minutes after T0."""
    return DeployEvent(
        deployment_id=deployment_id,
        service=service,
        environment=environment,
        status=status,
        happened_at=T0 + timedelta(minutes=minute),
        sha=sha,
        provider="github",
        source=source,
        metadata={"repo": "octo/api"},
    )

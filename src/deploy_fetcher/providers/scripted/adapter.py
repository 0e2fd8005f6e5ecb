"""Replays a JSON-lines script (or generated events) page by page with an offset cursor.

Script lines are :class:`~deploy_fetcher.model.DeployEvent` objects as JSON; a line that is not one is
logged and skipped. The file may grow between polls (tests append to it); the cursor is the number of
lines consumed. (The test suite's own ``scripted-faults`` plugin adds lines that make a poll fail.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Literal

import structlog
from pydantic import Field, ValidationError

from deploy_fetcher.config import Duration, Section, SourceConfig, settings_of
from deploy_fetcher.errors import TargetNotFound
from deploy_fetcher.model import DeployEvent, Status
from deploy_fetcher.providers import CheckItem, Cursor, Page, Provider, Reread

__all__ = ["Generate", "ScriptedProvider", "ScriptedSource"]

_log = structlog.get_logger(__name__)


class Generate(Section):
    """Synthetic events: ``count`` events over ``services`` × ``environments``, ``step`` apart."""

    count: int = Field(ge=0)
    services: int = Field(default=5, ge=1)
    environments: list[str] = ["dev", "staging", "prod"]
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    step: Duration = timedelta(seconds=1)


class ScriptedSource(SourceConfig):
    """Config of a scripted source: exactly one of ``script`` or ``generate``."""

    provider: Literal["scripted"] = "scripted"
    script: Path | None = None
    generate: Generate | None = None
    page_size: int = Field(default=100, ge=1, le=10_000)


_STATUSES = (Status.QUEUED, Status.IN_PROGRESS, Status.SUCCESS)


def generated_event(spec: Generate, index: int, source: str) -> DeployEvent:
    """The ``index``-th synthetic event (pure, so any page can be rebuilt from its offset)."""
    deployment = index // len(_STATUSES)
    status = _STATUSES[index % len(_STATUSES)]
    service = f"service-{deployment % spec.services}"
    environment = spec.environments[(deployment // spec.services) % len(spec.environments)]
    return DeployEvent(
        deployment_id=f"gen-{deployment}",
        service=service,
        environment=environment,
        status=status,
        happened_at=spec.start + spec.step * index,
        version=f"v{deployment}",
        run_number=deployment,
        sha=f"{deployment:040x}",
        ref="refs/heads/main",
        provider="scripted",
        source=source,
        metadata={"repo": f"example/{service}", "repo_name": service},
    )


class ScriptedProvider(Provider):
    """Replays a script file or generated events."""

    name: ClassVar[str] = "scripted"
    config_model: ClassVar[type[SourceConfig]] = ScriptedSource

    def __init__(self, config: SourceConfig, context: Any) -> None:
        super().__init__(config, context)
        config = settings_of(config, ScriptedSource)
        if (config.script is None) == (config.generate is None):
            msg = "a scripted source needs exactly one of `script` or `generate`"
            raise ValueError(msg)
        self.source = config

    def _items(self, offset: int) -> Iterator[tuple[int, DeployEvent | None]]:
        """(line number, event or None for a skipped line) from ``offset`` on, lazily."""
        if self.source.generate is not None:
            for index in range(offset, self.source.generate.count):
                yield index, generated_event(self.source.generate, index, self.config.name)
            return
        assert self.source.script is not None  # noqa: S101
        try:
            handle = self.source.script.open(encoding="utf-8")
        except FileNotFoundError:
            raise TargetNotFound(f"script {self.source.script} does not exist") from None
        with handle:
            for index, line in enumerate(islice(handle, offset, None), start=offset):
                if not line.endswith("\n"):
                    return  # a line still being written: read it next time
                yield index, self._parse(index, line)

    def _parse(self, index: int, line: str) -> DeployEvent | None:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            _log.warning("scripted.malformed_line", line=index + 1, error=str(exc))
            return None
        try:
            data = {"provider": self.name, "source": self.config.name, **data}
            return DeployEvent.model_validate(data)
        except ValidationError as exc:
            _log.warning(
                "scripted.invalid_event", line=index + 1, error=str(exc.errors()[0]["msg"])
            )
            return None

    def poll(self, target: str, cursor: Cursor | None) -> Iterator[Page]:
        """Everything after the cursor's offset, a page at a time."""
        offset = int((cursor or {}).get("offset", 0))
        events: list[DeployEvent] = []
        position = offset
        for index, event in self._items(offset):
            position = index + 1
            if event is not None:
                events.append(event)
            if position - offset >= self.source.page_size:
                yield Page(events, {"offset": position})
                events, offset = [], position
        if position != offset or events:
            yield Page(events, {"offset": position})

    def backfill(self, target: str, since: datetime, until: datetime) -> Iterator[Page]:
        """Events with happened_at in the window, in script order (which is oldest first)."""
        page: list[DeployEvent] = []
        for _, event in self._items(0):
            if event is not None and since <= event.happened_at < until:
                page.append(event)
                if len(page) >= self.source.page_size:
                    yield Page(page)
                    page = []
        if page:
            yield Page(page)

    def check(self, target: str) -> list[CheckItem]:
        """The script exists and can be read (a generated source always can)."""
        if self.source.script is None:
            return [CheckItem(f"target {target}", ok=True, detail="generated events")]
        if not self.source.script.is_file():
            return [
                CheckItem(
                    f"target {target}",
                    ok=False,
                    detail=f"script {self.source.script} does not exist",
                )
            ]
        return [
            CheckItem(
                f"target {target}", ok=True, detail=f"script {self.source.script} is readable"
            )
        ]

    def reread(
        self, target: str, deployment_id: str, *, since: datetime, until: datetime
    ) -> Reread:
        """The script lines of one deployment (the raw objects) and the events they map to."""
        events: list[DeployEvent] = []
        objects: list[tuple[str, Any]] = []
        for index, event in self._items(0):
            if event is not None and event.deployment_id == deployment_id:
                events.append(event)
                objects.append(
                    (f"line {index + 1}", event.model_dump(mode="json", exclude_defaults=True))
                )
        return Reread(events, objects)

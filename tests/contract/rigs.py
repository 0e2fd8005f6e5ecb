"""One rig per registered provider and sink: what the contract suite needs to exercise each.

A rig knows how to stand its plugin up against a local world (an emulator, a script, a file), how to
make that world move on, and how to break it in the ways the error taxonomy names. The suite itself
knows no plugin by name; a plugin registered without a rig here fails
``test_every_registered_plugin_has_a_rig``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deploy_fetcher.emulators._server import EmulatorServer
from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator
from deploy_fetcher.emulators.azure_devops import demo_source as azure_source
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.emulators.receiver import ReceiverEmulator
from deploy_fetcher.model import DeployEvent

SECRET = "contract-secret-5151"
#: The sinks that deliver over HTTP (the others write files or stdout).
HTTP_SINKS = ["cloudlink", "ctoai", "deployment-dashboard", "webhook"]


def sink_event(n: int = 0) -> DeployEvent:
    """A complete event for a sink test; ``n`` makes its id and time distinct."""
    return DeployEvent(
        deployment_id=f"contract-{n}",
        service="api",
        environment="prod",
        status="success",
        happened_at=f"2026-03-01T10:00:{n:02d}Z",
        version="v1",
        sha="0123456789abcdef0123456789abcdef01234567",
        provider="github",
        source="src",
        metadata={"repo": "octo/api", "repo_name": "api", "branch": "main"},
    )


@dataclass
class ProviderRig:
    """A provider's world: the ``sources[]`` entry reading it, and ways to change or break it."""

    source: dict[str, Any]
    #: The CI emulator (None for a world that is a file).
    emulator: EmulatorServer | None
    #: Makes new deployments happen (and old ones move on).
    advance: Callable[[], None]
    #: Keys that make the source's credentials wrong.
    bad_credentials: dict[str, Any]
    #: Keys that point the source at a target that does not exist.
    missing_target: dict[str, Any]
    #: The paths of a poll's requests (where failures are injected).
    polls: str = ".*"


def _script_line(n: int) -> str:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return json.dumps(
        {
            "deployment_id": f"contract-{n // 2}",
            "service": "api",
            "environment": "prod",
            "status": ("in-progress", "success")[n % 2],
            "happened_at": (start + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "metadata": {"repo": "example/api", "repo_name": "api"},
        }
    )


@contextmanager
def scripted(tmp_path: Path, provider: str = "scripted") -> Iterator[ProviderRig]:
    """A JSON-lines script; advancing appends lines."""
    script = tmp_path / "events.jsonl"
    written = [0]

    def add(count: int) -> None:
        with script.open("a", encoding="utf-8") as handle:
            handle.writelines(_script_line(n) + "\n" for n in range(written[0], written[0] + count))
        written[0] += count

    add(12)
    auth = tmp_path / "auth.jsonl"
    auth.write_text('{"raise": "auth"}\n', encoding="utf-8")
    yield ProviderRig(
        source={"name": "src", "provider": provider, "script": str(script), "page_size": 5},
        emulator=None,
        advance=lambda: add(6),
        # A script has no credential: the test plugin's fault line stands in for a rejected one.
        bad_credentials={"provider": "scripted-faults", "script": str(auth)},
        missing_target={"script": str(tmp_path / "missing.jsonl")},
    )


@contextmanager
def _served(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@contextmanager
def github(tmp_path: Path) -> Iterator[ProviderRig]:
    """The GitHub emulator's demo organisation, one repository."""
    with _served(GitHubEmulator(scenario="demo", seed=5)) as emulator:
        yield ProviderRig(
            source={
                "name": "src",
                "provider": "github",
                "token": "emulator-token",
                "base_url": emulator.url(),
                "repos": ["octo/api"],
            },
            emulator=emulator,
            advance=lambda: emulator.advance(3600),
            bad_credentials={"token": "not-the-token"},
            missing_target={"repos": ["octo/no-such-repo"]},
            polls=r"/repos/octo/api/",
        )


@contextmanager
def gitlab(tmp_path: Path) -> Iterator[ProviderRig]:
    """The GitLab emulator's demo group, one project."""
    with _served(GitLabEmulator(scenario="demo", seed=5)) as emulator:
        yield ProviderRig(
            source={
                "name": "src",
                "provider": "gitlab",
                "token": "emulator-token",
                "url": emulator.url(),
                "projects": ["acme/api"],
            },
            emulator=emulator,
            advance=lambda: emulator.advance(3600),
            bad_credentials={"token": "not-the-token"},
            missing_target={"projects": ["acme/no-such-project"]},
            polls=r"/projects/acme%2Fapi/",
        )


@contextmanager
def azure_devops(tmp_path: Path) -> Iterator[ProviderRig]:
    """The Azure DevOps emulator's demo organisation, environments mode."""
    with _served(AzureDevOpsEmulator(scenario="demo", seed=5)) as emulator:
        source = {**azure_source(emulator.url()), "name": "src"}
        yield ProviderRig(
            source=source,
            emulator=emulator,
            advance=lambda: emulator.advance(7200),
            bad_credentials={"pat": "not-the-token"},
            missing_target={"projects": ["no-such-project"]},
            polls=r"/_apis/",
        )


@contextmanager
def json_list(tmp_path: Path) -> Iterator[ProviderRig]:
    """The example provider of the contributor's guide, against its own server."""
    from json_list_server import TOKEN, JsonListServer  # the suite's plugin path

    server = JsonListServer()
    for hours in range(6, 0, -1):
        server.clock -= timedelta(hours=1)
        server.deploy("api", "prod", version=f"1.{hours}")
    server.clock += timedelta(hours=6)
    with _served(server):
        yield ProviderRig(
            source={
                "name": "src",
                "provider": "json-list",
                "url": server.url("/api/deployments"),
                "token": TOKEN,
            },
            emulator=server,
            advance=lambda: server.advance(60),
            bad_credentials={"token": "not-the-token"},
            missing_target={"url": server.url("/api/nothing")},
            polls=r"/api/deployments",
        )


PROVIDER_RIGS: dict[str, Callable[[Path], Any]] = {
    "azure-devops": azure_devops,
    "github": github,
    "gitlab": gitlab,
    "json-list": json_list,
    "scripted": scripted,
    "scripted-faults": lambda tmp_path: scripted(tmp_path, "scripted-faults"),
}


@dataclass
class SinkRig:
    """A sink's destination: the keys pointing at it, and the server to break (None: not HTTP)."""

    keys: dict[str, Any]
    server: EmulatorServer | None
    #: Keys that make the destination unusable for a non-HTTP sink.
    unusable: dict[str, Any] = field(default_factory=dict)
    #: What arrived, for a sink whose destination can be read back.
    received: Callable[[], int] = lambda: 0


@contextmanager
def _dashboard(_tmp_path: Path) -> Iterator[SinkRig]:
    with _served(DashboardEmulator(api_key=SECRET)) as server:
        assert isinstance(server, DashboardEmulator)
        yield SinkRig(
            {"url": server.url(), "api_key": SECRET}, server, received=lambda: len(server.rows())
        )


def _receiver(keys: Callable[[str], dict[str, Any]]) -> Callable[[Path], Any]:
    @contextmanager
    def rig(_tmp_path: Path) -> Iterator[SinkRig]:
        with _served(ReceiverEmulator(status=202, bearer=SECRET)) as server:
            assert isinstance(server, ReceiverEmulator)
            yield SinkRig(
                keys(server.url()),
                server,
                received=lambda: len(server.requests_to(".*", method="POST")),
            )

    return rig


@contextmanager
def _jsonl(tmp_path: Path) -> Iterator[SinkRig]:
    path = tmp_path / "out" / "events.jsonl"
    path.parent.mkdir()
    blocked = tmp_path / "a-file"
    blocked.write_text("", encoding="utf-8")

    def lines() -> int:
        return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0

    yield SinkRig(
        {"path": str(path)}, None, unusable={"path": str(blocked / "events.jsonl")}, received=lines
    )


@contextmanager
def _stdout(_tmp_path: Path) -> Iterator[SinkRig]:
    yield SinkRig({}, None)


SINK_RIGS: dict[str, Callable[[Path], Any]] = {
    "cloudlink": _receiver(lambda url: {"url": url, "api_key": SECRET}),
    "ctoai": _receiver(lambda url: {"url": url, "api_key": SECRET, "team_id": "team"}),
    "deployment-dashboard": _dashboard,
    "jsonl": _jsonl,
    "stdout": _stdout,
    "webhook": _receiver(
        lambda url: {"url": url + "/hook", "headers": {"Authorization": f"Bearer {SECRET}"}}
    ),
}

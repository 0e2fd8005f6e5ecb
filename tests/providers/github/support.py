"""Helpers shared by the GitHub tests: a context on the emulator's clock, and a store-like harness."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.lifecycle import rank
from deploy_fetcher.model import DeployEvent, Status, format_rfc3339
from deploy_fetcher.providers import Cursor, Provider, ProviderContext


class EmulatorContext(ProviderContext):
    """A provider context whose clock is the emulator's and whose sleeps move that clock."""

    def __init__(self, emulator: GitHubEmulator, **kwargs: Any) -> None:
        super().__init__(clock=emulator.now, **kwargs)
        self.emulator = emulator
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> bool:
        self.slept.append(seconds)
        if seconds > 0:
            self.emulator.advance(seconds)
        return not self.stop.is_set()


Key = tuple[str, str, str]


@dataclass
class Harness:
    """Drives a provider like the engine does: stored cursors, events deduplicated by the store key."""

    provider: Provider
    cursors: dict[str, Cursor] = field(default_factory=dict)
    seen: dict[Key, DeployEvent] = field(default_factory=dict)
    emitted: list[DeployEvent] = field(default_factory=list)

    def cycle(self, targets: Iterable[str] | None = None) -> list[DeployEvent]:
        """Poll every target once, storing each page as it comes; return this cycle's events."""
        events: list[DeployEvent] = []
        for target in targets if targets is not None else self.provider.targets():
            for page in self.provider.poll(target, self.cursors.get(target)):
                events += page.events
                self.emitted += page.events
                for event in page.events:
                    self.seen.setdefault(event.dedup_key, event)
                if page.cursor is not None:
                    self.cursors[target] = page.cursor
        return events

    def dedup_keys(self) -> set[Key]:
        """The deduplicated (deployment_id, status, happened_at) set."""
        return set(self.seen)

    def by_deployment(self) -> dict[str, list[tuple[str, str]]]:
        """Each deployment's (status, time) list in time order (lifecycle order at equal times)."""
        out: dict[str, list[tuple[str, str]]] = {}
        for dep, status, at in sorted(self.seen, key=lambda k: (k[2], _RANK[k[1]], k[0])):
            out.setdefault(dep, []).append((status, at))
        return out


_RANK = {
    s: i for i, s in enumerate(("pending", "queued", "waiting", "in-progress"))
} | dict.fromkeys(("success", "failure", "cancelled", "rejected"), 9)

_MAP = {
    "pending": Status.PENDING,
    "queued": Status.QUEUED,
    "in_progress": Status.IN_PROGRESS,
    "waiting": Status.WAITING,
    "success": Status.SUCCESS,
    "failure": Status.FAILURE,
    "error": Status.FAILURE,
}


def expected_deployment_keys(emulator: GitHubEmulator, repo: str, since: datetime) -> set[Key]:
    """What the adapter must emit for a repository, derived from the emulator's own state."""
    state = emulator.repo(repo)
    out: set[Key] = set()
    for dep in state.deployments.values():
        if dep.created_at < since:
            continue
        run = state.runs.get(dep.run_id) if dep.run_id is not None else None
        rejected = run is not None and any(
            a["state"] == "rejected"
            and any(e["name"] == dep.environment for e in a["environments"])
            for a in run.approvals
        )
        ordered = sorted(dep.statuses, key=lambda s: (s.created_at, s.id))
        reached = -1
        for index, status in enumerate(ordered):
            mapped = _MAP.get(status.state)
            if mapped is None:
                continue
            if index == len(ordered) - 1 and mapped is Status.FAILURE and run is not None:
                if rejected:
                    mapped = Status.REJECTED
                elif run.current["conclusion"] == "cancelled":
                    mapped = Status.CANCELLED
            if rank(mapped) < reached:
                continue  # queued again after an approval: the lifecycle never goes back
            reached = rank(mapped)
            out.add((f"gh-deploy-{dep.id}", mapped.value, format_rfc3339(status.created_at)))
        if not ordered:
            out.add((f"gh-deploy-{dep.id}", Status.PENDING.value, format_rfc3339(dep.created_at)))
    return out


def key_pair() -> tuple[str, str]:
    """A fresh RSA key pair for a GitHub App, as PEM: (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public

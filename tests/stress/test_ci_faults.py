"""Each CI emulator failing under a real daemon: it keeps running, says where, and loses nothing.

The CI worlds are the emulators' demo scenarios with their clocks held still, made odd the way real
servers are (every timestamp written in some other UTC offset, optional fields missing from some
items, unknown status values on others — the same way on every read, keyed on the item's id). What
the fetcher *can* read from such a world is what a fault-free pass of the same engine stores: that
is the expected set. The daemon then reads it through 5xx bursts, rate limits (GitHub's secondary
403, GitLab's and Azure DevOps' 429), malformed and truncated bodies, dropped connections and list
pages that repeat an item, and must deliver exactly the expected set, each once, every fault logged
with the URL it came from.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.properties.mutations import is_timestamp, reoffset
from tests.stress.harness import API_KEY, metric
from tests.support import FetcherProcess, free_port, wait_until

from deploy_fetcher.emulators._server import EmulatorServer, Fault, Request, Response
from deploy_fetcher.emulators.azure_devops import AzureDevOpsEmulator
from deploy_fetcher.emulators.azure_devops import demo_source as azure_source
from deploy_fetcher.emulators.dashboard import DashboardEmulator
from deploy_fetcher.emulators.github import GitHubEmulator
from deploy_fetcher.emulators.github import demo_source as github_source
from deploy_fetcher.emulators.gitlab import GitLabEmulator
from deploy_fetcher.emulators.gitlab import demo_source as gitlab_source
from deploy_fetcher.engine import Runtime
from deploy_fetcher.model import parse_timestamp
from deploy_fetcher.plugins import parse_config

#: The emulators' clocks stand still at the start of the test run (the daemon's lookback counts
#: back from the real time, so the worlds' histories must end now).
WORLD_TIME = datetime.now(UTC).replace(microsecond=0)
#: Offsets (minutes) items' timestamps are written in, picked per item.
OFFSETS = (0, 330, -480, 60, -150, 345)
#: Fields some items go without (every one optional in the APIs' documentation).
OPTIONAL = frozenset(
    {
        "payload",
        "creator",
        "description",
        "log_url",
        "target_url",
        "environment_url",
        "triggering_actor",
        "run_started_at",
        "user",
        "external_url",
        "tier",
        "requestedFor",
        "requestedBy",
        "repository",
        "jobName",
        "stageAttempt",
        "webAccessUri",
    }
)
STATUS_KEYS = ("state", "status", "result", "conclusion", "deploymentStatus", "operationStatus")


def _roll(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def oddity(doc: Any, provider: str) -> Any:
    """The world as an odd server writes it; the same for the same item on every read."""
    if isinstance(doc, list):
        return [oddity(item, provider) for item in doc]
    if not isinstance(doc, dict):
        return doc
    out = {key: oddity(value, provider) for key, value in doc.items()}
    ident = doc.get("id")
    if ident is None or isinstance(ident, dict | list):
        return out
    roll = _roll(provider, ident)
    out = reoffset(out, OFFSETS[roll % len(OFFSETS)], 7 if roll % 2 else 0, z=bool(roll % 3))
    if roll % 5 == 0:
        out = {key: value for key, value in out.items() if key not in OPTIONAL}
    if roll % 17 == 0:
        out = {key: "exploded" if key in STATUS_KEYS else value for key, value in out.items()}
    return out


def _newest(item: Any, key: str) -> Any:
    """Where an item stands in its list's own order (None when it has no such field).

    Each API lists by one field (GitHub by ``created_at``, GitLab by ``updated_at``, Azure DevOps by
    id), and "the newest item" is newest by that field: an item created long ago and updated since is
    old news to a list ordered by creation.
    """
    value = item.get(key) if isinstance(item, dict) else None
    if is_timestamp(value):
        return parse_timestamp(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _last_page(request: Request, response: Response) -> bool:
    """Whether a list answer is the whole list: no next page in any of the three APIs' ways."""
    headers = {key.lower(): value for key, value in response.headers.items()}
    return (
        'rel="next"' not in headers.get("link", "")
        and not headers.get("x-next-page")
        and not headers.get("x-ms-continuationtoken")
        and request.arg("page", "1") == "1"
    )


@dataclass
class Oddities:
    """Wraps an emulator's dispatch: the odd world always; list reads that repeat or skip, on demand.

    A repeat appends a copy of the page's first item (a list shifting under paging); a skip leaves out
    the newest item of a one-page list (an eventually consistent list that shows it a read later).
    """

    emulator: EmulatorServer
    provider: str
    #: The field the API orders its lists by.
    order: str
    repeats: int = 0
    skips: int = 0
    served: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._dispatch: Callable[[Request], Response] = self.emulator.dispatch
        self.emulator.dispatch = self.dispatch  # type: ignore[method-assign]

    def dispatch(self, request: Request) -> Response:
        """The emulator's answer, made odd."""
        response = self._dispatch(request)
        if request.path.startswith(EmulatorServer.CONTROL) or response.status != 200:
            return response
        try:
            data = json.loads(response.body)
        except ValueError:
            return response
        data = oddity(data, self.provider)
        headers = dict(response.headers)
        items = data.get("value") if isinstance(data, dict) else data
        if isinstance(items, list) and len(items) > 1:
            altered = False
            if self.repeats > 0:
                self.repeats -= 1
                items.append(items[0])
                altered = True
            elif self.skips > 0 and _last_page(request, response):
                dated = [(t, i) for i, item in enumerate(items) if (t := _newest(item, self.order))]
                if dated:
                    self.skips -= 1
                    del items[max(dated)[1]]
                    altered = True
            if altered:
                # A server's validator describes the body it sent: this one is not the stored list.
                headers = {
                    k: v for k, v in headers.items() if k.lower() not in {"etag", "last-modified"}
                }
        self.served += 1
        return Response(response.status, json.dumps(data).encode(), headers)


@dataclass(frozen=True)
class CiSystem:
    """One CI emulator, the ``sources[]`` entry that reads it, and how it says "slow down"."""

    name: str
    build: Callable[[], EmulatorServer]
    source: Callable[[str], dict[str, Any]]
    limit: Fault
    #: The requests of a poll cycle (discovery's listing of repositories is left alone).
    polls: str
    #: The field the API orders its lists by (what "newest" means to it).
    order: str


SYSTEMS = {
    "github": CiSystem(
        "github",
        lambda: GitHubEmulator(scenario="demo", seed=3, start=WORLD_TIME),
        # Over REST only: the odd world is keyed on item ids, which GraphQL's status nodes lack, so
        # the two paths would read two different worlds.
        lambda url: {**github_source(url), "graphql": False},
        polls=r"/repos/[^/]+/[^/]+/(deployments|actions)",
        order="created_at",
        limit=Fault(
            status=403,
            count=2,
            headers={"Retry-After": "1"},
            body=json.dumps({"message": "You have exceeded a secondary rate limit."}),
        ),
    ),
    "gitlab": CiSystem(
        "gitlab",
        lambda: GitLabEmulator(scenario="demo", seed=3, start=WORLD_TIME),
        gitlab_source,
        polls=r"/projects/[^/]+/(deployments|pipelines)",
        order="updated_at",
        limit=Fault(status=429, count=2, headers={"Retry-After": "1"}, body='{"message": "429"}'),
    ),
    "azure-devops": CiSystem(
        "azure-devops",
        lambda: AzureDevOpsEmulator(scenario="demo", seed=3, start=WORLD_TIME),
        azure_source,
        polls=r"/_apis/",
        order="id",
        limit=Fault(status=429, count=2, headers={"Retry-After": "1"}, body=""),
    ),
}


def faults(system: CiSystem) -> list[Fault]:
    """The transient failures, in the order they fire on the daemon's poll requests.

    The 5xx burst outlasts an adapter's own retries, so a whole cycle fails and the next one has
    to pick up where the cursor stayed.
    """
    limit = replace(system.limit, match=system.polls)
    return [
        Fault(status=502, count=2, body="<html>Bad Gateway</html>", match=system.polls),
        Fault(status=503, count=2, body="", match=system.polls),
        limit,
        Fault(kind="malformed", count=1, match=system.polls),
        Fault(kind="truncated", count=1, match=system.polls),
        Fault(kind="drop", count=1, match=system.polls),
    ]


@dataclass
class World:
    """A CI emulator made odd, the dashboard, and a configuration reading one from the other."""

    tmp_path: Path
    system: CiSystem

    def __post_init__(self) -> None:
        self.ci = self.system.build()
        self.ci.start()
        self.oddities = Oddities(self.ci, self.system.name, self.system.order)
        self.dashboard = DashboardEmulator(api_key=API_KEY)
        self.dashboard.start()
        self.port = free_port()

    def config(self, state: Path) -> dict[str, Any]:
        source = {
            **self.system.source(self.ci.url()),
            "interval": "1s",
            "jitter": "0s",
            "lookback": "3d",
        }
        return {
            "state": {"path": str(state)},
            "server": {"port": self.port},
            "sinks": [
                {
                    "name": "dashboard",
                    "type": "deployment-dashboard",
                    "url": self.dashboard.url(),
                    "api_key": API_KEY,
                    "backoff_initial": "100ms",
                    "backoff_max": "1s",
                }
            ],
            "sources": [source],
        }

    def readable(self) -> set[tuple[str, str, str]]:
        """What a fault-free pass of the engine stores from this world (polled until quiet)."""
        config = parse_config(yaml.safe_dump(self.config(self.tmp_path / "reference.db")))
        runtime = Runtime(config)
        try:
            keys: set[tuple[str, str, str]] = set()
            for _ in range(5):
                for provider in runtime.providers.values():
                    for target in provider.targets():
                        result = runtime.poller.run_target(provider, target)
                        assert "ok" == result.outcome, result.error
                rows = runtime.store.list_rows(sink="dashboard", limit=1_000_000)
                found = {row.event.dedup_key for row in rows}
                if found == keys:
                    return keys
                keys = found
            return keys
        finally:
            runtime.close()

    def delivered(self) -> list[tuple[str, str, str]]:
        return [(r["deployment_id"], r["status"], r["happened_at"]) for r in self.dashboard.rows()]

    def close(self) -> None:
        self.ci.stop()
        self.dashboard.stop()


@pytest.fixture(params=sorted(SYSTEMS))
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, SYSTEMS[request.param])
    yield w
    w.close()


def _lines(proc: FetcherProcess, pattern: str) -> list[dict[str, Any]]:
    return [line for line in proc.logs() if re.search(pattern, str(line.get("event", "")))]


def test_a_failing_ci_system_costs_nothing_the_fetcher_could_read(world: World) -> None:
    """Every transient fault is survived and logged with its URL; exactly the readable set arrives."""
    expected = world.readable()
    assert expected, "the world has deployments"
    world.ci.reset_log()
    world.ci.inject(*faults(world.system))
    world.oddities.repeats = 3
    world.oddities.skips = 3
    config_path = world.tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(world.config(world.tmp_path / "state.db")))
    proc = FetcherProcess(config_path, world.port, world.tmp_path / "fetcher.log").start()
    try:
        wait_until(lambda: not world.ci._faults and not world.oddities.repeats, timeout=60)
        wait_until(lambda: not world.oddities.skips, timeout=60)
        deadline = time.monotonic() + 60
        while not set(world.delivered()) >= expected and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # another cycle: nothing new, nothing again
        assert 200 == proc.get("/readyz")[0]
        failed_cycles = metric(proc, "fetcher_poll_cycles_total", outcome="transient_error")
    finally:
        assert 0 == proc.terminate()
    delivered = world.delivered()
    assert set() == expected - set(delivered)
    assert expected == set(delivered)
    assert len(delivered) == len(set(delivered))
    assert failed_cycles
    # Each failing cycle was logged once as it started failing, naming the URL that failed.
    failing = _lines(proc, r"^source\.failing$")
    assert failing
    url = world.ci.url()
    assert all(url in str(line.get("error")) for line in failing), failing
    # Items the mapping cannot use are logged with the URL they came from, and skipped.
    for line in _lines(proc, r"malformed_(item|response)$"):
        assert str(line.get("url", "")).startswith(url), line

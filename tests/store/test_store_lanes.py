"""Delivery lanes in the store: a sink's outbox split by service, each line held at its own head."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from tests.store.conftest import Backend
from tests.store.factories import T0, FakeClock, make_event

from deploy_fetcher.model import Status
from deploy_fetcher.store import SqliteStore, StateStore
from deploy_fetcher.store._lanes import lane_key
from deploy_fetcher.store._schema import _v1_initial

LEASE = 60.0
SERVICES = ("api", "web", "worker", "billing", "search", "auth")


def _services_by_lane(lanes: int) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for service in SERVICES:
        found.setdefault(lane_key(make_event(service=service)) % lanes, []).append(service)
    return found


def _queue(store: StateStore) -> None:
    """Three deployments per service, a minute apart, queued newest first."""
    rows = [
        ("dash", make_event(f"{service}-{m}", service=service, minute=m))
        for m in (3, 2, 1)
        for service in SERVICES
    ]
    store.commit_page("gh/octo/api", None, rows)


def test_lanes_split_the_outbox_by_service_and_keep_each_in_order(store: StateStore) -> None:
    """Each lane returns exactly its services' rows, oldest first; together, every row once."""
    _queue(store)
    lanes = 3
    claimed = {
        lane: store.claim("dash", limit=100, lease_seconds=LEASE, now=T0, lane=lane, lanes=lanes)
        for lane in range(lanes)
    }
    expected = {lane: set(services) for lane, services in _services_by_lane(lanes).items()}
    seen = {lane: {r.event.service for r in rows} for lane, rows in claimed.items() if rows}
    ordered = all(
        [r.event.happened_at for r in rows] == sorted(r.event.happened_at for r in rows)
        for rows in claimed.values()
    )
    ids = [r.id for rows in claimed.values() for r in rows]
    assert (expected, True, 18) == (seen, ordered, len(set(ids)))


def test_a_row_waiting_for_its_retry_holds_back_its_lane_only(
    store: StateStore, clock: FakeClock
) -> None:
    """A retry due in ten minutes blocks the later rows of its own lane; other lanes go on."""
    _queue(store)
    lanes = 2
    by_lane = _services_by_lane(lanes)
    assert len(by_lane) == 2, "the test needs services in both lanes"
    [first] = store.claim("dash", limit=1, lease_seconds=LEASE, now=T0, lane=0, lanes=lanes)
    store.mark_retry(first.id, next_attempt_at=T0 + timedelta(minutes=10), error="503")
    blocked = store.claim("dash", limit=100, lease_seconds=LEASE, now=T0, lane=0, lanes=lanes)
    other = store.claim("dash", limit=100, lease_seconds=LEASE, now=T0, lane=1, lanes=lanes)
    assert ([], 3 * len(by_lane[1])) == (blocked, len(other))


def test_one_lane_is_the_whole_sink_in_order(store: StateStore) -> None:
    """With the default single lane, a claim is the sink's whole line, as without lanes."""
    _queue(store)
    rows = store.claim("dash", limit=100, lease_seconds=LEASE, now=T0)
    times = [r.event.happened_at for r in rows]
    assert (18, sorted(times)) == (len(rows), times)


def test_the_lane_key_does_not_depend_on_the_number_of_lanes(store: StateStore) -> None:
    """Changing a sink's lanes moves a service's rows together: each service stays in one line."""
    _queue(store)
    for lanes in (1, 2, 5):
        for lane in range(lanes):
            rows = store.claim(
                "dash",
                limit=100,
                lease_seconds=0.001,
                now=T0 + timedelta(hours=lanes),
                lane=lane,
                lanes=lanes,
            )
            services = {r.event.service for r in rows}
            keys = {lane_key(r.event) % lanes for r in rows}
            assert keys <= {lane}, services


def test_a_state_file_from_before_lanes_gets_lane_keys_for_its_pending_rows(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Rows queued by a version without lanes are split by service once the file is upgraded."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    _v1_initial(conn)
    conn.execute("PRAGMA application_id = 1145455956")
    conn.execute("PRAGMA user_version = 1")
    for n, service in enumerate(SERVICES):
        event = make_event(f"{service}-1", service=service, minute=n, status=Status.IN_PROGRESS)
        conn.execute(
            """INSERT INTO outbox (sink, source, deployment_id, status, happened_at, event,
               created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                "dash",
                "gh",
                event.deployment_id,
                event.status.value,
                f"2024-05-01T12:0{n}:00.000000Z",
                event.to_json(),
                "2024-05-01T12:00:00.000000Z",
                "2024-05-01T12:00:00.000000Z",
            ),
        )
    conn.commit()
    conn.close()
    store = SqliteStore(path, clock=clock)
    try:
        lanes = 3
        got = {
            lane: {
                r.event.service
                for r in store.claim(
                    "dash", limit=100, lease_seconds=LEASE, now=T0, lane=lane, lanes=lanes
                )
            }
            for lane in range(lanes)
        }
    finally:
        store.close()
    expected = {lane: set(services) for lane, services in _services_by_lane(lanes).items()}
    assert expected == {lane: services for lane, services in got.items() if services}


def test_backend_has_the_lane_key_column(backend: Backend, store: StateStore) -> None:
    """Both backends store the lane key computed from the row's service."""
    store.commit_page("k", None, [("dash", make_event("d", service="web"))])
    assert [(lane_key(make_event(service="web")),)] == backend.execute(
        "SELECT lane_key FROM outbox"
    )

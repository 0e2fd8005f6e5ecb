"""The lifecycle invariant: a deployment's delivered events never go backwards, in state or time."""

from __future__ import annotations

from datetime import timedelta

from structlog.testing import capture_logs
from tests.engine.builders import T0, ListProvider, make_config

from deploy_fetcher.engine import Health, Poller
from deploy_fetcher.lifecycle import enforce_lifecycle, lifecycle_order, violations
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.model import DeployEvent, Status, utc_now
from deploy_fetcher.providers import Page
from deploy_fetcher.providers.kit import backfill_pages


def _event(status: str, seconds: int = 0, deployment: str = "d1") -> DeployEvent:
    return DeployEvent(
        deployment_id=deployment,
        service="api",
        environment="prod",
        status=Status(status),
        happened_at=T0 + timedelta(seconds=seconds),
        provider="test",
        source="src",
    )


def test_events_at_one_instant_come_in_lifecycle_order():
    """Equal timestamps sort pending, queued, waiting, in-progress, then the end — not by name."""
    shuffled = [_event("success"), _event("in-progress"), _event("waiting"), _event("queued")]
    ordered = lifecycle_order(shuffled)
    assert ["queued", "waiting", "in-progress", "success"] == [e.status.value for e in ordered]


def test_a_page_in_lifecycle_order_puts_queued_before_in_progress_at_the_same_instant():
    """Ties in a page go by lifecycle, so the latest row of a running deployment is running."""
    batch = [_event("in-progress"), _event("queued")]
    [page] = list(backfill_pages([batch], order=lifecycle_order))
    assert ["queued", "in-progress"] == [e.status.value for e in page.events]


def test_an_event_going_backwards_is_dropped_with_one_log_line():
    """A queued dated after the deployment's in-progress is dropped (logged); the rest is kept."""
    events = [_event("queued", 3), _event("success", 5), _event("in-progress", 1)]
    with capture_logs() as logs:
        kept = enforce_lifecycle(events)
    assert [("in-progress", 1), ("success", 5)] == [
        (e.status.value, int((e.happened_at - T0).total_seconds())) for e in kept
    ]
    dropped = [log for log in logs if log["event"] == "lifecycle.event_dropped"]
    assert [("d1", "queued", "in-progress", "behind_in_page")] == [
        (log["deployment_id"], log["status"], log["after"], log["why"]) for log in dropped
    ]
    assert [] == violations(kept)


def test_a_state_after_an_end_and_dated_later_begins_a_new_lifecycle():
    """A deployment re-run under its id (a retried pipeline): queued after its failure is kept."""
    events = [_event("failure", 5), _event("pending", 10), _event("in-progress", 12)]
    with capture_logs() as logs:
        kept = enforce_lifecycle(events)
    assert events == kept
    assert [] == [log for log in logs if log["event"] == "lifecycle.event_dropped"]
    assert [] == violations(kept)


def test_a_state_at_the_same_instant_as_an_end_is_not_a_new_lifecycle():
    """Ties go by lifecycle: a queued sharing its failure's instant is put before it, not after."""
    page = [_event("failure", 5), _event("queued", 5)]
    assert ["queued", "failure"] == [e.status.value for e in enforce_lifecycle(page)]
    assert ["d1: queued after failure"] == violations(page)


def test_deployments_are_judged_apart_and_a_later_end_is_kept():
    """Another deployment's state does not drop an event; failure then success keeps both."""
    events = [_event("success", 1, "a"), _event("queued", 2, "b"), _event("failure", 3, "a")]
    events.append(_event("success", 4, "a"))
    assert events == enforce_lifecycle(events)


def test_violations_names_backwards_states_and_times():
    """The checker used by the property tests finds both kinds of breach."""
    found = violations([_event("in-progress", 5), _event("queued", 6), _event("success", 1)])
    assert 2 == len(found)
    assert "queued after in-progress" in found[0]
    assert "dated before" in found[1]


def test_the_poller_stores_a_page_in_lifecycle_order_without_backward_events(tmp_path, context):
    """Whatever order an adapter yields, the outbox gets queued then in-progress, never a stale pending."""
    from deploy_fetcher.store.sqlite import SqliteStore

    config = make_config()
    page = Page([_event("in-progress"), _event("pending", 30), _event("queued")], {"mark": 1})
    provider = ListProvider(config.sources[0], context, [page])
    store = SqliteStore(tmp_path / "state.db")
    try:
        Poller(config, store, Metrics(), Health()).run_target(provider, "src")
        rows = store.claim("dash", limit=10, lease_seconds=60, now=utc_now())
        assert ["queued", "in-progress"] == [r.event.status.value for r in rows]
    finally:
        store.close()


def _stored(store) -> list[tuple[str, int]]:
    rows = store.claim("dash", limit=10, lease_seconds=60, now=utc_now())
    return [(r.event.status.value, int((r.event.happened_at - T0).total_seconds())) for r in rows]


def test_a_later_poll_cycle_cannot_take_a_deployment_back(tmp_path, context):
    """Cycle 2 reads a queued after the stored in-progress, and a success dated before it."""
    from deploy_fetcher.store.sqlite import SqliteStore

    config = make_config()
    store = SqliteStore(tmp_path / "state.db")
    poller = Poller(config, store, Metrics(), Health())
    cycles = [
        [Page([_event("queued", 1), _event("in-progress", 5)], {"mark": 1})],
        [Page([_event("queued", 6)], {"mark": 2}), Page([_event("success", 4)], {"mark": 3})],
    ]
    try:
        for pages in cycles:
            poller.run_target(ListProvider(config.sources[0], context, pages), "src")
        assert [("queued", 1), ("in-progress", 5), ("success", 5)] == _stored(store)
    finally:
        store.close()


def test_a_backfill_stored_sink_by_sink_cannot_take_a_deployment_back(tmp_path, context):
    """``fetcher sync`` over a window the daemon already queued: the older states are left out."""
    from deploy_fetcher.store.sqlite import SqliteStore

    config = make_config()
    store = SqliteStore(tmp_path / "state.db")
    poller = Poller(config, store, Metrics(), Health())
    counts: list[dict[str, tuple[int, int]]] = []
    pages = [Page([_event("in-progress", 5)], None), Page([_event("queued", 3)], None)]
    pages.append(Page([_event("success", 4), _event("in-progress", 4)], None))
    provider = ListProvider(config.sources[0], context, pages)
    try:
        poller.backfill_target(provider, "src", T0, T0, sink_progress=counts.append)
        assert [{"dash": (1, 1)}, {"dash": (1, 0)}, {"dash": (2, 1)}] == counts
        assert [("in-progress", 5), ("success", 5)] == _stored(store)
    finally:
        store.close()

"""The state slot over HTTP against the dashboard emulator, alone and under the dashboard store."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.store.factories import make_event
from tests.support import DASHBOARD_KEY

from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.model import utc_now
from deploy_fetcher.sinks.dashboard.backend import DashboardStore, SlotError, decode_document
from deploy_fetcher.sinks.dashboard.slot import HttpStateSlot


def test_nothing_stored_yet_reads_as_none(dashboard, sink_config) -> None:
    """A 404 from the slot is "no cursors yet", not an error."""
    slot = HttpStateSlot(sink_config(), "fetcher-a")
    try:
        assert slot.load() is None
    finally:
        slot.close()


def test_save_then_load_round_trips_through_the_dashboard(dashboard, sink_config) -> None:
    """PUT stores the string as the slot's state; GET gives it back unchanged."""
    slot = HttpStateSlot(sink_config(), "fetcher-a")
    try:
        slot.save('{"v":1,"cursors":{"a/b":{"x":"é"}}}')
        assert '{"v":1,"cursors":{"a/b":{"x":"é"}}}' == dashboard.state("fetcher-a")
        assert '{"v":1,"cursors":{"a/b":{"x":"é"}}}' == slot.load()
    finally:
        slot.close()
    [put] = dashboard.requests_to("^/api/fetcher/state/fetcher-a$", method="PUT")
    assert DASHBOARD_KEY == put.headers["x-api-key"]


def test_a_wrong_key_is_a_permanent_error_without_the_key(dashboard, sink_config) -> None:
    """401 is a refusal the operator must fix; the message names the dashboard, never the key."""
    slot = HttpStateSlot(sink_config(api_key="wrong-key-9876"), "fetcher-a")
    try:
        with pytest.raises(SlotError) as raised:
            slot.load()
    finally:
        slot.close()
    assert raised.value.permanent
    message = str(raised.value)
    assert f"cannot read the cursors from the dashboard at {dashboard.url()}" in message
    assert "HTTP 401" in message
    assert "wrong-key-9876" not in message


def test_an_outage_is_a_transient_error(dashboard, sink_config) -> None:
    """A 503 or a refused connection is retried later, not reported as a broken setup."""
    slot = HttpStateSlot(sink_config(), "fetcher-a")
    try:
        dashboard.inject(Fault(status=503, match="^/api/fetcher/state/"))
        with pytest.raises(SlotError) as unavailable:
            slot.save("{}")
        dashboard.stop()
        with pytest.raises(SlotError) as refused:
            slot.load()
    finally:
        slot.close()
    assert (False, False) == (unavailable.value.permanent, refused.value.permanent)
    assert "connection failed" in str(refused.value)


def test_the_dashboard_refuses_more_than_8_kib(dashboard, sink_config) -> None:
    """The emulator's 422 for an over-long state is a permanent refusal."""
    slot = HttpStateSlot(sink_config(), "fetcher-a")
    try:
        with pytest.raises(SlotError) as raised:
            slot.save("x" * 8193)
    finally:
        slot.close()
    assert raised.value.permanent
    assert "must be at most 8192 bytes" in str(raised.value)


def test_the_store_keeps_the_old_cursors_when_they_outgrow_the_slot(
    dashboard, sink_config, tmp_path: Path
) -> None:
    """Through the real dashboard: a too-long document is never sent and the stored one stays."""
    store = DashboardStore(
        HttpStateSlot(sink_config(), "fetcher-a"), directory=tmp_path, flush_interval=None
    )
    try:
        assert store.get_cursor("s/a") is None
        store.commit_page("s/a", {"offset": 1}, [])
        assert store.flush()
        kept = dashboard.state("fetcher-a")
        store.commit_page("s/b", {"blob": "y" * 9000}, [])
        assert not store.flush()
        assert kept == dashboard.state("fetcher-a")
        assert "more than the 8192 bytes" in (store.check_writable() or "")
    finally:
        store.close()
    assert [] == dashboard.requests_to("^/api/fetcher/state/", method="PUT")[1:]
    assert {"s/a": {"offset": 1}} == decode_document(dashboard.state("fetcher-a") or "")[0]


def test_a_long_outage_of_a_sink_puts_only_the_latest_cursor(
    dashboard, sink_config, tmp_path: Path
) -> None:
    """Polls piling up behind an undelivered row are held as two commits; one PUT carries the last."""
    store = DashboardStore(
        HttpStateSlot(sink_config(), "fetcher-a"), directory=tmp_path, flush_interval=None
    )
    try:
        store.commit_page("s/a", {"offset": 0}, [("dash", make_event("run-1"))])
        for offset in range(1, 501):
            store.commit_page("s/a", {"offset": offset}, [])
        assert store.flush()
        assert (2, None) == (len(store._commits["s/a"]), dashboard.state("fetcher-a"))
        (row,) = store.claim("dash", limit=10, lease_seconds=60, now=utc_now())
        store.mark_delivered(row.id, now=utc_now())
        assert store.flush()
    finally:
        store.close()
    puts = dashboard.requests_to("^/api/fetcher/state/", method="PUT")
    assert 1 == len(puts)
    assert {"s/a": {"offset": 500}} == decode_document(dashboard.state("fetcher-a") or "")[0]

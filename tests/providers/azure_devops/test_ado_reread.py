"""``fetcher explain``'s reread: one deployment's events with the Azure DevOps objects behind them."""

from __future__ import annotations

from datetime import timedelta

import pytest


def _environments(event):
    meta = event.metadata
    return [
        f"environment {event.environment} record {meta['record_id']}",
        f"build {meta['run_id']}",
    ]


def _stages(event):
    return [f"build {event.metadata['run_id']}", f"build {event.metadata['run_id']} timeline"]


def _releases(event):
    return [f"release deployment {event.deployment_id.removeprefix('ado-rel-')}"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("environments", _environments), ("stages", _stages), ("releases", _releases)],
)
def test_a_reread_deployment_carries_the_objects_it_was_mapped_from(
    emulator, providers, mode, expected
):
    """Each mode records what it mapped, never another deployment's objects."""
    emulator.add_run("web", ago=2 * 3600)
    emulator.add_release("billing-classic", ago=2 * 3600)
    since, until = emulator.now() - timedelta(hours=3), emulator.now()
    window = [
        e for page in providers(mode=mode).backfill("shop", since, until) for e in page.events
    ]
    first = window[0]
    found = providers(mode=mode).reread("shop", first.deployment_id, since=since, until=until)
    assert expected(first) == [what for what, _ in found.objects]
    assert sorted(e.dedup_key for e in window if e.deployment_id == first.deployment_id) == sorted(
        e.dedup_key for e in found.events
    )

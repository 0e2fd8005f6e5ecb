"""Backfill (``fetcher sync --since``) through each mode's own time filter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.providers.azure_devops.support import Harness


@pytest.mark.parametrize("mode", ["environments", "stages", "releases"])
def test_backfill_yields_exactly_the_window_without_cursors(emulator, providers, mode):
    """The window's events equal what a full poll saw in that window; pages carry no cursor."""
    for hours in (3, 2, 1):
        emulator.add_run("web", ago=hours * 3600)
        emulator.add_release("billing-classic", ago=hours * 3600)
    since = emulator.now() - timedelta(hours=2, minutes=30)
    until = emulator.now() - timedelta(minutes=30)
    pages = list(providers(mode=mode).backfill("shop", since, until))
    truth = Harness(providers(mode=mode))
    truth.cycle()
    expected = {k for k, e in truth.seen.items() if since <= e.happened_at < until}
    got = [e for page in pages for e in page.events]
    assert (expected, len(expected), {None}) == (
        {e.dedup_key for e in got},
        len(got),
        {page.cursor for page in pages},
    )


def test_backfill_pages_are_oldest_first(emulator, providers):
    """Within a page, events come in time order."""
    emulator.add_run("web", ago=3600)
    pages = list(
        providers(mode="stages").backfill(
            "shop", emulator.now() - timedelta(hours=2), emulator.now()
        )
    )
    times = [[e.happened_at for e in page.events] for page in pages]
    assert [sorted(t) for t in times] == times


def test_backfill_of_releases_uses_the_modified_time_filter(emulator, providers):
    """The query on the release host is bounded by minModifiedTime and maxModifiedTime."""
    since = emulator.now() - timedelta(hours=1)
    list(providers(mode="releases").backfill("shop", since, emulator.now()))
    query = emulator.requests_to("release/deployments")[0].query
    assert (True, True) == ("minModifiedTime=" in query, "maxModifiedTime=" in query)

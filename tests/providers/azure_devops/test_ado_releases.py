"""Mode releases end to end: classic release deployments from the emulator's release host."""

from __future__ import annotations

import pytest
from tests.providers.azure_devops.support import Harness, busy

from deploy_fetcher.errors import TargetNotFound


def _by_env(harness: Harness, release_id: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in sorted(harness.seen.values(), key=lambda e: e.happened_at):
        if event.run_number == release_id:
            out.setdefault(event.environment, []).append(event.status.value)
    return out


def test_release_through_its_environments(emulator, providers):
    """QA deploys; Production waits for its approval, then deploys (queuedOn is "never", as real)."""
    release = emulator.add_release("billing-classic", ago=3600)
    harness = Harness(providers(mode="releases"))
    harness.cycle()
    assert {
        "QA": ["in-progress", "success"],
        "Production": ["waiting", "in-progress", "success"],
    } == _by_env(harness, release.id)


def test_release_events_carry_the_release(emulator, providers):
    """Service is the release definition, version the release name, the run is the release."""
    release = emulator.add_release("billing-classic", ago=3600)
    harness = Harness(providers(mode="releases"))
    harness.cycle()
    event = next(iter(harness.seen.values()))
    assert ("billing-classic", release.name, release.id, release.sha, "Dana Developer") == (
        event.service,
        event.version,
        event.run_number,
        event.sha,
        event.actor,
    )


def test_requests_go_to_the_release_host(emulator, providers):
    """Release Management is called on its own host (here: its prefix), never the organization's."""
    emulator.add_release("billing-classic", ago=3600)
    Harness(providers(mode="releases")).cycle()
    assert {"/vsrm/contoso/shop/_apis/release/deployments"} == {
        r.path for r in emulator.requests_to()
    }


def test_approval_waits_then_is_rejected(emulator, providers):
    """A pending approval is waiting; rejecting it ends the deployment rejected."""
    release = emulator.add_release(
        "billing-classic", environments={"Production": {"decision": "pending"}}
    )
    harness = Harness(providers(mode="releases"))
    emulator.advance(300)
    harness.cycle()
    assert ["waiting"] == _by_env(harness, release.id)["Production"]
    emulator.advance(60)
    emulator.reject_release(release.id, "Production")
    emulator.advance(5)
    harness.cycle()
    assert ["waiting", "rejected"] == _by_env(harness, release.id)["Production"]


def test_cancelled_release(emulator, providers):
    """Cancelling a release during its QA deployment ends that deployment cancelled."""
    release = emulator.add_release("billing-classic")
    harness = Harness(providers(mode="releases"))
    emulator.advance(60)
    harness.cycle()
    emulator.cancel_release(release.id)
    emulator.advance(5)
    harness.cycle()
    assert {"QA": ["in-progress", "cancelled"]} == _by_env(harness, release.id)


def test_continuation_paging_across_pages(emulator, providers):
    """page_size 1: every deployment comes on its own page, all of them are read."""
    releases = [emulator.add_release("billing-classic", ago=7200 - 1800 * n) for n in range(3)]
    harness = Harness(providers(mode="releases", page_size=1))
    harness.cycle()
    paged = [r for r in emulator.requests_to() if "continuationToken=" in r.query]
    assert (5, {r.id: "success" for r in releases}) == (
        len(paged),
        {r.id: _by_env(harness, r.id)["Production"][-1] for r in releases},
    )


def test_no_duplicates_over_many_cycles_and_a_restart(emulator, providers):
    """Incremental cycles with a restart see exactly what one late full read sees."""
    busy(emulator)
    harness = Harness(providers(mode="releases"))
    for cycle in range(30):
        emulator.advance(120)
        if cycle == 15:
            before = set(harness.seen)
            harness.restart(providers(mode="releases"))
            new = harness.cycle()
            # Only deployments that changed are read again (their new version repeats their past).
            reread = {e.deployment_id for e in harness.last_raw if e.dedup_key in before}
            assert reread <= {e.deployment_id for e in new}
        else:
            harness.cycle()
    emulator.advance(3600)
    harness.cycle()
    truth = Harness(providers(mode="releases"))
    truth.cycle()
    statuses = {e.status.value for e in truth.seen.values()}
    assert (set(truth.seen), True) == (set(harness.seen), {"waiting", "rejected"} <= statuses)


def test_idle_cycles_cost_one_request_and_emit_nothing(emulator, providers):
    """The overlap window is re-read, but what was already emitted is not emitted again."""
    emulator.add_release("billing-classic", ago=3600)
    harness = Harness(providers(mode="releases"))
    harness.cycle()
    emulator.reset_log()
    emitted = harness.emitted
    for _ in range(5):
        emulator.advance(60)
        harness.cycle()
    assert (5, emitted) == (len(emulator.requests_to()), harness.emitted)


def test_definition_and_environment_filters(emulator, providers):
    """The pipelines and environments keys narrow the deployments kept."""
    emulator.add_release("billing-classic", ago=3600)
    harness = Harness(providers(mode="releases", environments=["Prod*"]))
    harness.cycle()
    other = Harness(providers(mode="releases", pipelines=["other-*"]))
    other.cycle()
    assert ({"Production"}, {}) == ({e.environment for e in harness.seen.values()}, other.seen)


def test_missing_project_is_target_not_found(emulator, providers):
    """An unknown project on the release host is reported and skipped."""
    with pytest.raises(TargetNotFound):
        Harness(providers(mode="releases"), target="gone").cycle()

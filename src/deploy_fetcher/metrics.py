"""Prometheus metrics, held in one registry per process (a fresh one per test).

Every series about a source carries the label ``source`` (the source's name); series about one
target of it add ``target`` (``octo/api``, ``group/project``), so any two of them join on those
labels. Series about a sink carry ``sink``; CI-side series carry ``provider`` and ``credential``
(a credential is shared by the sources that use it).

Labels never carry secrets: a credential is named by the source that uses it (or an App id), never by
the token or anything derived from it.

The registry also holds the standard ``process_*`` and ``python_info`` series and
``fetcher_build_info``; counters expose no ``_created`` series (they double the series count and no
dashboard here reads them).
"""

from __future__ import annotations

import platform
import time
from contextlib import suppress

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from deploy_fetcher._version import __version__

__all__ = ["CYCLE_OUTCOMES", "DISCOVERY_TARGET", "Metrics", "split_key"]

disable_created_metrics()  # type: ignore[no-untyped-call]

#: Every ``outcome`` of ``fetcher_poll_cycles_total``.
CYCLE_OUTCOMES = (
    "ok",
    "auth_error",
    "not_found",
    "rate_limited",
    "transient_error",
    "store_error",
    "lease_lost",
    "error",
)

#: The ``target`` label of what a source's target listing (``owner/*`` discovery) does.
DISCOVERY_TARGET = ""


def split_key(key: str) -> tuple[str, str]:
    """``(source, target)`` of a cursor key (``github/octo/api``; a bare ``name`` is its own target).

    Source names cannot contain ``/`` (see the configuration's name rule), so the first one splits.
    """
    source, _, target = key.partition("/")
    return source, target or source


class Metrics:
    """Every metric the fetcher exports, and small methods to record the common facts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        if r is not REGISTRY:  # the default registry has them already
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self.build_info = Info(
            "fetcher_build", "Version of deploy-fetcher and of the Python running it.", registry=r
        )
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        self.poll_cycles = Counter(
            "fetcher_poll_cycles",
            "Poll cycles of a source target by outcome (ok, auth_error, not_found, rate_limited, "
            "transient_error, store_error, lease_lost, error).",
            ["source", "target", "outcome"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "fetcher_poll_cycle_duration_seconds",
            "Duration of one poll cycle of a source target, per CI system (a histogram per source "
            "would cost more memory than the source itself, and no alert needs it).",
            ["provider"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.target_up = Gauge(
            "fetcher_target_up",
            "1 when the last poll cycle of a source target succeeded, 0 while it fails.",
            ["source", "target"],
            registry=r,
        )
        self.discovery_cycles = Counter(
            "fetcher_discovery_cycles",
            "Listings of a source's targets (owner/*, group/*, projects) by outcome (ok, "
            "auth_error, discovery_error).",
            ["source", "outcome"],
            registry=r,
        )
        self.discovery_up = Gauge(
            "fetcher_discovery_up",
            "1 when the last listing of a source's targets succeeded, 0 while it fails.",
            ["source"],
            registry=r,
        )
        self.auth_failures = Counter(
            "fetcher_auth_failures",
            "Requests a CI system refused for the credentials (401/403), per source and target "
            "(target empty for the listing of targets).",
            ["source", "target"],
            registry=r,
        )
        self.events = Counter(
            "fetcher_events",
            "Canonical events read from sources (after rules), by status.",
            ["source", "status"],
            registry=r,
        )
        self.deliveries = Counter(
            "fetcher_deliveries",
            "Delivery attempts by sink and outcome (delivered, retry, unauthorized, rejected).",
            ["sink", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "fetcher_delivery_latency_seconds",
            "Time from an event entering the outbox to its delivery.",
            ["sink"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        self.outbox_depth = Gauge(
            "fetcher_outbox_depth", "Rows waiting for delivery, per sink.", ["sink"], registry=r
        )
        self.polls_overdue = Gauge(
            "fetcher_polls_overdue",
            "Polls running longer than defaults.poll_deadline now (a hung or trickling upstream).",
            registry=r,
        )
        self.polls_waiting = Gauge(
            "fetcher_polls_waiting",
            "Polls due and waiting for a poll worker, per lane: urgent (nudged, taken over) or "
            "scheduled.",
            ["lane"],
            registry=r,
        )
        for lane in ("urgent", "scheduled"):
            self.polls_waiting.labels(lane).set(0)  # both series from the start
        self.dead_letters = Gauge(
            "fetcher_dead_letters", "Dead-lettered rows, per sink.", ["sink"], registry=r
        )
        self.sink_paused = Gauge(
            "fetcher_sink_paused",
            "1 while a sink is paused because it rejected the credentials.",
            ["sink"],
            registry=r,
        )
        self.cursor_lag = Gauge(
            "fetcher_cursor_lag_seconds",
            "Seconds since the last successful poll of a source target.",
            ["source", "target"],
            registry=r,
        )
        self.last_success = Gauge(
            "fetcher_last_success_timestamp_seconds",
            "Unix time of the last successful poll of a source target.",
            ["source", "target"],
            registry=r,
        )
        self.ci_requests = Counter(
            "fetcher_ci_requests",
            "HTTP requests to CI APIs by provider and status code (304s included).",
            ["provider", "status_code"],
            registry=r,
        )
        self.ci_request_limits = Counter(
            "fetcher_ci_request_limits",
            "Requests to CI APIs cut short by a limit (deadline, size, redirect), by provider.",
            ["provider", "limit"],
            registry=r,
        )
        self.rate_limit_remaining = Gauge(
            "fetcher_ci_rate_limit_remaining",
            "Remaining API quota reported by the CI system, per provider and credential.",
            ["provider", "credential"],
            registry=r,
        )
        self.rate_limit_limit = Gauge(
            "fetcher_ci_rate_limit_limit",
            "API quota limit reported by the CI system, per provider and credential.",
            ["provider", "credential"],
            registry=r,
        )
        # Replicas sharing a PostgreSQL state (zero with a SQLite file: one process does it all).
        self.replicas = Gauge(
            "fetcher_replicas",
            "Live members of the replica set, as this replica last saw it.",
            registry=r,
        )
        self.owned_targets = Gauge(
            "fetcher_owned_targets",
            "Source targets whose lease this replica holds (it polls them).",
            registry=r,
        )
        self.owned_sinks = Gauge(
            "fetcher_owned_sinks",
            "Sinks whose lease this replica holds (it delivers to them).",
            registry=r,
        )
        self.lease_losses = Counter(
            "fetcher_lease_losses",
            "Leases this replica lost while it held them (expired before renewal, or taken over).",
            registry=r,
        )
        self.lease_handovers = Counter(
            "fetcher_lease_handovers",
            "Leases handed to another replica (out) or taken over from one (in).",
            ["direction"],
            registry=r,
        )
        for direction in ("in", "out"):  # both series from the start, so rate() has a baseline
            self.lease_handovers.labels(direction)
        self.poll_stretch = Gauge(
            "fetcher_poll_interval_stretch",
            "How many times their configured interval idle targets wait now, per request budget "
            "(pool: a CI system, or one credential of it); 1 when polled as configured.",
            ["pool"],
            registry=r,
        )
        self.request_limit = Gauge(
            "fetcher_request_limit_per_minute",
            "The tightest per-minute request limit known for a credential's pool, by kind (declared: "
            "documented or configured, headers: stated by the server, throttled: learnt from the "
            "server delaying requests); polls are held to 0.85 of it.",
            ["pool", "limit"],
            registry=r,
        )
        self.requests_last_minute = Gauge(
            "fetcher_requests_last_minute",
            "Requests a credential's pool made in the last minute (a 304 too), to set against "
            "fetcher_request_limit_per_minute.",
            ["pool"],
            registry=r,
        )
        self.hot_targets = Gauge(
            "fetcher_hot_targets",
            "Targets polled every hot_interval now (work in flight, or news in the last cooldown), "
            "per request budget.",
            ["pool"],
            registry=r,
        )
        self.nudges = Counter(
            "fetcher_nudges",
            "Webhook nudges received, per provider and outcome (polled, deferred, throttled, elsewhere, "
            "unknown_target, ignored, unauthorized, invalid, too_large, busy).",
            ["provider", "outcome"],
            registry=r,
        )

    # -- what the engine records -------------------------------------------------------------------
    def cycle(
        self, source: str, target: str, outcome: str, seconds: float, *, provider: str = ""
    ) -> None:
        """One poll cycle of a target (of a ``provider`` source) ended with ``outcome`` after ``seconds``."""
        self.poll_cycles.labels(source, target, outcome).inc()
        self.poll_duration.labels(provider).observe(seconds)
        if outcome in {"store_error", "lease_lost"}:
            # Not the source's doing (the store failed, or another replica polls it now): its
            # up/down state is unknown here.
            return
        self.target_up.labels(source, target).set(1 if outcome == "ok" else 0)
        if outcome == "ok":
            self.last_success.labels(source, target).set(time.time())
        elif outcome == "auth_error":
            self.auth_failure(source, target)

    def discovery(self, source: str, outcome: str) -> None:
        """One listing of a source's targets ended with ``outcome``."""
        self.discovery_cycles.labels(source, outcome).inc()
        self.discovery_up.labels(source).set(1 if outcome == "ok" else 0)
        if outcome == "auth_error":
            self.auth_failure(source, DISCOVERY_TARGET)

    def auth_failure(self, source: str, target: str = DISCOVERY_TARGET) -> None:
        """A CI system refused ``source``'s credential while reading ``target``."""
        self.auth_failures.labels(source, target).inc()

    def forget_target(self, source: str, target: str) -> None:
        """A target left the configuration: its series must not linger (a stale alert, forever)."""
        for metric in (self.last_success, self.cursor_lag, self.target_up, self.auth_failures):
            with suppress(KeyError):
                metric.remove(source, target)
        for outcome in CYCLE_OUTCOMES:
            with suppress(KeyError):
                self.poll_cycles.remove(source, target, outcome)

    # -- what providers record ---------------------------------------------------------------------
    def ci_request(self, provider: str, status_code: int | str) -> None:
        """One HTTP answer from a CI API (``status_code`` 304 included)."""
        self.ci_requests.labels(provider, str(status_code)).inc()

    def ci_request_limit(self, provider: str, limit: str) -> None:
        """A request to a CI API cut short by a limit (``deadline``, ``size``, ``redirect``)."""
        self.ci_request_limits.labels(provider, limit).inc()

    def rate_limit(
        self, provider: str, credential: str, *, remaining: float, limit: float | None = None
    ) -> None:
        """The quota a CI system reported for a credential."""
        self.rate_limit_remaining.labels(provider, credential).set(remaining)
        if limit is not None:
            self.rate_limit_limit.labels(provider, credential).set(limit)

"""Prometheus metrics, held in one registry per process (a fresh one per test).

Labels never carry secrets: a credential is named by the source that uses it (or an App id), never by
the token or anything derived from it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """Every metric the fetcher exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.poll_cycles = Counter(
            "fetcher_poll_cycles",
            "Poll cycles of a source target by outcome (ok, auth_error, not_found, rate_limited, "
            "transient_error, error).",
            ["source", "outcome"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "fetcher_poll_cycle_duration_seconds",
            "Duration of one poll cycle of a source target.",
            ["source"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
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
            ["source"],
            registry=r,
        )
        self.last_success = Gauge(
            "fetcher_last_success_timestamp_seconds",
            "Unix time of the last successful poll of a source target.",
            ["source"],
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

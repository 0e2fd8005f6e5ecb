"""What the Deployment Dashboard shows, computed from the rows it received.

The dashboard is an append-only log reduced on read: its matrix shows, per (service, environment),
the row with the latest ``happened_at``; a deployment's state is likewise its latest row. Rows with
equal ``happened_at`` are an awkward case the contract leaves open: here the one that arrived last
wins (an append-only log read in order), which is why the fetcher delivers ties in lifecycle order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deploy_fetcher.model import DeployEvent, parse_timestamp

__all__ = ["Shown", "latest_by_deployment", "matrix"]


@dataclass(frozen=True)
class Shown:
    """One deployment's state as the dashboard shows it."""

    status: str
    happened_at: str
    service: str
    environment: str


def _rows(rows: Iterable[Mapping[str, Any] | DeployEvent]) -> list[Mapping[str, Any]]:
    return [r.contract_payload() if isinstance(r, DeployEvent) else r for r in rows]


def latest_by_deployment(rows: Iterable[Mapping[str, Any] | DeployEvent]) -> dict[str, Shown]:
    """Each deployment's latest row (by happened_at, the later arrival on a tie), in arrival order."""
    best: dict[str, tuple[Any, int, Mapping[str, Any]]] = {}
    for index, row in enumerate(_rows(rows)):
        key = (parse_timestamp(row["happened_at"]), index)
        current = best.get(row["deployment_id"])
        if current is None or key >= current[:2]:
            best[row["deployment_id"]] = (*key, row)
    return {
        deployment_id: Shown(row["status"], row["happened_at"], row["service"], row["environment"])
        for deployment_id, (_, _, row) in best.items()
    }


def matrix(rows: Iterable[Mapping[str, Any] | DeployEvent]) -> dict[tuple[str, str], str]:
    """The dashboard's matrix: the latest status per (service, environment)."""
    best: dict[tuple[str, str], tuple[Any, int, str]] = {}
    for index, row in enumerate(_rows(rows)):
        cell = (row["service"], row["environment"])
        key = (parse_timestamp(row["happened_at"]), index)
        if cell not in best or key >= best[cell][:2]:
            best[cell] = (*key, row["status"])
    return {cell: status for cell, (_, _, status) in best.items()}

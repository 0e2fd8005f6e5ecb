"""What goes on the dashboard's wire; pure functions, tested without HTTP."""

from __future__ import annotations

from typing import Any, Final

from deploy_fetcher.model import DeployEvent

__all__ = ["PRODUCT", "body", "headers"]

#: Named in ``X-Progress-Reporter`` so the dashboard can tell pushed events from pulled ones.
PRODUCT: Final = "deploy-fetcher"


def body(event: DeployEvent, *, run_number_type: str = "integer") -> dict[str, Any]:
    """The ingest payload: contract fields only (the dashboard rejects unknown ones with 422)."""
    return event.contract_payload(run_number_as_string=run_number_type == "string")


def headers(event: DeployEvent, api_key: str) -> dict[str, str]:
    """The ingest headers; the reporter names the CI system the event was read from."""
    reporter = f"{PRODUCT}/{event.provider}" if event.provider else PRODUCT
    return {
        "X-Api-Key": api_key,
        "Content-Type": "application/json",
        "X-Progress-Reporter": reporter,
    }

"""What goes on the dashboard's wire; pure functions, tested without HTTP.

Two revisions of the ingest contract differ in ``status``: the original one (seed 001) takes
``in-progress``, ``success`` and ``failure``; newer dashboards take the eight canonical statuses.
For the original one the statuses are folded into its three (:data:`THREE_STATUSES`):

* ``pending``, ``queued`` and ``waiting`` become ``in-progress``. The contract's ``in-progress`` is
  "the deployment has started and has not ended", posted "when it starts"; a deployment the CI system
  has created and queued, or holds for an approval, is in that state as the dashboard sees it. Leaving
  these out instead would hide exactly the deployments someone watches the dashboard for (stuck in a
  queue, waiting for a reviewer), and a deployment rejected at its approval would then appear out of
  nowhere as a failure. The price: the history drawer can show several ``in-progress`` rows for one
  deployment, one per state change on the CI side, each at its own time.
* ``cancelled`` and ``rejected`` become ``failure``: the contract's only terminal state for a change
  that did not ship. Without a terminal row the slot would stay ``in-progress`` for good.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from deploy_fetcher.model import DeployEvent, Status

__all__ = [
    "PRODUCT",
    "THREE_STATUSES",
    "StatusSet",
    "body",
    "headers",
    "names_field",
    "wire_status",
]

#: Named in ``X-Progress-Reporter`` so the dashboard can tell pushed events from pulled ones.
PRODUCT: Final = "deploy-fetcher"

#: Which statuses the dashboard takes: the eight canonical ones, or the original contract's three.
StatusSet = Literal["eight", "three"]

#: Each canonical status as the original contract (seed 001) spells it.
THREE_STATUSES: Final[Mapping[Status, Status]] = {
    Status.PENDING: Status.IN_PROGRESS,
    Status.QUEUED: Status.IN_PROGRESS,
    Status.WAITING: Status.IN_PROGRESS,
    Status.IN_PROGRESS: Status.IN_PROGRESS,
    Status.SUCCESS: Status.SUCCESS,
    Status.FAILURE: Status.FAILURE,
    Status.CANCELLED: Status.FAILURE,
    Status.REJECTED: Status.FAILURE,
}


def wire_status(status: Status, status_set: StatusSet) -> Status:
    """The status as a dashboard taking ``status_set`` is sent it."""
    return THREE_STATUSES[status] if status_set == "three" else status


def body(
    event: DeployEvent, *, run_number_type: str = "integer", status_set: StatusSet = "eight"
) -> dict[str, Any]:
    """The ingest payload: contract fields only (the dashboard rejects unknown ones with 422)."""
    payload = event.contract_payload(run_number_as_string=run_number_type == "string")
    payload["status"] = wire_status(event.status, status_set).value
    return payload


def headers(event: DeployEvent, api_key: str) -> dict[str, str]:
    """The ingest headers; the reporter names the CI system the event was read from."""
    reporter = f"{PRODUCT}/{event.provider}" if event.provider else PRODUCT
    return {
        "X-Api-Key": api_key,
        "Content-Type": "application/json",
        "X-Progress-Reporter": reporter,
    }


#: Keys under which an entry of a problem's ``errors[]`` may name its field. The contract says only
#: "an errors[] array", so the usual spellings are all read: ``field``/``name``/``property``/``param``
#: (a name), ``pointer`` (RFC 9457's JSON pointer, ``#/status``), ``path`` (``/status``, ``$.status``),
#: ``loc`` (a list ending in the name, as FastAPI writes it).
_NAMING_KEYS: Final = ("field", "name", "property", "param", "pointer", "path", "loc")


def _names(value: Any, field: str) -> bool:
    if isinstance(value, list) and value:
        return bool(value[-1] == field)
    if not isinstance(value, str):
        return False
    text = value.strip()
    for prefix in ("#/", "/", "$.", "body.", "#"):
        text = text.removeprefix(prefix)
    return text == field


def names_field(problem: bytes, field: str) -> bool:
    """Whether a 422 problem document's ``errors[]`` names ``field``.

    False when it is not JSON or is nested too deeply for the parser: the sink reads at most
    ``MAX_REASON_BYTES`` of an answer, and even those, all ``[``, raise RecursionError in
    ``json.loads``, which must not reach the delivery worker.
    """
    try:
        document = json.loads(problem)
    except (ValueError, RecursionError):
        return False
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return False
    return any(
        isinstance(error, dict) and any(_names(error.get(key), field) for key in _NAMING_KEYS)
        for error in errors
    )

"""The dashboard's state slot over HTTP: ``GET``/``PUT /api/fetcher/state/{slot}`` with ``X-Api-Key``.

The slot holds one opaque string of at most 8 KiB (``{"state": "…"}``); 404 means nothing was stored
yet. This module only moves that string: what it holds is the business of
:class:`~deploy_fetcher.sinks.dashboard.backend.DashboardStore`.
"""

from __future__ import annotations

import json
from typing import Final

import httpx

from deploy_fetcher.config import SinkConfig
from deploy_fetcher.sinks import Delivered, Retry
from deploy_fetcher.sinks.dashboard.backend import SlotError
from deploy_fetcher.sinks.dashboard.client import dashboard_client, dashboard_settings
from deploy_fetcher.sinks.http import (
    MAX_REASON_BYTES,
    classify,
    display_url,
    redact,
    secret_values,
    transport_failure,
)

__all__ = ["STATE_PATH", "HttpStateSlot"]

STATE_PATH: Final = "/api/fetcher/state/"
_PERMANENT: Final = frozenset({400, 401, 403, 404, 405, 409, 410, 413, 422})


class HttpStateSlot:
    """One named state slot of one dashboard (the ``state.dashboard_sink``'s URL and API key).

    ``transport`` is for tests; production uses httpx's default pool.
    """

    def __init__(
        self, config: SinkConfig, slot: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = dashboard_settings(config)
        self.path = STATE_PATH + slot
        self.description = f"the dashboard at {display_url(self.settings.url)} (state slot {slot})"
        self._secrets = secret_values(self.settings)
        self._timeout = self.settings.timeout.total_seconds()
        self._client = dashboard_client(
            self.settings, timeout=httpx.Timeout(self._timeout), transport=transport
        )

    def __repr__(self) -> str:
        return f"HttpStateSlot({self.description!r})"

    def _headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.settings.api_key.get_secret_value()}

    def _fail(self, action: str, reason: str, *, permanent: bool) -> SlotError:
        return SlotError(
            f"cannot {action} {self.description}: {redact(reason, self._secrets)}",
            permanent=permanent,
        )

    def load(self) -> str | None:
        """The stored string, or None when the dashboard has none (404)."""
        try:
            response = self._client.get(self.path, headers=self._headers())
        except httpx.TransportError as exc:
            reason = transport_failure(exc, timeout=self._timeout).reason
            raise self._fail("read the cursors from", reason, permanent=False) from None
        if response.status_code == 404:  # noqa: PLR2004 - "nothing stored yet"
            return None
        outcome = classify(response)
        if not isinstance(outcome, Delivered):
            permanent = not isinstance(outcome, Retry)
            raise self._fail("read the cursors from", outcome.reason, permanent=permanent)
        try:
            state = json.loads(response.content[: 64 * 1024]).get("state")
        except (ValueError, AttributeError):
            state = None
        if not isinstance(state, str):
            excerpt = response.content[:MAX_REASON_BYTES].decode("utf-8", errors="replace")
            raise self._fail(
                "read the cursors from",
                f'the answer is not {{"state": "<string>"}}: {excerpt}',
                permanent=True,
            )
        return state

    def save(self, state: str) -> None:
        """Replace the stored string; raises SlotError (``permanent`` for a refusal, not an outage)."""
        body = json.dumps({"state": state}, separators=(",", ":")).encode()
        headers = {**self._headers(), "Content-Type": "application/json"}
        try:
            response = self._client.put(self.path, headers=headers, content=body)
        except httpx.TransportError as exc:
            reason = transport_failure(exc, timeout=self._timeout).reason
            raise self._fail("store the cursors in", reason, permanent=False) from None
        outcome = classify(response)
        if isinstance(outcome, Delivered):
            return
        permanent = response.status_code in _PERMANENT
        raise self._fail("store the cursors in", outcome.reason, permanent=permanent)

    def close(self) -> None:
        """Close the keep-alive connection."""
        self._client.close()

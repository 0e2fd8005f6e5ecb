"""The service the ``json-list`` example provider reads, on 127.0.0.1 (for its tests and rig).

``GET /api/deployments?updated_after=…&per_page=…&page=…`` answers the deployments changed at or
after ``updated_after``, oldest change first, a page at a time with ``Link: rel="next"``; a token,
when set, is required as ``Authorization: Bearer``. Every answer carries the server's own clock as
``Date``. :meth:`JsonListServer.advance` moves that clock and starts and finishes deployments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from deploy_fetcher.emulators._server import EmulatorServer, Request, Response, json_response
from deploy_fetcher.model import format_rfc3339, parse_timestamp

TOKEN = "json-list-token"


class JsonListServer(EmulatorServer):
    """A list of deployments that change as the clock moves."""

    def __init__(self, *, token: str | None = TOKEN, start: datetime | None = None) -> None:
        super().__init__()
        self.token = token
        self.clock = start or datetime.now(UTC).replace(microsecond=0)
        self.items: dict[str, dict[str, Any]] = {}
        self.route("GET", "/api/deployments", self._list)

    def server_time(self) -> datetime:
        """The ``Date`` of every answer."""
        return self.clock

    def deploy(
        self, service: str, environment: str, *, status: str = "success", **extra: Any
    ) -> str:
        """A deployment changed now; returns its id."""
        item_id = extra.pop("id", f"d-{len(self.items) + 1}")
        self.items[item_id] = {
            "id": item_id,
            "service": service,
            "environment": environment,
            "status": status,
            "updated_at": format_rfc3339(self.clock),
            "version": extra.pop("version", "1.0.0"),
            "url": f"https://ci.example.com/runs/{item_id}",
            **extra,
        }
        return item_id

    def advance(self, seconds: float) -> None:
        """Move the clock; a new deployment starts, the one before it finishes."""
        self.clock += timedelta(seconds=seconds)
        running = [i for i, item in self.items.items() if item["status"] == "in-progress"]
        for item_id in running:
            self.items[item_id].update(status="success", updated_at=format_rfc3339(self.clock))
        self.deploy("api", "prod", status="in-progress")

    def _list(self, request: Request, _params: dict[str, str]) -> Response:
        if self.token and request.header("authorization") != f"Bearer {self.token}":
            return json_response({"message": "bad credentials"}, 401)
        after = parse_timestamp(request.arg("updated_after") or "1970-01-01T00:00:00Z")
        per_page, page = int(request.arg("per_page") or 100), int(request.arg("page") or 1)
        found = sorted(
            (i for i in self.items.values() if parse_timestamp(i["updated_at"]) >= after),
            key=lambda i: (i["updated_at"], i["id"]),
        )
        chunk = found[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(found):
            query = {"updated_after": format_rfc3339(after), "per_page": per_page, "page": page + 1}
            headers["Link"] = f'<{self.url("/api/deployments")}?{urlencode(query)}>; rel="next"'
        return json_response(chunk, headers=headers)

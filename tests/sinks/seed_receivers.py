"""Receivers written from the destinations' own documents, to hold each sink against its contract.

Each class below is built from one document alone, read as an outsider would read it: the Deployment
Dashboard's "Integrate your CI/CD" page (seed 001), Cloudlink's "CI Integration" page (seed 000),
CTO.ai's GitLab CI template page (seed 002) and the template it includes, and, for the webhook, the
receiver's side of ``docs/sinks.md``. Nothing here imports ``deploy_fetcher``: not the sinks' mapping,
not the emulators' validation. Where a document is silent the receiver takes the strict reading
(an unknown field is refused) and says so.

Every request is kept as an :class:`Arrival` (raw body, headers, the answer given), so a test shows
what arrived, field by field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = [
    "Arrival",
    "CloudlinkSeed000",
    "CtoAiSeed002",
    "DashboardSeed001",
    "SignedWebhook",
]

#: No request body a sink sends comes near this; a bigger one is refused unread.
MAX_BODY = 1 << 20


@dataclass
class Arrival:
    """One request as it arrived, and what the receiver answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    answer: Any = None

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """A header, by its name in any case."""
        return self.headers.get(name.lower())


Reply = tuple[int, dict[str, str], Any]


class _Receiver:
    """A threaded HTTP server on 127.0.0.1 that hands every request to :meth:`handle`."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, arrival: Arrival) -> Reply:
        raise NotImplementedError

    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self.send_error(413)
                    return
                arrival = Arrival(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                status, headers, answer = receiver.handle(arrival)
                arrival.status, arrival.answer = status, answer
                with receiver._lock:
                    receiver.arrivals.append(arrival)
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_HEAD = _serve  # noqa: N815 - http.server's names

            def log_message(self, *_args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def posted(self, path: str) -> list[Arrival]:
        """The POSTs that reached ``path``, in arrival order."""
        with self._lock:
            return [a for a in self.arrivals if a.method == "POST" and a.path == path]


def _bearer(arrival: Arrival, token: str) -> bool:
    given = (arrival.header("Authorization") or "").encode()
    return hmac.compare_digest(given, f"Bearer {token}".encode())


def _json_object(arrival: Arrival) -> dict[str, Any] | None:
    if "application/json" not in (arrival.header("Content-Type") or ""):
        return None
    try:
        body = json.loads(arrival.body)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# -- seed 001: the Deployment Dashboard ---------------------------------------------------------------
_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


class DashboardSeed001(_Receiver):
    """``POST /api/deployments`` as seed 001 writes it down, and nothing more.

    * ``X-Api-Key`` missing or invalid: 401.
    * The payload table: five required fields, ``status`` in-progress | success | failure,
      ``happened_at`` an RFC 3339 UTC timestamp, ``run_number`` an integer, ``parent_deployments`` a
      string array, the rest strings; an unknown field is refused. Any breach: 422,
      ``application/problem+json`` with an ``errors[]`` array. The seed does not say how an entry
      names its field: this receiver uses RFC 9457's own example shape (``{"pointer": "#/status",
      "detail": …}``), deliberately not the emulator's.
    * 201 with ``Location: /api/deployments/{id}``; append-only, a repeated POST is another row.
    """

    REQUIRED = ("deployment_id", "service", "environment", "status", "happened_at")
    OPTIONAL_STRINGS = ("version", "run_url", "actor", "ref", "sha")
    STATUSES = ("in-progress", "success", "failure")

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.rows: list[dict[str, Any]] = []

    def handle(self, arrival: Arrival) -> Reply:
        if (arrival.method, arrival.path) != ("POST", "/api/deployments"):
            return 404, {}, {"title": "Not Found"}
        given = (arrival.header("X-Api-Key") or "").encode()
        if not hmac.compare_digest(given, self.api_key.encode()):
            return 401, {}, {"title": "Unauthorized"}
        body = _json_object(arrival)
        errors = self._errors(body) if body is not None else [("", "not a JSON object")]
        if errors:
            problem = {
                "type": "about:blank",
                "title": "Unprocessable Entity",
                "status": 422,
                "errors": [{"pointer": f"#/{name}", "detail": text} for name, text in errors],
            }
            return 422, {"Content-Type": "application/problem+json"}, problem
        assert body is not None
        with self._lock:
            row = {"id": len(self.rows) + 1, **body}
            self.rows.append(row)
        return 201, {"Location": f"/api/deployments/{row['id']}"}, row

    def _errors(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        known = {*self.REQUIRED, *self.OPTIONAL_STRINGS, "run_number", "parent_deployments"}
        errors = [(name, "unknown field") for name in body if name not in known]
        errors += [(name, "required") for name in self.REQUIRED if name not in body]
        for name in ("deployment_id", "service", "environment", *self.OPTIONAL_STRINGS):
            if name in body and not isinstance(body[name], str):
                errors.append((name, "must be a string"))
        if "status" in body and body["status"] not in self.STATUSES:
            errors.append(("status", "must be in-progress, success or failure"))
        stamp = body.get("happened_at")
        if "happened_at" in body and not (
            isinstance(stamp, str) and _RFC3339_UTC.match(stamp) and _parses(stamp)
        ):
            errors.append(("happened_at", "must be an RFC 3339 UTC timestamp"))
        number = body.get("run_number")
        if "run_number" in body and (not isinstance(number, int) or isinstance(number, bool)):
            errors.append(("run_number", "must be an integer"))
        parents = body.get("parent_deployments")
        if "parent_deployments" in body and not (
            isinstance(parents, list) and all(isinstance(p, str) for p in parents)
        ):
            errors.append(("parent_deployments", "must be an array of strings"))
        return errors

    def matrix(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The latest row by ``happened_at`` per (service, environment), as the dashboard shows it."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        with self._lock:
            rows = list(self.rows)
        for row in rows:
            key = (row["service"], row["environment"])
            if key not in latest or _when(row) >= _when(latest[key]):
                latest[key] = row
        return latest


def _parses(stamp: str) -> bool:
    try:
        _when({"happened_at": stamp})
    except ValueError:
        return False
    return True


def _when(row: dict[str, Any]) -> datetime:
    text = str(row["happened_at"]).replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # fromisoformat takes at most six fractional digits
        digits, zone = rest[:-6], rest[-6:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    parsed = datetime.fromisoformat(text)
    if parsed.utcoffset() != timedelta(0):
        raise ValueError(text)
    return parsed


# -- seed 000: Cloudlink ------------------------------------------------------------------------------
class CloudlinkSeed000(_Receiver):
    """``POST {api}/deploys`` with ``Authorization: Bearer``, seed 000's field table.

    ``service`` is required; ``version``, ``environment`` (default ``production``) and ``source`` are
    optional strings, ``metadata`` an optional object. The seed lists no other field and no status
    codes: an unknown field is refused with 400, a missing key with 401, a record is answered 201.
    ``service`` "must match Cost Explorer service name, e.g. Amazon EC2": Cost Explorer's names
    start with ``Amazon`` or ``AWS``, which :meth:`records` reports for each deploy.
    """

    FIELDS = ("service", "version", "environment", "source", "metadata")

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key

    def handle(self, arrival: Arrival) -> Reply:
        if arrival.method == "HEAD":
            return 200, {}, None
        if (arrival.method, arrival.path) != ("POST", "/deploys"):
            return 404, {}, {"error": "not found"}
        if not _bearer(arrival, self.api_key):
            return 401, {}, {"error": "invalid API key"}
        body = _json_object(arrival)
        if body is None:
            return 400, {}, {"error": "JSON body required"}
        unknown = sorted(set(body) - set(self.FIELDS))
        wrong = [
            name
            for name in ("service", "version", "environment", "source")
            if name in body and not isinstance(body[name], str)
        ]
        if "metadata" in body and not isinstance(body["metadata"], dict):
            wrong.append("metadata")
        if unknown or wrong or not body.get("service"):
            return 400, {}, {"error": "invalid deploy", "unknown": unknown, "wrong": wrong}
        return 201, {}, {"recorded": True}

    def records(self) -> list[dict[str, Any]]:
        """Each accepted deploy as Cloudlink records it (environment defaulted)."""
        out = []
        for arrival in self.posted("/deploys"):
            if arrival.status != 201:
                continue
            body = arrival.json()
            out.append(
                {
                    **body,
                    "environment": body.get("environment", "production"),
                    "cost_explorer_name": body["service"].startswith(("Amazon ", "AWS ")),
                }
            )
        return out


# -- seed 002: CTO.ai ---------------------------------------------------------------------------------
class CtoAiSeed002(_Receiver):
    """What CTO.ai's GitLab template (the seed's ``include``) sends, as the events API receives it.

    The template (cto-ai/events-gitlab-template ``template.yml`` at tag v0.0.2, commit
    99453e0bb24a925b542c2f6fb63e58514ff4930e) posts to ``https://events.cto.ai`` (path ``/``) with
    ``Authorization: Bearer $TOKEN``, ``Content-Type: application/json`` and ``x-ops-mechanism``, a
    body of ``repo``, ``branch``, ``commit``, ``image``, ``environment``, ``event_name``,
    ``event_action``, ``team_id`` and ``meta: {user}``. The seed: ``event_name`` "must always be
    deployment"; ``event_action`` is a Deployment Lifecycle State (success and failure in its
    example; the Event Types page adds started, progressing, blocked); ``branch`` is the branch
    (``CI_COMMIT_BRANCH``, which GitLab leaves empty in a tag pipeline). A body field beyond the
    template's is refused (400); ``meta`` is free-form.
    """

    FIELDS = (
        "repo",
        "branch",
        "commit",
        "image",
        "environment",
        "event_name",
        "event_action",
        "team_id",
        "meta",
    )
    ACTIONS = ("started", "progressing", "blocked", "success", "failure")

    def __init__(self, token: str, team_id: str) -> None:
        super().__init__()
        self.token = token
        self.team_id = team_id

    def handle(self, arrival: Arrival) -> Reply:
        if arrival.method == "HEAD":
            return 200, {}, None
        if (arrival.method, arrival.path) != ("POST", "/"):
            return 404, {}, {"message": "not found"}
        if not _bearer(arrival, self.token):
            return 401, {}, {"message": "unauthorized"}
        body = _json_object(arrival)
        if body is None:
            return 400, {}, {"message": "JSON body required"}
        problems = [f"unknown field {name}" for name in body if name not in self.FIELDS]
        problems += [f"missing {name}" for name in self.FIELDS if name not in body]
        if body.get("event_name") != "deployment":
            problems.append("event_name must be deployment")
        if body.get("event_action") not in self.ACTIONS:
            problems.append("event_action is not a deployment lifecycle state")
        if body.get("team_id") != self.team_id:
            problems.append("team_id is not this team's")
        meta = body.get("meta")
        if not isinstance(meta, dict) or "user" not in meta:
            problems.append("meta must be an object with a user")
        if problems:
            return 400, {}, {"message": "; ".join(problems)}
        return 200, {}, {"message": "event written"}


# -- the webhook, as docs/sinks.md tells a receiver to check it ----------------------------------------
class SignedWebhook(_Receiver):
    """A receiver that verifies ``X-Deploy-Fetcher-Signature`` the way ``docs/sinks.md`` says.

    Raw body bytes; the header split on ``,`` and each part on the first ``=``; ``t`` and every
    ``v1``; HMAC-SHA256 of ``t + "." + body`` as lowercase hex compared in constant time; ``t`` no more
    than 5 minutes from the receiver's clock. A bad signature is answered 401 and not accepted. It
    also drops a repeated ``X-Deploy-Fetcher-Event-Id``, as the documentation suggests.
    """

    def __init__(self, secret: bytes, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.secret = secret
        self.clock = clock
        self.accepted: list[dict[str, Any]] = []
        self.seen_ids: set[str] = set()

    def verify(self, body: bytes, header: str) -> bool:
        parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
        stamps = [value for key, value in parts if key.strip() == "t"]
        macs = [value for key, value in parts if key.strip() == "v1"]
        if not stamps or not stamps[0].isdigit() or abs(self.clock() - int(stamps[0])) > 300:
            return False
        signed = stamps[0].encode() + b"." + body
        expected = hmac.new(self.secret, signed, hashlib.sha256).hexdigest()
        return any(hmac.compare_digest(expected, mac) for mac in macs)

    def handle(self, arrival: Arrival) -> Reply:
        if arrival.method == "HEAD":
            return 200, {}, None
        if arrival.method != "POST":
            return 405, {}, None
        if not self.verify(arrival.body, arrival.header("X-Deploy-Fetcher-Signature") or ""):
            return 401, {}, {"error": "bad signature"}
        event_id = arrival.header("X-Deploy-Fetcher-Event-Id") or ""
        with self._lock:
            if event_id in self.seen_ids:
                return 200, {}, {"duplicate": True}
            self.seen_ids.add(event_id)
            self.accepted.append(json.loads(arrival.body))
        return 204, {}, None

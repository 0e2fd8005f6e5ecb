"""The inbound webhook endpoint: ``POST /hooks/{github,gitlab,azure-devops}`` → poll that target now.

Every request is hostile until proven otherwise, and costs little until then:

* at most :data:`MAX_CONCURRENT` requests are read at once (more get ``503`` at once);
* the body must announce its length, at most ``max_body`` bytes (``411`` / ``413`` before reading),
  and arrive whole within ``read_timeout`` (``408``);
* the provider's signature, token or basic authentication is checked on the raw body before it is
  parsed (``401`` without saying why);
* an authentic event names a repository or project; each configured target of that name is nudged
  (:meth:`~deploy_fetcher.scheduler.Scheduler.nudge`), which polls it now or throttles the nudge.

The answer is ``202`` for an authentic event, whatever it led to (``200`` for GitHub's ``ping``), so
a CI system does not retry or disable the hook over an event we merely do not watch. Rejections are
logged at most once a minute per provider and reason, with how many were not logged.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

import structlog

from deploy_fetcher.config import NudgesConfig
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.nudges._identify import Ignored, Named, identify
from deploy_fetcher.nudges._verify import Verifier, verifiers

__all__ = ["MAX_CONCURRENT", "PREFIX", "NudgeApp", "Nudger"]

_log = structlog.get_logger(__name__)

#: Where the endpoint is mounted on the server.
PREFIX: Final = "/hooks/"
#: Requests read at once; webhooks arrive one by one, a crowd is an attack or a storm.
MAX_CONCURRENT: Final = 8
_CHUNK: Final = 64 * 1024
_LOG_EVERY: Final = 60.0
#: Precedence of per-target outcomes when one event names several targets.
_RANK: Final = ("polled", "queued", "deferred", "throttled", "elsewhere", "unknown_target")

StartResponse = Callable[..., Any]


class Nudger(Protocol):
    """What the endpoint needs from the scheduler."""

    def find_targets(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """``(source, target)`` pairs whose target is one of ``names``."""
        ...

    def nudge(self, source_name: str, target: str, *, min_gap: float) -> str:
        """Poll one target soon: ``polled``, ``queued``, ``deferred``, ``throttled``, ``elsewhere``, ``unknown_target``."""
        ...


@dataclass
class _Reporter:
    """Logs a rejection once per minute per (provider, reason), counting the ones in between."""

    clock: Callable[[], float] = time.monotonic
    _last: dict[tuple[str, str], float] = field(default_factory=dict)
    _quiet: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rejected(self, provider: str, reason: str, peer: str) -> None:
        key = (provider, reason)
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < _LOG_EVERY:
                self._quiet[key] = self._quiet.get(key, 0) + 1
                return
            self._last[key] = now
            unlogged = self._quiet.pop(key, 0)
        _log.warning(
            "nudge.rejected", provider=provider, reason=reason, peer=peer, not_logged=unlogged
        )


class _Refused(Exception):
    def __init__(self, status: str, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason


class NudgeApp:
    """The WSGI application behind ``/hooks/`` (mounted on the health server)."""

    def __init__(
        self,
        config: NudgesConfig,
        nudger: Nudger,
        metrics: Metrics,
        *,
        provider_of: Callable[[str], str | None],
        accepts: Callable[[str, str, Named], bool] = lambda _source, _target, _named: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.nudger = nudger
        self.metrics = metrics
        #: The provider name of a source (``github`` …), None for an unknown source.
        self.provider_of = provider_of
        #: Whether a source's target wants an event (a source reading only some pipelines).
        self.accepts = accepts
        self._clock = clock
        self._verifiers: dict[str, Verifier] = verifiers(config)
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._reporter = _Reporter(clock)

    @property
    def providers(self) -> list[str]:
        """Providers nudges are accepted from."""
        return sorted(self._verifiers)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request (see the module docstring)."""
        provider = environ.get("PATH_INFO", "").removeprefix(PREFIX).strip("/")
        verify = self._verifiers.get(provider)
        if verify is None:
            return _answer(start_response, "404 Not Found", {"error": "not found"})
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(
                start_response,
                "405 Method Not Allowed",
                {"error": "POST only"},
                [("Allow", "POST")],
            )
        if not self._slots.acquire(blocking=False):
            self._count(provider, "busy")
            return _answer(
                start_response, "503 Service Unavailable", {"error": "busy"}, [("Retry-After", "5")]
            )
        try:
            status, body = self._handle(provider, verify, environ)
        except _Refused as refused:
            self._count(provider, refused.outcome)
            self._reporter.rejected(provider, refused.reason, environ.get("REMOTE_ADDR", "?"))
            return _answer(start_response, refused.status, {"error": refused.reason})
        finally:
            self._slots.release()
        return _answer(start_response, status, body)

    # -- one request -------------------------------------------------------------------------------
    def _handle(
        self, provider: str, verify: Verifier, environ: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        raw = self._read(environ)
        headers = _headers(environ)
        if not verify(headers, raw):
            raise _Refused("401 Unauthorized", "unauthorized", "not authenticated")
        payload = _parse(raw, environ.get("CONTENT_TYPE", ""))
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items() if v}
        found = identify(provider, headers, payload, query)
        if isinstance(found, Ignored):
            self._count(provider, "ignored")
            _log.debug("nudge.ignored", provider=provider, reason=found.reason)
            ping = provider == "github" and headers.get("x-github-event") == "ping"
            return ("200 OK" if ping else "202 Accepted"), {"nudged": 0, "ignored": found.reason}
        targets = [
            (source, target)
            for source, target in self.nudger.find_targets(found.names)
            if self.provider_of(source) == provider and self.accepts(source, target, found)
        ]
        gap = self.config.min_gap.total_seconds()
        outcomes = [self.nudger.nudge(source, target, min_gap=gap) for source, target in targets]
        outcome = next((o for o in _RANK if o in outcomes), "unknown_target")
        self._count(provider, "polled" if outcome == "queued" else outcome)
        nudged = sum(1 for o in outcomes if o in {"polled", "queued", "deferred"})
        _log.debug(
            "nudge.received",
            provider=provider,
            targets=len(targets),
            nudged=nudged,
            outcome=outcome,
        )
        return "202 Accepted", {"nudged": nudged, "outcome": outcome}

    def _read(self, environ: dict[str, Any]) -> bytes:
        """The whole body, within the size and time limits."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            raise _Refused("411 Length Required", "invalid", "no Content-Length") from None
        if length < 0:
            raise _Refused("400 Bad Request", "invalid", "bad Content-Length")
        if length > self.config.max_body:
            raise _Refused("413 Content Too Large", "too_large", "body too large")
        stream = environ["wsgi.input"]
        # ``read1`` returns what has arrived (a plain ``read(n)`` waits for all ``n`` bytes, which a
        # trickling client would stretch past any deadline checked between reads).
        read = getattr(stream, "read1", stream.read)
        deadline = self._clock() + self.config.read_timeout.total_seconds()
        chunks: list[bytes] = []
        left = length
        while left > 0:
            if self._clock() > deadline:
                raise _Refused("408 Request Timeout", "invalid", "body too slow")
            try:
                chunk = read(min(left, _CHUNK))
            except OSError:  # the server's socket timeout, or the peer went away
                raise _Refused("408 Request Timeout", "invalid", "body not received") from None
            if not chunk:
                raise _Refused("400 Bad Request", "invalid", "body shorter than Content-Length")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _count(self, provider: str, outcome: str) -> None:
        self.metrics.nudges.labels(provider, outcome).inc()


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """HTTP headers by lower-case name (``HTTP_X_HUB_SIGNATURE_256`` → ``x-hub-signature-256``)."""
    return {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }


def _parse(raw: bytes, content_type: str) -> Any:
    """The event's JSON: the body, or GitHub's ``payload`` form field."""
    try:
        if content_type.partition(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            fields = parse_qs(raw.decode("utf-8"), max_num_fields=16)
            return json.loads(fields.get("payload", [""])[0])
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Refused("400 Bad Request", "invalid", "the body is not JSON") from None


def _answer(
    start_response: StartResponse,
    status: str,
    body: dict[str, Any],
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            *(headers or []),
        ],
    )
    return [data]

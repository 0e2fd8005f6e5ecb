"""Structured logging: JSON lines when not on a TTY, a readable console otherwise; secrets redacted.

A problem with one item of a CI answer (malformed, dated in the future) is logged once a day, not
once per cycle: the item is read again every cycle until it leaves the window.

Redaction works two ways, because a secret can leak through a key (``api_key=...``) or inside any text
(an exception message quoting a URL with a token): values under sensitive keys are masked, and every
secret of the one registry (:mod:`deploy_fetcher.redaction`) is replaced wherever it appears in a string.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, Final

import structlog
from pydantic import SecretStr

from deploy_fetcher.redaction import (
    MASK,
    redact,
    register_secret,
    register_secrets_in,
    secret_forms,
)

__all__ = [
    "configure_logging",
    "redact_text",
    "register_secret",
    "register_secrets_in",
    "secret_forms",
]

# Whole words at the end of a key (``access_token``, ``pat``), so ``path``, ``dispatch`` or
# ``token_type`` stay readable.
_SENSITIVE_KEY = re.compile(
    r"(^|[_-])(token|secret|password|passwd|pat|credentials?|authorization|cookie)$"
    r"|api[_-]?key|private[_-]?key",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """Replace every registered secret inside ``text`` (see :mod:`deploy_fetcher.redaction`)."""
    return redact(text)


def _redact_value(key: str, value: Any) -> Any:  # noqa: PLR0911 - one branch per type
    if isinstance(value, SecretStr):
        return MASK
    if _SENSITIVE_KEY.search(key) and isinstance(value, str | bytes) and value:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


#: Events about one item of a CI answer (``github.malformed_item``, ``gitlab.future_item`` …): the
#: same item comes back every cycle until it ages out of the window, so it is logged once a day.
_ITEM_EVENT = re.compile(r"\.(malformed_\w+|future_item|invalid_event)$")
_REPEAT_WINDOW: Final = 24 * 3600.0
_REMEMBERED: Final = 10_000


class _OncePerItem:
    """A processor that drops an item event identical to one logged within the window.

    Identity is the event's name and every field but the time; at most :data:`_REMEMBERED` items
    are remembered (the oldest forgotten first), so memory stays bounded whatever a server sends.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._clock = clock

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
        name = event_dict.get("event")
        if not isinstance(name, str) or not _ITEM_EVENT.search(name):
            return event_dict
        identity = repr(sorted((k, repr(v)) for k, v in event_dict.items() if k != "timestamp"))
        now = self._clock()
        with self._lock:
            last = self._seen.pop(identity, None)
            if last is not None and now - last < _REPEAT_WINDOW:
                self._seen[identity] = last
                raise structlog.DropEvent
            self._seen[identity] = now
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
        return event_dict


_once_per_item = _OncePerItem()


def _redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def _renderer(json_lines: bool) -> Any:
    if json_lines:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())


def _processors(json_lines: bool) -> Iterable[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        _once_per_item,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact,
        _renderer(json_lines),
    ]


#: The name of the standard-library handler this module installs (replaced, never stacked).
_HANDLER = "deploy-fetcher"


def _library_handler(json_lines: bool) -> logging.Handler:
    """A handler that writes libraries' records as our own lines: same format, secrets masked.

    Without it a library's warning (APScheduler's missed runs, urllib3's retries, which quote URLs)
    would be a plain-text line in a JSON-lines stream, and would bypass the redaction every other
    line goes through.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redact,
                _renderer(json_lines),
            ],
        )
    )
    return handler


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Set up structlog for the process: to stderr, JSON unless ``fmt`` is console or stderr is a TTY."""
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=list(_processors(json_lines)),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries (urllib3, httpx, apscheduler) log through the standard library: keep them quiet
    # and route what passes through the same stream, in the same format.
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(handler)
    root.addHandler(_library_handler(json_lines))
    root.setLevel(max(numeric, logging.WARNING))
    for noisy in ("apscheduler", "httpx", "httpcore", "urllib3", "github", "gitlab"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

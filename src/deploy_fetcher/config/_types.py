"""Value types shared by every configuration model: durations and URLs."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Final, get_args
from urllib.parse import urlsplit

from pydantic import BeforeValidator, PlainSerializer, SecretStr, WithJsonSchema

__all__ = [
    "DURATION_JSON_SCHEMA",
    "MAX_DURATION",
    "Duration",
    "Url",
    "check_postgres_url",
    "check_url",
    "format_duration",
    "is_secret_annotation",
    "parse_duration",
    "postgres_hosts",
    "quote_value",
]

_UNITS: Final = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
#: Longer is certainly a typo (and would overflow ``timedelta`` soon after).
MAX_DURATION: Final = timedelta(days=100 * 365)
_SHOWN: Final = 40


def quote_value(value: Any) -> str:
    """A value as error messages quote it: its repr, cut short (a whole YAML list is no help).

    The loader redacts secrets from messages by looking for exactly this form.
    """
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "a number with thousands of digits"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _bounded(seconds: float, value: Any) -> timedelta:
    # Compared before any conversion: an int beyond float range must not overflow on the way.
    if isinstance(seconds, float) and math.isnan(seconds):
        msg = f"not a duration: {quote_value(value)}"
        raise ValueError(msg)
    if seconds < 0:
        msg = f"a duration cannot be negative: {quote_value(value)}"
        raise ValueError(msg)
    if seconds > MAX_DURATION.total_seconds():
        msg = f"a duration cannot be longer than 100 years: {quote_value(value)}"
        raise ValueError(msg)
    return timedelta(seconds=seconds)


def parse_duration(value: Any) -> timedelta:
    """Parse ``30s``, ``5m``, ``1h30m``, ``7d`` (or a number of seconds) into a timedelta.

    Anything else is refused loudly: a typo must never fall back to a default.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        msg = f"not a duration: {quote_value(value)}"
        raise ValueError(msg)  # noqa: TRY004 - pydantic wants ValueError to report it
    if isinstance(value, int | float):
        return _bounded(value, value)
    if not isinstance(value, str):
        msg = f"not a duration: {quote_value(value)}"
        raise ValueError(msg)  # noqa: TRY004
    text = value.strip().lower().replace(" ", "")
    if not text:
        msg = "empty duration"
        raise ValueError(msg)
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        msg = f"not a duration: {quote_value(value)} (use e.g. 30s, 5m, 2h, 7d)"
        raise ValueError(msg)
    return _bounded(seconds, value)


def format_duration(value: timedelta) -> str:
    """Format a timedelta back into the shortest config syntax (``90s`` → ``1m30s``)."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    if total < 1:
        return f"{round(total * 1000)}ms"
    out = ""
    rest = int(total)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


#: What editors are told a duration looks like (the JSON Schema of the configuration file).
DURATION_JSON_SCHEMA: Final = {
    "anyOf": [
        {
            "type": "string",
            "pattern": r"^\s*([0-9]+(\.[0-9]+)?\s*([mM][sS]|[sSmMhHdDwW])\s*)+$",
            "examples": ["500ms", "30s", "5m", "2h", "7d", "1h30m"],
        },
        {"type": "number", "minimum": 0},
    ]
}

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(DURATION_JSON_SCHEMA),
]


def check_url(value: Any) -> str:
    """Accept an absolute ``http://`` or ``https://`` URL and return it exactly as written.

    The text is kept rather than normalised (no trailing slash added or removed) because adapters join
    API paths onto it and must get what the admin wrote. Credentials inside the URL are refused: URLs
    end up in logs and error messages, secrets must not. The value never appears in the error, for the
    same reason.
    """
    if not isinstance(value, str):
        msg = "not an http(s) URL"
        raise ValueError(msg)  # noqa: TRY004 - pydantic wants ValueError to report it
    text = value.strip()
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if (
        not port_ok
        or parts.scheme.lower() not in {"http", "https"}
        or not parts.hostname
        or any(char.isspace() or not char.isprintable() for char in text)
    ):
        msg = "not an http(s) URL"
        raise ValueError(msg)
    if parts.username is not None or parts.password is not None:
        msg = "credentials inside a URL are not allowed (they would end up in logs); use the token key"
        raise ValueError(msg)
    return text


#: An absolute http(s) URL, kept as the text the admin wrote (adapters append API paths to it).
Url = Annotated[str, BeforeValidator(check_url)]


def is_secret_annotation(annotation: Any) -> bool:
    """Whether a field's type holds a ``SecretStr`` (``SecretStr``, ``SecretStr | None``, …).

    Secret fields get ``<name>_file`` support, are left out of digests and are scrubbed from errors.
    """
    if annotation is SecretStr:
        return True
    return any(is_secret_annotation(arg) for arg in get_args(annotation))


#: The highest TCP port.
_MAX_PORT: Final = 65535


def postgres_hosts(url: str) -> list[tuple[str, int | None]]:
    """The ``(host, port)`` pairs of a PostgreSQL URL, in order; ValueError when one is malformed.

    libpq takes several hosts in one URL (``postgresql://u@db-1:5432,db-2:5432/app``, tried in
    turn, with ``target_session_attrs`` choosing the primary); :func:`urllib.parse.urlsplit` reads
    that netloc as one host with a bad port, so the hosts are split here. An IPv6 address comes in
    brackets. A URL without a host (a Unix socket) gives ``[]``.
    """
    netloc = urlsplit(url.strip()).netloc.rpartition("@")[2]
    if not netloc:
        return []
    hosts: list[tuple[str, int | None]] = []
    for item in netloc.split(","):
        if item.startswith("["):
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                msg = f"bad IPv6 host {item!r}"
                raise ValueError(msg)
            port_text = rest[1:] if rest else ""
        else:
            host, _, port_text = item.partition(":")
        if port_text and not (port_text.isdigit() and 0 < int(port_text) <= _MAX_PORT):
            msg = f"bad port {port_text!r}"
            raise ValueError(msg)
        hosts.append((host, int(port_text) if port_text else None))
    return hosts


def check_postgres_url(text: str) -> str:
    """Accept a PostgreSQL connection URL (``postgresql://`` or ``postgres://``) and return it as given.

    Only the form is checked (libpq reads the rest, and says what it dislikes when it connects);
    several hosts are accepted, as libpq does (:func:`postgres_hosts`). The value never appears in
    the error: it usually carries a password.
    """
    value = text.strip()
    try:
        parts = urlsplit(value)
        postgres_hosts(value)
        form_ok = True
    except ValueError:
        form_ok = False
        parts = urlsplit("")
    if (
        not form_ok
        or parts.scheme.lower() not in {"postgresql", "postgres"}
        or any(char.isspace() or not char.isprintable() for char in value)
    ):
        msg = "not a PostgreSQL URL (postgresql://user:password@host:5432/dbname)"
        raise ValueError(msg)
    return value

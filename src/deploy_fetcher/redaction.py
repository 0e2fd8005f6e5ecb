"""One registry of secrets, and one way to mask them in any text that leaves the process.

A credential can leak through any output: a log line, the CLI, ``/readyz``, an exception message, a
dead letter's reason. A server may echo what it received (proxies put the ``Authorization`` header
in their error pages), so masking the configured values is not enough: every form a credential takes
at run time is registered *where it is created* — the Basic header built from a personal access
token, a bearer token re-read from its file, a GitHub App's installation token, a sink's computed
header, a database password — and every output path masks them all:

* logs: the structlog processor and the standard-library handler of :mod:`deploy_fetcher._logging`;
* exceptions: :class:`~deploy_fetcher.errors.FetcherError` masks its own text;
* the CLI: its standard output and error streams are wrapped in :class:`RedactingWriter`;
* readiness: every problem ``/readyz`` serves goes through :func:`redact`.

Text taken from a server (an error body) becomes an :func:`excerpt`: one line, cut short, masked.

A plug-in calls :func:`register_secret` for any credential it derives; nothing else is needed.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import IO, Any, Final
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, SecretStr

__all__ = [
    "MASK",
    "MAX_EXCERPT",
    "MIN_SECRET_LENGTH",
    "RedactingWriter",
    "dsn_passwords",
    "excerpt",
    "redact",
    "register_secret",
    "register_secrets_in",
    "secret_forms",
]

MASK: Final = "***"
#: Shorter values would mask innocent substrings everywhere.
MIN_SECRET_LENGTH: Final = 4
#: The longest piece of a server's text kept in a message (enough to name the problem).
MAX_EXCERPT: Final = 300

#: The schemes of a PostgreSQL URL: only its passwords are secret, not where the database is.
_DSN_SCHEMES: Final = ("postgresql://", "postgres://")
#: Query parameters of such a URL that carry a password (libpq takes both there).
_DSN_PASSWORDS: Final = frozenset({"password", "sslpassword"})

_secrets: set[str] = set()
_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None


def dsn_passwords(url: str) -> list[str]:
    """The passwords in a PostgreSQL URL (after ``user:``, and ``?password=``), as written and decoded."""
    try:
        parts = urlsplit(url.strip())
        found = [parts.password] if parts.password else []
    except ValueError:
        return [url]  # unreadable: the whole text is the only safe guess
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if unquote(key).lower() in _DSN_PASSWORDS and value:
            found.append(value)
    return list(dict.fromkeys(form for raw in found for form in (raw, unquote(raw))))


def secret_forms(value: str) -> list[str]:
    """The texts that give a secret away, each to be masked.

    The value itself; for a header value with a scheme (``Bearer abc…``, ``Basic …``), the
    credential after it, which a server may echo alone; for a URL with a password, the password;
    and each as it appears inside a URL's query or a JSON string, where a server quoting the request
    would put it. A PostgreSQL URL is the exception: its passwords alone are masked, so messages
    still say which database (a URL without a password masks nothing).
    """
    if value.strip().lower().startswith(_DSN_SCHEMES):
        return _encoded_forms(dsn_passwords(value))
    forms = [value]
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    if scheme and len(credential) >= MIN_SECRET_LENGTH:
        forms.append(credential)
    # A URL with a password in it (a database DSN): a driver's error may quote the password alone.
    if "://" in value and "@" in value:
        try:
            password = urlsplit(value.strip()).password
        except ValueError:
            password = None
        if password:
            forms += [password, unquote(password)]
    return _encoded_forms(forms)


def _encoded_forms(forms: list[str]) -> list[str]:
    """Each of ``forms`` also as a URL's query and a JSON string would carry it; short ones dropped."""
    encoded = [*forms]
    for form in forms:
        encoded.append(quote(form, safe=""))
        encoded.append(json.dumps(form)[1:-1])
    return list(dict.fromkeys(form for form in encoded if len(form) >= MIN_SECRET_LENGTH))


def register_secret(value: str | SecretStr | None) -> None:
    """Mask ``value`` (and its other forms) in every output from now on.

    Call it where a credential is created or read. Values shorter than
    :data:`MIN_SECRET_LENGTH` are ignored: masking them would garble innocent text.
    """
    global _pattern  # noqa: PLW0603 - one process-wide registry is the point
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value:
        return
    forms = secret_forms(value)
    with _lock:
        if all(form in _secrets for form in forms):
            return
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)  # longest first: no tail of one is left
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_secrets_in(obj: Any) -> None:
    """Register every ``SecretStr`` found in a (nested) pydantic model, list or dict."""
    if isinstance(obj, SecretStr):
        register_secret(obj)
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            register_secrets_in(getattr(obj, name))
    elif isinstance(obj, dict):
        for value in obj.values():
            register_secrets_in(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            register_secrets_in(value)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered secret (and each of ``extra``) replaced by :data:`MASK`."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for secret in sorted({s for s in extra if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_SPACES = re.compile(r"\s+")
#: How much of a text is masked before it is cut (a secret inside it is masked whole).
_EXCERPT_WINDOW: Final = 64 * 1024


def excerpt(body: bytes | str, limit: int = MAX_EXCERPT) -> str:
    """A server's text fit for a message: one line, short, every secret masked.

    Control characters become spaces, runs of space one space; past ``limit`` characters the text
    is cut and ``…`` marks the cut. Masking happens before the cut, so a secret straddling the limit cannot leave a readable head.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    window = text[:_EXCERPT_WINDOW]
    flat = _SPACES.sub(" ", _CONTROL.sub(" ", redact(window))).strip()
    if len(flat) <= limit and len(window) == len(text):
        return flat
    return flat[: limit - 1].rstrip() + "…"


class RedactingWriter:
    """A text stream that masks secrets in what is written to it, a whole line at a time.

    Lines are held until their newline (or a flush), so a secret written in two pieces is still
    masked. Everything else (``isatty``, ``fileno``, ``encoding``) is the wrapped stream's.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        """Hold ``text``; write every complete line, masked."""
        with self._lock:
            self._pending += text
            head, sep, tail = self._pending.rpartition("\n")
            if sep:
                self._pending = tail
                self.stream.write(redact(head + sep))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Write what is held (masked) and flush the wrapped stream."""
        with self._lock:
            pending, self._pending = self._pending, ""
            if pending:
                self.stream.write(redact(pending))
        self.stream.flush()

    def isatty(self) -> bool:
        """Whether the wrapped stream is a terminal (rich and prompts ask)."""
        return self.stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

"""The two credentials Azure DevOps accepts from a poller, as ``Authorization`` header values.

A PAT is static for the life of the process. An Entra ID token (workload identity, a sidecar that
refreshes a file) expires within the hour, so it is read from its file again whenever the file
changes — checked with one ``stat`` per request, which costs nothing next to an HTTP round trip.
Neither class ever shows the secret in ``repr`` or in an error message, and each registers every
form it sends (the PAT, the Basic header built from it, each token read) for redaction.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Protocol

from deploy_fetcher.errors import AuthError
from deploy_fetcher.redaction import register_secret

__all__ = ["BearerFileAuth", "Credential", "PatAuth"]


class Credential(Protocol):
    """Produces the ``Authorization`` header; ``refresh`` is called once after a 401."""

    def header(self) -> str:
        """The header value to send now."""
        ...

    def refresh(self) -> bool:
        """Reload the secret; True when it changed (so retrying the request makes sense)."""
        ...


class PatAuth:
    """A personal access token, sent as Basic auth with an empty user name."""

    def __init__(self, pat: str) -> None:
        if not pat:
            msg = "the PAT is empty"
            raise AuthError(msg)
        self._header = "Basic " + base64.b64encode(f":{pat}".encode()).decode("ascii")
        register_secret(pat)
        register_secret(self._header)  # a proxy echoes the header, not the PAT

    def header(self) -> str:
        """The Basic header (computed once)."""
        return self._header

    def refresh(self) -> bool:
        """A PAT cannot change under us."""
        return False

    def __repr__(self) -> str:
        return "PatAuth(***)"


class BearerFileAuth:
    """A bearer token kept in a file that another process rewrites before it expires."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def _load(self, *, force: bool) -> bool:
        try:
            stat = self._path.stat()
        except OSError as exc:
            msg = f"cannot read bearer_token_file {self._path}: {exc.strerror or exc}"
            raise AuthError(msg) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if not force and stamp == self._stamp:
            return False
        try:
            token = self._path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"cannot read bearer_token_file {self._path}: {type(exc).__name__}"
            raise AuthError(msg) from None
        if not token:
            msg = f"bearer_token_file {self._path} is empty"
            raise AuthError(msg)
        changed = token != self._token
        register_secret(token)
        self._stamp, self._token = stamp, token
        return changed

    def header(self) -> str:
        """The Bearer header, re-reading the file when it changed since the last request."""
        with self._lock:
            self._load(force=False)
            return f"Bearer {self._token}"

    def refresh(self) -> bool:
        """Read the file again (after a 401: the token may have been rotated a moment ago)."""
        with self._lock:
            return self._load(force=True)

    def __repr__(self) -> str:
        return f"BearerFileAuth({str(self._path)!r})"

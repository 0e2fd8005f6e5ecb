"""One error taxonomy for the whole fetcher.

Vendor exceptions (PyGithub, python-gitlab, httpx) are translated into these at the adapter boundary, so
the engine decides what to do from the class alone::

    FetcherError
    ├── ConfigError            bad configuration; names the YAML path; ``fetcher check`` exits 2
    ├── PluginError            an unknown provider/sink name or a plugin that fails to load
    ├── StoreError             the state store cannot be used
    │   └── ForeignStateError  the file is not a deploy-fetcher state file (refused, never replaced)
    ├── LeaseLost              another replica holds the target now: this poll's commit was refused
    └── SourceError            polling a source failed; the cycle ends, the cursor stays where it was
        ├── AuthError          credentials rejected: one clear error, readiness 503, no crash loop
        ├── TargetNotFound     a repo/project is gone or not visible: reported and skipped
        ├── RateLimited        quota spent: nothing to do until ``retry_at``
        └── TransientError     network trouble or 5xx: try again next cycle

Every error masks the registered secrets in its own text (:mod:`deploy_fetcher.redaction`), so a
server that echoes the credential into an error body cannot put it into a message, wherever the error
ends up: a log line, ``/readyz``, the CLI, a traceback.

A malformed item inside an otherwise good response is not an error at all: the adapter logs it with its
URL and skips it. Sinks do not raise for HTTP outcomes; they return a :class:`~deploy_fetcher.sinks.Delivery`.
"""

from __future__ import annotations

from datetime import datetime

from deploy_fetcher.redaction import redact

__all__ = [
    "AuthError",
    "ConfigError",
    "FetcherError",
    "ForeignStateError",
    "LeaseLost",
    "PluginError",
    "RateLimited",
    "SourceError",
    "StoreError",
    "TargetNotFound",
    "TransientError",
]


class FetcherError(Exception):
    """Base of every error the fetcher raises on purpose."""

    def __str__(self) -> str:
        return redact(super().__str__())


class ConfigError(FetcherError):
    """A configuration value is missing or wrong.

    ``path`` is the YAML path of the offending key (``sources[2].repos[0]``), empty for file-level
    problems; ``str()`` gives the one line ``fetcher check`` prints.
    """

    def __init__(self, message: str, *, path: str = "", file: str = "") -> None:
        self.path = path
        self.file = file
        self.message = message
        where = ": ".join(part for part in (file, path) if part)
        super().__init__(f"{where}: {message}" if where else message)


class PluginError(FetcherError):
    """A provider or sink plugin is unknown or cannot be loaded."""


class StoreError(FetcherError):
    """The state store cannot be opened, read or written."""


class ForeignStateError(StoreError):
    """The state file exists but was not written by deploy-fetcher (or by a newer version)."""


class LeaseLost(FetcherError):
    """A poll's commit was fenced out: its replica no longer holds the target's lease.

    Nothing was committed; the replica that holds the lease now polls the target. Not a store
    problem (the store works), and not the source's.
    """


class SourceError(FetcherError):
    """Polling a source failed as a whole; the cursor does not move."""


class AuthError(SourceError):
    """The CI system rejected the credentials (401, 403 without rate limit, 203 sign-in page)."""


class TargetNotFound(SourceError):
    """A repository, project or pipeline does not exist or is not visible to the credentials."""


class RateLimited(SourceError):
    """The API quota is spent; ``retry_at`` says when it comes back (None when unknown)."""

    def __init__(self, message: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class TransientError(SourceError):
    """A network failure, timeout or 5xx: the next cycle tries again."""

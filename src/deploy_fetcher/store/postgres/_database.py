"""A pool of PostgreSQL connections shared by the daemon's threads, and one way to report their errors.

Every store method borrows a connection for one short transaction and gives it back; nothing holds a
connection across a poll or a POST. The pool checks a connection before lending it, so after the
database restarted (or a proxy dropped idle connections) the first call gets a fresh one instead of
an error.

Every ``psycopg`` error that reaches a caller is a :class:`~deploy_fetcher.errors.StoreError` naming
the database (never its password) and what was being done; our own SQL mistakes (a syntax error, an
unknown column) stay what they are so a test catches them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final
from urllib.parse import unquote, urlsplit

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from deploy_fetcher._logging import register_secret
from deploy_fetcher.config import postgres_hosts
from deploy_fetcher.errors import StoreError
from deploy_fetcher.redaction import dsn_passwords

__all__ = ["Database", "url_label"]

#: Seconds a caller waits for a free (or new) connection before the call fails.
BORROW_TIMEOUT: Final = 10.0
#: libpq's own bound on opening one connection (DNS, TCP, TLS, authentication).
CONNECT_TIMEOUT: Final = 5
#: Errors that are bugs in our SQL, not states of the database.
_OURS: Final = (
    psycopg.errors.SyntaxError,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.UndefinedParameter,
    psycopg.errors.DatatypeMismatch,
)


class _ConnectFailures(logging.Filter):
    """Drops psycopg_pool's warnings about failed connection attempts.

    The pool retries in the background and warns at every attempt (a dozen lines for one short
    CLI command against a database that is down); the call that needed the connection reports the
    same failure once, as a StoreError naming the database and what was being done.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith(("error connecting in", "reconnection attempt in"))


_POOL_LOGGER = logging.getLogger("psycopg.pool")
if not any(isinstance(f, _ConnectFailures) for f in _POOL_LOGGER.filters):
    _POOL_LOGGER.addFilter(_ConnectFailures())


def url_label(url: str) -> str:
    """The URL as it may be shown: scheme, user, hosts and ports, database; no password, no query.

    The query is dropped whole because libpq also takes ``?password=…`` there. Several hosts
    (``db-1:5432,db-2:5432``) are all shown.
    """
    try:
        parts = urlsplit(url.strip())
        hosts = postgres_hosts(url)
    except ValueError:
        return "postgresql://(unreadable URL)"
    user = f"{unquote(parts.username)}@" if parts.username else ""
    shown = ",".join(
        (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        for host, port in hosts
    )
    return f"{parts.scheme}://{user}{shown}{parts.path}"


def _secrets_of(url: str) -> list[str]:
    """The strings that must never be printed: the URL's passwords, else ``PGPASSWORD``'s value.

    libpq takes the password from ``PGPASSWORD`` when the URL has none; a server or driver error
    could quote it as well as one written in the URL.
    """
    found = dsn_passwords(url)
    if not found and os.environ.get("PGPASSWORD"):
        found = [os.environ["PGPASSWORD"]]
    return sorted(set(found), key=len, reverse=True)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class Database:
    """The connection pool of one store, and the translation of its errors."""

    def __init__(self, url: str, *, max_size: int, borrow_timeout: float = BORROW_TIMEOUT) -> None:
        self.label = url_label(url)
        self._url = url
        self._secrets = _secrets_of(url)
        for secret in self._secrets:  # psycopg's own log lines go through the same redaction
            register_secret(secret)
        self.borrow_timeout = borrow_timeout
        self._closed = threading.Event()
        self._check_reachable()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            check=ConnectionPool.check_connection,
            timeout=borrow_timeout,
            # The pool's own retries back off without bound (1 s, 2 s, 4 s … an hour later): it gives
            # up after a while instead, and the next call that needs a connection tries afresh, so
            # a database back after an outage is used again within seconds.
            reconnect_timeout=max(borrow_timeout, 5.0),
            name="deploy-fetcher-state",
            open=False,
        )
        self._pool.open(wait=False)

    def _check_reachable(self) -> None:
        """One direct connection before the pool starts; a StoreError when it fails.

        A database that cannot be reached (down, unknown, a rejected password) is one error at
        once, not a pool retrying in the background until the first call gives up waiting for it.
        """
        try:
            with psycopg.connect(self._url, connect_timeout=CONNECT_TIMEOUT):
                pass
        except psycopg.Error as exc:
            raise StoreError(self.describe(exc, "connecting")) from None

    def redact(self, text: str) -> str:
        """``text`` with the URL's password masked (a server may quote what it was sent)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def describe(self, exc: BaseException, action: str) -> str:
        """One line that says which database, what went wrong, and while doing what."""
        reason = self._why_no_connection() if isinstance(exc, PoolTimeout) else _first_line(exc)
        return self.redact(f"state database {self.label}: {reason} while {action}")

    def _why_no_connection(self) -> str:
        """The pool only says it waited in vain; one direct attempt says why (refused, bad password…)."""
        try:
            with psycopg.connect(self._url, connect_timeout=CONNECT_TIMEOUT):
                pass
        except psycopg.Error as exc:
            return _first_line(exc)
        return f"every connection of the pool stayed busy for {self.borrow_timeout:g}s"

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn psycopg errors raised inside into a StoreError naming the database and the action."""
        try:
            yield
        except (*_OURS, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            raise StoreError(self.describe(exc, action)) from None

    @contextmanager
    def connection(self, action: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """A pooled connection in autocommit mode (each statement its own transaction)."""
        if self._closed.is_set():
            raise StoreError(f"state database {self.label}: the store is closed")
        with self.errors(action), self._pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self, action: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.connection(action) as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close every connection; later use raises StoreError."""
        self._closed.set()
        self._pool.close()

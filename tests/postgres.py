"""A real PostgreSQL server for the tests: started once per test session, a fresh database per test.

Where the server comes from, in order:

1. ``FETCHER_TEST_POSTGRES_URL``: an existing server, given as the URL of a role that may create and
   drop databases (``postgresql://postgres:secret@127.0.0.1:5432/postgres``);
2. the PostgreSQL server binaries of this machine (Debian's ``postgresql-NN`` puts them under
   ``/usr/lib/postgresql/NN/bin``; ``FETCHER_TEST_POSTGRES_BIN`` names another directory): a throwaway
   cluster in a temporary directory, on a free port of 127.0.0.1, with password authentication over
   TCP (so the tests see a password go through the code that must never print it), stopped and
   deleted at the end of the session. ``initdb`` refuses to run as root; as root the cluster belongs
   to the ``postgres`` user.

Where neither exists the PostgreSQL tests skip, and the session's header says so in one loud line;
under ``CI`` they fail instead (``FETCHER_TEST_POSTGRES=skip`` allows the skip there on purpose).

The cluster trades durability for speed (``fsync=off``: a crash of this machine could lose what
it wrote, a crash of the server cannot); it holds nothing but test data.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

__all__ = ["PostgresCluster", "find_bin_dir", "postgres_unavailable"]

ENV_URL = "FETCHER_TEST_POSTGRES_URL"
ENV_BIN = "FETCHER_TEST_POSTGRES_BIN"
ENV_SKIP = "FETCHER_TEST_POSTGRES"
_OWNER = "postgres"
_START_TIMEOUT = 60


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    configured = os.environ.get(ENV_BIN)
    candidates = [configured] if configured else []
    candidates += sorted(
        (str(path) for path in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


def _runs_as() -> list[str]:
    """The command prefix that runs the server binaries as an unprivileged user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(_OWNER)
    except KeyError:
        return []
    return ["runuser", "-u", _OWNER, "--"]


def postgres_unavailable() -> str | None:
    """Why no PostgreSQL server can be had for the tests, or None when one can."""
    if os.environ.get(ENV_URL):
        return None
    if find_bin_dir() is None:
        return (
            f"no PostgreSQL server: set {ENV_URL} or install the server binaries"
            " (Debian: apt-get install postgresql-15)"
        )
    if os.geteuid() == 0 and not _runs_as():
        return f"running as root and there is no {_OWNER!r} user for initdb"
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    """A server the tests may create databases on (and, for their own cluster, stop and start)."""

    admin_url: str
    base: Path | None = None
    bin_dir: Path | None = None
    port: int = 0
    _counter: int = field(default=0, init=False)

    # -- a throwaway cluster -----------------------------------------------------------------------
    @classmethod
    def create(cls, bin_dir: Path) -> PostgresCluster:
        """Create a new cluster (``initdb``) in a temporary directory and start it."""
        prefix = _runs_as()
        base = Path(tempfile.mkdtemp(prefix="fetcher-pg-"))
        password = secrets.token_urlsafe(12)
        (base / "pwfile").write_text(password + "\n", encoding="utf-8")
        if prefix:
            owner = pwd.getpwnam(_OWNER)
            for path in (base, base / "pwfile"):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                *prefix,
                str(bin_dir / "initdb"),
                "--pgdata",
                str(base / "data"),
                "--username",
                "postgres",
                "--pwfile",
                str(base / "pwfile"),
                "--auth-host",
                "scram-sha-256",
                "--auth-local",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=_START_TIMEOUT,
        )
        port = _free_port()
        netloc = f"postgres:{quote(password, safe='')}@127.0.0.1:{port}"
        cluster = cls(
            admin_url=urlunsplit(("postgresql", netloc, "/postgres", "", "")),
            base=base,
            bin_dir=bin_dir,
            port=port,
        )
        cluster.start()
        return cluster

    def _pg_ctl(self, *args: str) -> None:
        assert self.base is not None
        assert self.bin_dir is not None
        subprocess.run(
            [*_runs_as(), str(self.bin_dir / "pg_ctl"), "--pgdata", str(self.base / "data"), *args],
            check=True,
            capture_output=True,
            timeout=_START_TIMEOUT,
        )

    def start(self) -> None:
        """Start the server (again) on its port; returns once it accepts connections."""
        assert self.base is not None
        options = " ".join(
            [
                f"-p {self.port}",
                "-h 127.0.0.1",
                f"-k {self.base}",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c max_connections=300",
            ]
        )
        self._pg_ctl("--log", str(self.base / "server.log"), "--wait", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, cutting every connection (``immediate``: as a crash would)."""
        self._pg_ctl("--mode", mode, "--wait", "stop")

    def destroy(self) -> None:
        """Stop the server and delete the cluster."""
        if self.base is None:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._pg_ctl("--mode", "immediate", "--wait", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None

    # -- databases ---------------------------------------------------------------------------------
    def _admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)

    def create_database(self, prefix: str = "t") -> str:
        """A new, empty database; returns its URL (with the password)."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}_{secrets.token_hex(3)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        parts = urlsplit(self.admin_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, cutting off whoever is still connected."""
        name = urlsplit(url).path.lstrip("/")
        with contextlib.suppress(Exception), self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextlib.contextmanager
    def database(self, prefix: str = "t") -> Iterator[str]:
        """A fresh database for the block, dropped after it."""
        url = self.create_database(prefix)
        try:
            yield url
        finally:
            self.drop_database(url)


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- pytest plumbing ---------------------------------------------------------------------------------
def pytest_report_header(config: pytest.Config) -> str:
    """One loud line when the PostgreSQL tests cannot run."""
    reason = postgres_unavailable()
    if reason is None:
        where = "server from " + ENV_URL if os.environ.get(ENV_URL) else f"{find_bin_dir()}"
        return f"postgresql: {where}"
    return f"postgresql: !!! PostgreSQL TESTS WILL BE SKIPPED: {reason} !!!"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL server (skips, or fails under CI, when there is none)."""
    reason = postgres_unavailable()
    if reason is not None:
        if os.environ.get("CI") and os.environ.get(ENV_SKIP) != "skip":
            pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    given = os.environ.get(ENV_URL)
    if given:
        _wait_ready(given)
        yield PostgresCluster(admin_url=given)
        return
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    cluster = PostgresCluster.create(bin_dir)
    try:
        _wait_ready(cluster.admin_url)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server, dropped after the test."""
    with postgres_cluster.database() as url:
        yield url

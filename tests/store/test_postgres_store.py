"""What only the PostgreSQL store has: a schema in a shared database, a pool, a password, outages.

The contract every backend keeps is tested once for both (the other test modules of this folder run
against SQLite and PostgreSQL); this module covers opening, migrating and refusing a database, and
what an unreachable or read-only database looks like to the daemon.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from tests.postgres import PostgresCluster, find_bin_dir
from tests.store.conftest import PostgresBackend
from tests.store.factories import FakeClock, make_event
from tests.support import free_port, wait_until

from deploy_fetcher.config import StateConfig
from deploy_fetcher.errors import ForeignStateError, StoreError
from deploy_fetcher.model import utc_now
from deploy_fetcher.redaction import redact
from deploy_fetcher.store import open_store
from deploy_fetcher.store.postgres import PostgresStore, schema_version
from deploy_fetcher.store.postgres import _schema as schema


def _password(url: str) -> str:
    password = urlsplit(url).password
    assert password
    return password


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _meta(backend: PostgresBackend) -> tuple[str, int]:
    (row,) = backend.execute("SELECT application, schema_version FROM meta")
    return str(row[0]), int(row[1])


def _tables(backend: PostgresBackend) -> set[str]:
    rows = backend.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'deploy_fetcher'"
    )
    return {str(row[0]) for row in rows}


@pytest.fixture
def pg(pg_url: str) -> PostgresBackend:
    return PostgresBackend(pg_url)


# -- opening ----------------------------------------------------------------------------------------
def test_an_empty_database_gets_the_schema_stamped_with_its_version(pg: PostgresBackend) -> None:
    """A new database gets the deploy_fetcher schema, marked as ours at the current version."""
    PostgresStore(pg.url).close()

    assert ("deploy-fetcher", schema_version()) == _meta(pg)
    tables = {"meta", "cursors", "outbox", "successes", "kv", "members", "leases", "lifecycle"}
    assert tables == _tables(pg)


def test_other_applications_tables_beside_ours_are_left_alone(pg: PostgresBackend) -> None:
    """A database shared with an application: its tables in another schema stay as they were."""
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.outbox (body text)")
        conn.execute("INSERT INTO public.outbox VALUES ('keep me')")

    store = PostgresStore(pg.url)
    store.commit_page("k", {"n": 1}, [("dash", make_event())])
    store.close()

    with psycopg.connect(pg.url, autocommit=True) as conn:
        assert [("keep me",)] == conn.execute("SELECT body FROM public.outbox").fetchall()


def test_open_store_opens_the_configured_database(pg: PostgresBackend) -> None:
    """open_store builds a PostgreSQL store from state.url."""
    store = open_store(StateConfig(backend="postgres", url=pg.url))
    try:
        assert isinstance(store, PostgresStore)
        assert store.commit_page("k", None, [("dash", make_event())]) == 1
    finally:
        store.close()


def test_a_schema_of_another_application_is_refused_and_left_unchanged(
    pg: PostgresBackend,
) -> None:
    """A deploy_fetcher schema holding someone else's tables is refused, untouched."""
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA deploy_fetcher")
        conn.execute("CREATE TABLE deploy_fetcher.notes (body text)")

    with pytest.raises(ForeignStateError, match="holds tables of another application"):
        PostgresStore(pg.url)

    assert {"notes"} == _tables(pg)


def test_a_newer_schema_version_is_refused_and_left_unchanged(pg: PostgresBackend) -> None:
    """A database written by a newer deploy-fetcher is refused with that reason, untouched."""
    PostgresStore(pg.url).close()
    pg.execute("UPDATE meta SET schema_version = ?", (schema_version() + 1,))

    with pytest.raises(ForeignStateError, match="written by a newer deploy-fetcher") as caught:
        PostgresStore(pg.url)

    assert ("deploy-fetcher", schema_version() + 1) == _meta(pg)
    assert _password(pg.url) not in str(caught.value)


def test_a_new_migration_runs_once_however_many_replicas_start_together(
    pg: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appending a migration upgrades the database once, even with four stores opening at once."""
    PostgresStore(pg.url).close()
    runs: list[int] = []

    def add_notes(conn: psycopg.Connection) -> None:  # type: ignore[type-arg]
        runs.append(1)
        conn.execute("CREATE TABLE deploy_fetcher.notes (body text)")

    before = schema_version()
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, add_notes])
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            PostgresStore(pg.url, pool_size=2).close()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert ([], [1]) == (errors, runs)
    assert ("deploy-fetcher", before + 1) == _meta(pg)


def test_a_failing_migration_leaves_the_database_at_its_old_version(
    pg: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails rolls back entirely: the version and tables stay as they were."""
    PostgresStore(pg.url).close()
    before = schema_version()

    def broken(conn: psycopg.Connection) -> None:  # type: ignore[type-arg]
        conn.execute("CREATE TABLE deploy_fetcher.notes (body text)")
        conn.execute("CREATE TABLE deploy_fetcher.notes (body text)")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    with pytest.raises(StoreError, match="upgrading its schema"):
        PostgresStore(pg.url)

    assert ("deploy-fetcher", before) == _meta(pg)
    assert "notes" not in _tables(pg)


# -- the password ------------------------------------------------------------------------------------
def test_a_rejected_password_is_a_store_error_without_the_password(pg: PostgresBackend) -> None:
    """Authentication failing names the database and the reason, never the password tried."""
    wrong = "not-the-Password-42"

    with pytest.raises(StoreError) as caught:
        PostgresStore(_with_password(pg.url, wrong), borrow_timeout=3)

    message = str(caught.value)
    parts = urlsplit(pg.url)
    assert message.startswith(f"state database postgresql://postgres@127.0.0.1:{parts.port}")
    assert wrong not in message
    assert caught.value.__cause__ is None


def test_repr_and_errors_name_the_database_without_its_password(pg: PostgresBackend) -> None:
    """The store's repr and its StoreErrors show user, host, port and database only."""
    store = PostgresStore(pg.url)
    try:
        pg.execute("DROP TABLE kv")
        with pytest.raises(StoreError) as caught:
            store.set_value("k", "v")
    finally:
        store.close()

    parts = urlsplit(pg.url)
    label = f"postgresql://postgres@127.0.0.1:{parts.port}{parts.path}"
    assert f"PostgresStore({label!r})" == repr(store)
    assert str(caught.value).startswith(f"state database {label}: ")
    assert str(caught.value).endswith("while storing the value 'k'")
    assert _password(pg.url) not in str(caught.value) + repr(store)


def test_a_password_from_pgpassword_is_masked_like_one_in_the_url(
    pg: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the password in PGPASSWORD, the label is the whole URL and the password is a secret."""
    parts = urlsplit(pg.url)
    bare = urlunsplit(
        (parts.scheme, f"{parts.username}@{parts.hostname}:{parts.port}", parts.path, "", "")
    )
    monkeypatch.setenv("PGPASSWORD", _password(pg.url))

    store = PostgresStore(bare)
    try:
        store.set_value("k", "v")
    finally:
        store.close()

    assert f"PostgresStore({bare!r})" == repr(store)
    assert f"state database {bare}: ***" == redact(f"state database {bare}: {_password(pg.url)}")


# -- the database away ---------------------------------------------------------------------------
@pytest.fixture
def own_cluster(postgres_cluster: PostgresCluster) -> Iterator[PostgresCluster]:
    """A cluster of this test's own, which it may stop and start."""
    bin_dir = find_bin_dir()
    if postgres_cluster.base is None or bin_dir is None:
        pytest.skip("needs the PostgreSQL server binaries to stop and start a server")
    cluster = PostgresCluster.create(bin_dir)
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_an_outage_is_reported_and_the_store_recovers_by_itself(
    own_cluster: PostgresCluster,
) -> None:
    """With the database stopped calls fail with StoreError and check_writable says why; then it heals."""
    url = own_cluster.create_database()
    store = PostgresStore(url, borrow_timeout=1.0)
    try:
        store.commit_page("k", {"n": 1}, [("dash", make_event("run-1"))])
        own_cluster.stop()

        problem = store.check_writable()
        with pytest.raises(StoreError):
            store.commit_page("k", {"n": 2}, [("dash", make_event("run-2"))])

        own_cluster.start()
        wait_until(lambda: store.check_writable() is None, timeout=30, interval=0.2)
        store.commit_page("k", {"n": 2}, [("dash", make_event("run-2"))])
        assert ({"n": 2}, 2) == (store.get_cursor("k"), store.pending_count("dash"))
    finally:
        store.close()

    assert problem is not None
    assert problem.startswith(f"state database postgresql://postgres@127.0.0.1:{own_cluster.port}")
    assert _password(url) not in problem


def test_a_read_only_database_is_reported_by_check_writable(pg: PostgresBackend) -> None:
    """A database that turned read-only (a standby after a failover) is not writable, and says so."""
    store = PostgresStore(pg.url)
    try:
        name = urlsplit(pg.url).path.lstrip("/")
        pg.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        store._db._pool.drain()  # sessions opened before the change keep the old setting

        problem = store.check_writable()
    finally:
        store.close()

    assert problem is not None
    assert "read-only transaction" in problem
    assert problem.endswith("while testing a write")


def test_a_database_that_is_not_there_at_start_is_one_clear_error(
    postgres_cluster: PostgresCluster,
) -> None:
    """Opening a store on a database that does not exist fails with a StoreError naming it."""
    parts = urlsplit(postgres_cluster.admin_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/no_such_db", "", ""))

    with pytest.raises(StoreError, match='database "no_such_db" does not exist') as caught:
        PostgresStore(url, borrow_timeout=3)

    assert _password(url) not in str(caught.value)


def test_the_pool_is_shared_by_threads_without_piling_up_connections(
    pg: PostgresBackend, clock: FakeClock
) -> None:
    """Twenty threads using one store open no more connections than the pool's size."""
    store = PostgresStore(pg.url, pool_size=3, clock=clock)
    try:

        def work(n: int) -> None:
            store.commit_page(f"k{n}", {"n": n}, [("dash", make_event(f"run-{n}", minute=n))])

        threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        name = urlsplit(pg.url).path.lstrip("/")
        (row,) = pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()",
            (name,),
        )
        assert 20 == store.pending_count("dash")
    finally:
        store.close()

    assert int(row[0]) <= 3


def _skewed(url: str, minutes: int) -> tuple[PostgresStore, Callable[[], datetime]]:
    def clock() -> datetime:
        return utc_now() + timedelta(minutes=minutes)

    return PostgresStore(url, clock=clock, pool_size=2), clock


def test_a_replica_whose_clock_runs_ahead_cannot_take_rows_in_flight_elsewhere(
    pg: PostgresBackend,
) -> None:
    """Claims run out by the database's clock: ten minutes ahead, a live 60 s claim is still live."""
    punctual = PostgresStore(pg.url, pool_size=2)
    ahead, its_clock = _skewed(pg.url, 10)
    try:
        punctual.commit_page("k", None, [("dash", make_event())])
        claimed = punctual.claim("dash", limit=10, lease_seconds=60, now=utc_now())
        stolen = ahead.claim("dash", limit=10, lease_seconds=60, now=its_clock())
        made_due = ahead.make_due(sink="dash", now=its_clock() + timedelta(hours=1))
    finally:
        punctual.close()
        ahead.close()

    assert 1 == len(claimed)
    assert [] == stolen
    assert 0 == made_due


def test_a_replica_whose_clock_runs_behind_does_not_hold_its_claims_longer(
    pg: PostgresBackend,
) -> None:
    """Ten minutes behind, a claim is live for its lease of the database's time: seen in flight, then over."""
    behind, its_clock = _skewed(pg.url, -10)
    punctual = PostgresStore(pg.url, pool_size=2)
    try:
        behind.commit_page("k", None, [("dash", make_event())])
        claimed = behind.claim("dash", limit=10, lease_seconds=1.5, now=its_clock())
        in_flight = punctual.lease_board.claimed_elsewhere("dash", "another-member")
        while_held = punctual.claim("dash", limit=10, lease_seconds=60, now=utc_now())
        wait_until(lambda: punctual.lease_board.claimed_elsewhere("dash", "another") == 0)
        after = punctual.claim("dash", limit=10, lease_seconds=60, now=utc_now())
    finally:
        behind.close()
        punctual.close()

    assert 1 == len(claimed)
    assert 1 == in_flight
    assert [] == while_held
    assert [claimed[0].id] == [row.id for row in after]


def test_a_url_with_several_hosts_connects_to_the_first_that_answers(pg: PostgresBackend) -> None:
    """A host list as libpq takes it: the first refuses, the second is the server; the label names both."""
    parts = urlsplit(pg.url)
    dead = free_port()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{dead},{parts.hostname}:{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    store = PostgresStore(url, pool_size=2)
    try:
        store.commit_page("k", {"n": 1}, [])
        cursor = store.get_cursor("k")
        label = repr(store)
    finally:
        store.close()

    assert {"n": 1} == cursor
    expected = (
        f"postgresql://{parts.username}@127.0.0.1:{dead},{parts.hostname}:{parts.port}{parts.path}"
    )
    assert f"PostgresStore({expected!r})" == label

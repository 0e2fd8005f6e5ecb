"""Replicas sharing one database: who is alive, and who holds which target or sink, fenced.

Two tables, and the database's clock for every time in them (``clock_timestamp()``), so replicas on
hosts whose clocks disagree still agree on who holds what:

* ``members``: one row per running replica, renewed by its heartbeat; a row whose ``expires_at``
  passed belongs to a replica that died or hangs.
* ``leases``: one row per target or sink ever held. ``token`` goes up by one at every acquisition,
  never down (rows are never deleted), so it is a fencing token: a commit carries the token its poll
  started with, and :func:`check_fence` refuses it inside the commit's own transaction unless the
  lease is still held, unexpired, under that very token. A replica that was paused or cut off past
  its lease can therefore never move a cursor or queue an event, whatever it believes.

A lease, once expired, is never renewed: its holder must acquire it again (a new token), so a poll
that started before the gap is fenced out even when nobody else took the lease meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from deploy_fetcher.errors import LeaseLost
from deploy_fetcher.store._base import Fence
from deploy_fetcher.store.postgres._database import Database
from deploy_fetcher.store.postgres._schema import SCHEMA, Connection

__all__ = ["Lease", "LeaseBoard", "Member", "check_fence"]

#: The live leases matching ``where``, locked one by one in key order. Every statement that waits
#: for lease rows locks them in this one order, so two replicas' transactions never wait on each
#: other in a cycle (a deadlock, which PostgreSQL breaks by failing one of them).
_IN_KEY_ORDER: Final = (
    f"SELECT key FROM {SCHEMA}.leases WHERE {{where}} AND expires_at > clock_timestamp()"
    ' ORDER BY key COLLATE "C" FOR UPDATE'
)
#: Gives up the live leases matching ``where`` (they expire now), keeping with each target when
#: its holder last polled it: ``%(keys)s`` and ``%(ago)s`` pair targets with seconds since.
_RELEASE: Final = f"""
    WITH mine AS ({_IN_KEY_ORDER}),
    ago AS (SELECT * FROM unnest(%(keys)s::text[], %(ago)s::float8[]) AS a (key, seconds))
    UPDATE {SCHEMA}.leases AS l SET expires_at = clock_timestamp(),
        polled_at = coalesce(clock_timestamp() - make_interval(secs => ago.seconds), l.polled_at)
    FROM mine LEFT JOIN ago USING (key) WHERE l.key = mine.key
"""
#: Rows of replicas gone for longer than this are deleted (their leases and claims expired long ago).
_FORGET_MEMBERS_AFTER: Final = "1 hour"


@dataclass(frozen=True)
class Member:
    """One replica as the database knows it."""

    id: str
    host: str
    version: str
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    alive: bool
    leases: int


@dataclass(frozen=True)
class Lease:
    """One target's or sink's lease."""

    key: str
    holder: str
    token: int
    expires_at: datetime
    alive: bool


def check_fence(conn: Connection, fence: Fence) -> None:
    """Inside a commit's transaction: raise LeaseLost unless ``fence`` is still the live lease.

    ``FOR SHARE`` keeps the lease row as it is until the commit ends: another replica's acquisition
    (an UPDATE of that row) waits for it, so no one can take the lease between this check and the
    commit, and whoever takes it next reads the cursor this commit wrote.
    """
    found = conn.execute(
        f"""
        SELECT holder, token, expires_at > clock_timestamp() FROM {SCHEMA}.leases
        WHERE key = %s FOR SHARE
        """,
        (fence.key,),
    ).fetchone()
    if found is not None and (found[0], found[1], found[2]) == (fence.holder, fence.token, True):
        return
    if found is None:
        why = "no lease is recorded for it"
    elif found[0] != fence.holder or found[1] != fence.token:
        why = f"another replica holds it now (token {found[1]}, this poll had {fence.token})"
    else:
        why = "the lease expired before the commit"
    msg = f"lease on {fence.key!r} lost: {why}; the page was not committed"
    raise LeaseLost(msg)


class LeaseBoard:
    """The membership and lease operations of one store, for :class:`~deploy_fetcher.engine.replicas.Coordinator`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def heartbeat(
        self, member: str, *, host: str, version: str, ttl: float, sources: Sequence[str] = ()
    ) -> dict[str, frozenset[str]]:
        """Record ``member`` as alive for ``ttl`` seconds more, able to poll ``sources``.

        Returns every live member (sorted by id) with the sources it can poll.
        """
        with self._db.transaction("recording a heartbeat") as conn:
            conn.execute(
                f"""
                INSERT INTO {SCHEMA}.members AS m
                    (id, host, version, started_at, heartbeat_at, expires_at, sources)
                VALUES (%s, %s, %s, clock_timestamp(), clock_timestamp(),
                        clock_timestamp() + make_interval(secs => %s), %s)
                ON CONFLICT (id) DO UPDATE
                    SET heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at,
                        sources = excluded.sources
                """,
                (member, host, version, ttl, sorted(set(sources))),
            )
            conn.execute(
                f"DELETE FROM {SCHEMA}.members"
                f" WHERE expires_at < clock_timestamp() - interval '{_FORGET_MEMBERS_AFTER}'"
            )
            rows = conn.execute(
                f"SELECT id, sources FROM {SCHEMA}.members WHERE expires_at > clock_timestamp()"
                ' ORDER BY id COLLATE "C"'
            ).fetchall()
        return {str(row[0]): frozenset(_texts(row[1])) for row in rows}

    def renew(self, member: str, *, ttl: float) -> dict[str, int]:
        """Extend every unexpired lease ``member`` holds; return them (key → token)."""
        with self._db.transaction("renewing leases") as conn:
            rows = conn.execute(
                f"""
                WITH mine AS ({_IN_KEY_ORDER.format(where="holder = %(member)s")})
                UPDATE {SCHEMA}.leases AS l
                    SET expires_at = clock_timestamp() + make_interval(secs => %(ttl)s)
                FROM mine WHERE l.key = mine.key
                RETURNING l.key, l.token
                """,
                {"member": member, "ttl": ttl},
            ).fetchall()
        return {str(key): int(str(token)) for key, token in rows}

    def acquire(self, member: str, keys: Sequence[str], *, ttl: float) -> dict[str, int]:
        """Take those of ``keys`` whose lease is free or expired; return them (key → new token).

        Keys never leased are inserted; expired leases are locked with ``SKIP LOCKED`` and taken
        over. A lease row another transaction has locked (its holder renewing it, a commit checking
        its fence) is in use: it is left for a later round rather than waited for, so an
        acquisition never waits on a renewal and the two cannot deadlock.
        """
        if not keys:
            return {}
        params = {"member": member, "ttl": ttl, "keys": sorted(set(keys))}
        with self._db.transaction("acquiring leases") as conn:
            new = conn.execute(
                f"""
                INSERT INTO {SCHEMA}.leases (key, holder, token, expires_at, acquired_at)
                SELECT k, %(member)s, 1, clock_timestamp() + make_interval(secs => %(ttl)s),
                       clock_timestamp()
                FROM unnest(%(keys)s::text[]) AS k ORDER BY k COLLATE "C"
                ON CONFLICT (key) DO NOTHING
                RETURNING key, token
                """,
                params,
            ).fetchall()
            taken = conn.execute(
                f"""
                WITH free AS (
                    SELECT key FROM {SCHEMA}.leases
                    WHERE key = ANY(%(keys)s) AND expires_at <= clock_timestamp()
                    ORDER BY key COLLATE "C" FOR UPDATE SKIP LOCKED
                )
                UPDATE {SCHEMA}.leases AS l
                    SET holder = %(member)s, token = l.token + 1,
                        expires_at = clock_timestamp() + make_interval(secs => %(ttl)s),
                        acquired_at = clock_timestamp()
                FROM free WHERE l.key = free.key
                RETURNING l.key, l.token
                """,
                params,
            ).fetchall()
        return {str(key): int(str(token)) for key, token in [*new, *taken]}

    def release(
        self, member: str, keys: Sequence[str], *, polled_ago: Mapping[str, float] | None = None
    ) -> None:
        """Give up leases at once (they expire now; the token stays for the next holder to raise).

        ``polled_ago`` says, for the targets this member polled, how many seconds ago it last did:
        kept with the lease, so the next holder waits out the interval instead of polling again.
        """
        if not keys:
            return
        ago = polled_ago or {}
        with self._db.transaction("releasing leases") as conn:
            conn.execute(
                _RELEASE.format(where="holder = %(member)s AND key = ANY(%(mine)s)"),
                {
                    "member": member,
                    "mine": list(keys),
                    "keys": list(ago),
                    "ago": list(ago.values()),
                },
            )

    def polled_ago(self, keys: Sequence[str]) -> dict[str, float]:
        """Seconds since a previous holder last polled each of ``keys`` (those it said)."""
        if not keys:
            return {}
        with self._db.connection("reading when targets were last polled") as conn:
            rows = conn.execute(
                f"""
                SELECT key, extract(epoch FROM clock_timestamp() - polled_at) FROM {SCHEMA}.leases
                WHERE key = ANY(%s) AND polled_at IS NOT NULL
                """,
                (list(keys),),
            ).fetchall()
        return {str(key): max(0.0, float(str(seconds))) for key, seconds in rows}

    def leave(self, member: str, *, polled_ago: Mapping[str, float] | None = None) -> None:
        """A clean exit: release every lease and claim of ``member`` and drop its member row.

        ``polled_ago`` is :meth:`release`'s: when this member last polled the targets it held.
        """
        ago = polled_ago or {}
        with self._db.transaction("leaving the replica set") as conn:
            conn.execute(
                _RELEASE.format(where="holder = %(member)s"),
                {"member": member, "keys": list(ago), "ago": list(ago.values())},
            )
            conn.execute(
                f"""
                UPDATE {SCHEMA}.outbox SET claimed_by = NULL, claim_until = NULL
                WHERE claimed_by = %s AND state = 'pending'
                """,
                (member,),
            )
            conn.execute(f"DELETE FROM {SCHEMA}.members WHERE id = %s", (member,))

    def departed(self) -> list[str]:
        """Ids of the members whose membership expired (dead, hung, or cut off), sorted."""
        with self._db.connection("listing departed replicas") as conn:
            rows = conn.execute(
                f"SELECT id FROM {SCHEMA}.members WHERE expires_at <= clock_timestamp()"
                ' ORDER BY id COLLATE "C"'
            ).fetchall()
        return [str(row[0]) for row in rows]

    def free_claims_of(self, members: Sequence[str]) -> int:
        """Release the outbox claims of those ``members`` whose membership expired; how many rows.

        The caller decides who has been gone long enough (see
        :class:`~deploy_fetcher.engine.replicas.Coordinator`); a member that came back meanwhile
        keeps its claims.
        """
        if not members:
            return 0
        with self._db.transaction("releasing the claims of departed replicas") as conn:
            return conn.execute(
                f"""
                UPDATE {SCHEMA}.outbox SET claimed_by = NULL, claim_until = NULL
                WHERE state = 'pending' AND claimed_by IN (
                    SELECT id FROM {SCHEMA}.members
                    WHERE id = ANY(%s) AND expires_at <= clock_timestamp()
                )
                """,
                (list(members),),
            ).rowcount

    def claimed_elsewhere(self, sink: str, member: str) -> int:
        """Rows of ``sink`` under a live claim of another process (in flight there)."""
        with self._db.connection("counting claims of other processes") as conn:
            row = conn.execute(
                f"""
                SELECT count(*) FROM {SCHEMA}.outbox
                WHERE sink = %s AND state = 'pending' AND claimed_by <> %s
                  AND claim_until > clock_timestamp()
                """,
                (sink, member),
            ).fetchone()
        return int(str(row[0])) if row else 0

    def members(self) -> list[Member]:
        """Every member row (live or recently gone), with how many live leases each holds."""
        with self._db.connection("listing replicas") as conn:
            rows = conn.execute(
                f"""
                SELECT m.id, m.host, m.version, m.started_at, m.heartbeat_at, m.expires_at,
                       m.expires_at > clock_timestamp(),
                       (SELECT count(*) FROM {SCHEMA}.leases l
                        WHERE l.holder = m.id AND l.expires_at > clock_timestamp())
                FROM {SCHEMA}.members m ORDER BY m.started_at, m.id
                """
            ).fetchall()
        return [
            Member(
                id=str(r[0]),
                host=str(r[1]),
                version=str(r[2]),
                started_at=_utc(r[3]),
                heartbeat_at=_utc(r[4]),
                expires_at=_utc(r[5]),
                alive=bool(r[6]),
                leases=int(str(r[7])),
            )
            for r in rows
        ]

    def leases(self) -> list[Lease]:
        """Every lease row, by key."""
        with self._db.connection("listing leases") as conn:
            rows = conn.execute(
                f"""
                SELECT key, holder, token, expires_at, expires_at > clock_timestamp()
                FROM {SCHEMA}.leases ORDER BY key COLLATE "C"
                """
            ).fetchall()
        return [Lease(str(r[0]), str(r[1]), int(str(r[2])), _utc(r[3]), bool(r[4])) for r in rows]


def _texts(value: object) -> list[str]:
    assert isinstance(value, list)  # noqa: S101 - a text[] column
    return [str(item) for item in value]


def _utc(value: object) -> datetime:
    assert isinstance(value, datetime)  # noqa: S101 - timestamptz columns
    return value.astimezone(UTC)

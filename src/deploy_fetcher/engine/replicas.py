"""Several replicas sharing the work: who polls which target, and who delivers to which sink.

Each ``fetcher run`` on the PostgreSQL backend is a *member* of the replica set: a heartbeat keeps
its member row alive, and a lease per target (and per sink) says who works on it. Work is spread by
rendezvous hashing over the live members: a key belongs to the member with the highest
``hash(member, key)``, so every member computes the same owner without talking to the others, a
member that leaves hands on only its own keys, and one that joins takes about 1/N of them from each
of the others — nothing else moves.

Hashing says who *should* hold a key; the lease says who *does*. A member acquires the keys it
should hold once their lease is free (the previous holder released it on seeing the new member, or
it expired because that holder died), releases those it should no longer hold once no poll of them
is in flight, and renews the rest every ``ttl / 3``. Every poll commits under the lease's token
(:class:`~deploy_fetcher.store.Fence`), checked in the commit's transaction, so the worst a paused
or cut-off member can do is waste a poll: it can never move a cursor or queue an event once its
lease is gone.

A sink is leased like a target, so one member at a time delivers to it and events reach it in
``happened_at`` order as with one process. A member that takes a sink over waits until no row of
that sink is still in flight at another process (a paused previous holder's claims run out with
their own lease), so nothing it sends can overtake a row still being sent elsewhere. It frees the
claims of a departed member only once it has seen that member gone for a whole ``ttl`` while
itself connected to the database: after an outage every membership has expired, but the members
come back within ``ttl / 3`` and finish what they were sending; freeing their claims at once
would have the new holder send those rows a second time.

Between rounds a member looks every :data:`WATCH_SECONDS` for members whose heartbeat ran out; on
seeing one it makes a round at once, and keeps taking that member's targets as their leases expire
(a lease is renewed a moment after the heartbeat, so it may outlive the membership by that moment).

When the database cannot be reached, the member cannot renew: once ``ttl`` has passed since its
last renewal it stops polling and delivering (it could not commit anyway), and it picks up again
when the database is back.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from deploy_fetcher._version import __version__
from deploy_fetcher.engine.health import Health
from deploy_fetcher.errors import StoreError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.store import Fence, LeaseBoard

__all__ = ["SINK_PREFIX", "Coordinator", "ReplicaStatus", "owner_of"]

_log = structlog.get_logger(__name__)

#: Lease keys of sinks: ``sink:<name>`` (target keys never start with it: source names cannot).
SINK_PREFIX = "sink:"
#: How long the loop waits after being woken, so a burst of target changes makes one round.
_SETTLE_SECONDS = 0.5
#: How often, between rounds, a member looks for members whose heartbeat ran out: a dead member's
#: targets are then taken within about this of its leases expiring, rather than up to ``ttl / 3``
#: later at the next round (one small query; the rounds themselves stay ``ttl / 3`` apart).
WATCH_SECONDS = 1.0


def _score(member: str, key: str) -> bytes:
    return hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()


def owner_of(key: str, members: Sequence[str]) -> str | None:
    """The member that should hold ``key``: the highest ``hash(member, key)`` (rendezvous hashing)."""
    if not members:
        return None
    return max(members, key=lambda member: (_score(member, key), member))


@dataclass(frozen=True)
class ReplicaStatus:
    """What ``/readyz`` shows about this member."""

    member: str
    members: int
    targets: int
    sinks: tuple[str, ...]
    connected: bool

    def as_dict(self) -> dict[str, object]:
        """The JSON form."""
        return {
            "member": self.member,
            "members": self.members,
            "targets": self.targets,
            "sinks": list(self.sinks),
            "connected": self.connected,
        }


class Coordinator:
    """This member's view of the replica set, kept current by a background thread.

    ``on_gained`` is called with the sinks this member may now deliver to (wake their workers);
    ``on_acquired`` with the target keys it just took, each with how many seconds ago the member
    that handed it over last polled it (None when unknown: poll soon; else wait out the interval);
    ``on_released`` with the target keys it no longer holds (forget their health and series).

    A source's targets are shared only among the members that could list them: each heartbeat
    says which sources this member has listed, so a member whose discovery of a source fails
    is given none of its targets (the others poll them) instead of leaving its share unpolled.
    """

    def __init__(
        self,
        board: LeaseBoard,
        *,
        member: str,
        ttl: float,
        metrics: Metrics,
        health: Health,
        on_gained: Callable[[Sequence[str]], None] = lambda _sinks: None,
        on_released: Callable[[Sequence[str]], None] = lambda _keys: None,
        on_acquired: Callable[[Mapping[str, float | None]], None] = lambda _keys: None,
        clock: Callable[[], float] = time.monotonic,
        watch: float = WATCH_SECONDS,
    ) -> None:
        self.board = board
        self.member = member
        self.ttl = ttl
        self.metrics = metrics
        self.health = health
        self.on_gained = on_gained
        self.on_released = on_released
        self.on_acquired = on_acquired
        self._clock = clock
        self._watch = watch
        self._lock = threading.Lock()
        self._targets: dict[str, frozenset[str]] = {}
        self._sinks: frozenset[str] = frozenset()
        self._held: dict[str, int] = {}
        #: Live members (by id) and the sources each has listed, as of the last heartbeat.
        self._members: dict[str, frozenset[str]] = {}
        #: When this member last started a poll of each target it holds (its clock).
        self._last_poll: dict[str, float] = {}
        self._valid_until = 0.0
        self._renewed_at = float("-inf")
        #: When the last full round (heartbeat and renewal) was tried, and until when keys of a
        #: member just seen departed are still being taken (this member's clock).
        self._round_at = float("-inf")
        self._chasing_until = float("-inf")
        #: Keys the last acquisition asked for and did not get (held elsewhere, not yet expired).
        self._missing = 0
        self._in_flight: Counter[str] = Counter()
        self._sinks_ready: set[str] = set()
        #: Departed members, and when this member first saw them gone while connected.
        self._gone_since: dict[str, float] = {}
        self._connected = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what there is to share ----------------------------------------------------------------------
    def set_targets(self, source: str, keys: Iterable[str]) -> None:
        """The target keys of ``source`` (after each discovery); wakes the loop when they changed."""
        keys = frozenset(keys)
        with self._lock:
            changed = self._targets.get(source) != keys
            self._targets[source] = keys
        if changed:
            self._wake.set()

    def set_sinks(self, names: Iterable[str]) -> None:
        """The sinks this process delivers to (every member has the same ones)."""
        with self._lock:
            self._sinks = frozenset(names)
        self._wake.set()

    # -- asked by the scheduler and the delivery workers ---------------------------------------------
    def holds(self, key: str) -> bool:
        """Whether this member holds ``key``'s lease now (so a poll of it here could commit)."""
        with self._lock:
            return key in self._held and self._clock() < self._valid_until

    def begin(self, key: str) -> Fence | None:
        """The fence to poll ``key`` under, or None when this member does not hold it now.

        A poll in flight keeps its key from being handed over voluntarily until :meth:`end`.
        """
        with self._lock:
            token = self._held.get(key)
            if token is None or self._clock() >= self._valid_until:
                return None
            self._in_flight[key] += 1
            self._last_poll[key] = self._clock()
            return Fence(key, self.member, token)

    def end(self, key: str) -> None:
        """The poll of ``key`` is over."""
        with self._lock:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def may_deliver(self, sink: str) -> bool:
        """Whether this member delivers to ``sink`` now (holds its lease, nothing in flight elsewhere)."""
        key = SINK_PREFIX + sink
        with self._lock:
            return (
                key in self._held
                and sink in self._sinks_ready
                and self._clock() < self._valid_until
            )

    def status(self) -> ReplicaStatus:
        """Membership and what this member holds, for ``/readyz``."""
        with self._lock:
            valid = self._clock() < self._valid_until
            held = list(self._held) if valid else []
            return ReplicaStatus(
                member=self.member,
                members=len(self._members),
                targets=sum(1 for key in held if not key.startswith(SINK_PREFIX)),
                sinks=tuple(
                    sorted(k.removeprefix(SINK_PREFIX) for k in held if k.startswith(SINK_PREFIX))
                ),
                connected=self._connected,
            )

    def problems(self) -> list[str]:
        """Why this member is not ready (empty when it is)."""
        with self._lock:
            if not self._members:
                return ["replica set: not joined yet (no heartbeat recorded)"]
            if self._clock() >= self._valid_until:
                return ["replica set: leases could not be renewed; polling and delivery stopped"]
            return []

    def owns_no_targets(self) -> bool:
        """True when this member currently holds no target (more members than work, or joining)."""
        with self._lock:
            return not any(not key.startswith(SINK_PREFIX) for key in self._held)

    # -- the loop -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Join now (one round in the caller's thread), then keep going in the background."""
        self.tick()
        self._thread = threading.Thread(target=self._run, name="replica-set", daemon=True)
        self._thread.start()

    def stop(self, *, leave: bool = True) -> None:
        """Stop the loop; ``leave`` hands every lease and claim over at once (a clean exit)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
        if leave:
            with self._lock:
                now = self._clock()
                polled_ago = {k: now - at for k, at in self._last_poll.items() if k in self._held}
            try:
                self.board.leave(self.member, polled_ago=polled_ago)
            except StoreError as exc:
                _log.warning("replicas.leave_failed", error=str(exc))
            else:
                _log.info("replicas.left", member=self.member)
        with self._lock:
            self._held.clear()
            self._valid_until = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            until_round = self._round_at + self.ttl / 3 - self._clock()
            woken = self._wake.wait(max(0.0, min(until_round, self._watch)))
            if woken:
                # Discovery reports each source on its own: let a burst of them settle first.
                self._stop.wait(_SETTLE_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._clock() - self._round_at >= self.ttl / 3:
                self.tick()
            elif woken:
                self.tick(renew=False)
            else:
                self.watch()

    def watch(self) -> None:
        """Between rounds: a round at once when a member's heartbeat ran out; never raises.

        For a ``ttl`` after seeing a member depart, keys it wanted but could not take yet (their
        lease outlived the membership by a moment) are asked for again at every look.
        """
        with self._lock:
            if not self._connected:
                return  # the rounds find out when the database is back
        try:
            departed = set(self.board.departed())
        except StoreError:
            return  # the next round reports it
        except Exception:
            _log.exception("replicas.unexpected_error")
            return
        now = self._clock()
        with self._lock:
            newly = sorted(departed & set(self._members) - {self.member})
            chasing = now < min(self._chasing_until, self._valid_until) and self._missing > 0
            if newly:
                self._chasing_until = now + self.ttl
        if newly:
            _log.info("replicas.departure_seen", members=newly)
            self.tick()
        elif chasing:
            self.tick(renew=False)

    def tick(self, *, renew: bool = True) -> None:
        """One round: heartbeat and renew (unless ``renew`` is False), hand over, acquire; never raises.

        A round without renewal (woken because the targets changed) only hands over and acquires,
        with the members and leases of the last renewal: renewing touches every lease held, which
        a discovery of thousands of sources must not do once per source.
        """
        started = self._clock()
        if renew:
            self._round_at = started
        if not renew:
            with self._lock:
                members, renewed = dict(self._members), dict(self._held)
            if members and started < self._valid_until:
                self._share(members, renewed, lost=[])
                return
        try:
            with self._lock:
                listed = sorted(self._targets)
            members = self.board.heartbeat(
                self.member,
                host=socket.gethostname(),
                version=__version__,
                ttl=self.ttl,
                sources=listed,
            )
            renewed = self.board.renew(self.member, ttl=self.ttl)
        except StoreError as exc:
            self._disconnected(exc)
            return
        except Exception:
            _log.exception("replicas.unexpected_error")
            return
        self._connected_again()
        with self._lock:
            lost = [key for key in self._held if key not in renewed]
            self._held = dict(renewed)
            self._valid_until = started + self.ttl
            self._renewed_at = started
            joined = set(members) - set(self._members)
            left = set(self._members) - set(members)
            self._members = members
        if joined or left:
            _log.info(
                "replicas.membership",
                members=len(members),
                joined=sorted(joined),
                left=sorted(left),
            )
        self._share(members, renewed, lost=lost)

    def _share(
        self, members: dict[str, frozenset[str]], held: dict[str, int], *, lost: Sequence[str]
    ) -> None:
        """Count what was lost, hand over what is no longer ours, take what is.

        Keys to hand over leave the local view in the same step that checks no poll of them is in
        flight, so no poll can start between that check and the release.
        """
        with self._lock:
            wanted = self._wanted(members)
            now = self._clock()
            giving = [k for k in held if k not in wanted and k not in self._in_flight]
            for key in giving:
                self._held.pop(key, None)
            polled_ago = {k: now - self._last_poll.pop(k) for k in giving if k in self._last_poll}
        self._count_losses(lost)
        try:
            self._hand_over(giving, polled_ago)
            self._take([k for k in sorted(wanted) if k not in held])
            self._check_sinks()
        except StoreError as exc:
            self._disconnected(exc)
        self._update_gauges()

    def _wanted(self, members: dict[str, frozenset[str]]) -> set[str]:
        """The keys this member should hold: targets among the members that listed their source."""
        ids = sorted(members)
        wanted = {
            SINK_PREFIX + name
            for name in self._sinks
            if owner_of(SINK_PREFIX + name, ids) == self.member
        }
        for source, keys in self._targets.items():
            able = [m for m in ids if m == self.member or source in members[m]]
            wanted |= {key for key in keys if owner_of(key, able) == self.member}
        return wanted

    def _count_losses(self, lost: Sequence[str]) -> None:
        if not lost:
            return
        self.metrics.lease_losses.inc(len(lost))
        _log.warning("replicas.leases_lost", count=len(lost), keys=sorted(lost)[:10])
        with self._lock:
            self._sinks_ready.difference_update(k.removeprefix(SINK_PREFIX) for k in lost)
        self.on_released([key for key in lost if not key.startswith(SINK_PREFIX)])

    def _hand_over(self, keys: Sequence[str], polled_ago: Mapping[str, float]) -> None:
        if not keys:
            return
        self.board.release(self.member, keys, polled_ago=polled_ago)
        with self._lock:
            self._sinks_ready.difference_update(k.removeprefix(SINK_PREFIX) for k in keys)
        self.metrics.lease_handovers.labels("out").inc(len(keys))
        _log.info("replicas.handed_over", count=len(keys), keys=sorted(keys)[:10])
        self.on_released([key for key in keys if not key.startswith(SINK_PREFIX)])

    def _take(self, keys: Sequence[str]) -> None:
        if not keys:
            self._missing = 0
            return
        got = self.board.acquire(self.member, keys, ttl=self.ttl)
        self._missing = len(keys) - len(got)
        if not got:
            return
        taken_over = [key for key, token in got.items() if token > 1]
        targets = [key for key in got if not key.startswith(SINK_PREFIX)]
        ago = self.board.polled_ago([key for key in taken_over if key in targets])
        # Scheduled before this member may poll them, so none is polled before its time.
        self.on_acquired({key: ago.get(key) for key in targets})
        with self._lock:
            self._held.update(got)
        if taken_over:
            self.metrics.lease_handovers.labels("in").inc(len(taken_over))
        _log.info("replicas.acquired", count=len(got), taken_over=len(taken_over))

    def _check_sinks(self) -> None:
        """A newly held sink is delivered to once no row of it is in flight at another process."""
        with self._lock:
            waiting = [
                k.removeprefix(SINK_PREFIX)
                for k in self._held
                if k.startswith(SINK_PREFIX)
                and k.removeprefix(SINK_PREFIX) not in self._sinks_ready
            ]
        if not waiting:
            return
        self._free_claims_of_the_long_gone()
        ready = [sink for sink in waiting if self.board.claimed_elsewhere(sink, self.member) == 0]
        if not ready:
            return
        with self._lock:
            self._sinks_ready.update(ready)
        self.on_gained(ready)

    def _free_claims_of_the_long_gone(self) -> None:
        """Free the claims of members seen gone for a whole ``ttl`` while this one was connected."""
        now = self._clock()
        departed = set(self.board.departed()) - {self.member}
        with self._lock:
            for member in list(self._gone_since):
                if member not in departed:
                    del self._gone_since[member]  # back (or forgotten): its claims are its own
            for member in departed:
                self._gone_since.setdefault(member, now)
            long_gone = sorted(
                m for m, since in self._gone_since.items() if now - since >= self.ttl
            )
        freed = self.board.free_claims_of(long_gone)
        if freed:
            _log.info("replicas.claims_of_departed_freed", rows=freed, members=long_gone)

    def _disconnected(self, exc: StoreError) -> None:
        self.health.set_store_problem(str(exc))
        with self._lock:
            # Who seemed gone while this member could not see the database proves nothing.
            self._gone_since.clear()
            was = self._connected
            self._connected = False
            expired = self._clock() >= self._valid_until and bool(self._held)
            lost = list(self._held) if expired else []
            if expired:
                self._held.clear()
                self._sinks_ready.clear()
        if was:
            _log.warning("replicas.database_unreachable", error=str(exc))
        self._count_losses(lost)
        self._update_gauges()

    def _connected_again(self) -> None:
        with self._lock:
            was = self._connected
            self._connected = True
        if not was:
            self.health.set_store_problem(None)

    def _update_gauges(self) -> None:
        status = self.status()
        self.metrics.replicas.set(status.members)
        self.metrics.owned_targets.set(status.targets)
        self.metrics.owned_sinks.set(len(status.sinks))

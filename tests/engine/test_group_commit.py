"""Group commit: answers arriving while a transaction runs share the next one; none is lost."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from tests.support import wait_until

from deploy_fetcher.engine.group_commit import GroupCommit
from deploy_fetcher.errors import StoreError


class GatedWrites:
    """A ``write`` whose first transaction waits until the test opens the gate."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        self.fail_first = fail_first

    def __call__(self, items: Sequence[int]) -> None:
        first = not self.started.is_set()
        self.started.set()
        if first:
            self.gate.wait(10)
            if self.fail_first:
                raise StoreError("state file x: the disk is full while recording")
        self.batches.append(list(items))


def _record_in_threads(
    commits: GroupCommit[int], items: Sequence[int]
) -> tuple[list[threading.Thread], dict[int, BaseException | None]]:
    outcome: dict[int, BaseException | None] = {}

    def record(item: int) -> None:
        try:
            commits.record(item)
        except BaseException as exc:  # the test looks at what each caller got
            outcome[item] = exc
        else:
            outcome[item] = None

    threads = [threading.Thread(target=record, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads, outcome


def _queued(commits: GroupCommit[int]) -> int:
    return len(commits._queue)  # how many answers wait for the next transaction


def test_a_lone_answer_is_committed_at_once_by_its_caller() -> None:
    """Without company, record() writes its own answer in its own transaction and returns."""
    written: list[list[int]] = []
    commits: GroupCommit[int] = GroupCommit(lambda items: written.append(list(items)))

    commits.record(7)

    assert ([[7]], 1, 1) == (written, commits.transactions, commits.items)


def test_answers_arriving_during_a_transaction_share_the_next_one() -> None:
    """Five answers queued behind a running transaction are written together, in one more."""
    writes = GatedWrites()
    commits: GroupCommit[int] = GroupCommit(writes)
    first, first_outcome = _record_in_threads(commits, [0])
    assert writes.started.wait(10)
    others, outcome = _record_in_threads(commits, [1, 2, 3, 4, 5])
    wait_until(lambda: _queued(commits) == 5, timeout=10)
    writes.gate.set()
    for thread in first + others:
        thread.join(10)

    assert ([[0], [1, 2, 3, 4, 5]], {0: None}, dict.fromkeys(range(1, 6))) == (
        [writes.batches[0], sorted(writes.batches[1])],
        first_outcome,
        outcome,
    )


def test_record_returns_only_once_its_answer_is_written() -> None:
    """A caller whose answer waits behind a running transaction does not return before it."""
    writes = GatedWrites()
    commits: GroupCommit[int] = GroupCommit(writes)
    first, _ = _record_in_threads(commits, [0])
    assert writes.started.wait(10)
    second, outcome = _record_in_threads(commits, [1])
    wait_until(lambda: _queued(commits) == 1, timeout=10)

    returned_early = dict(outcome)
    writes.gate.set()
    for thread in first + second:
        thread.join(10)

    assert ({}, {1: None}, [[0], [1]]) == (returned_early, outcome, writes.batches)


def test_a_failed_transaction_fails_every_answer_in_it_and_the_next_one_succeeds() -> None:
    """Each caller of a failed transaction gets a StoreError of its own; a retry goes through."""
    writes = GatedWrites(fail_first=True)
    commits: GroupCommit[int] = GroupCommit(writes)
    threads, outcome = _record_in_threads(commits, [0])
    assert writes.started.wait(10)
    writes.gate.set()
    for thread in threads:
        thread.join(10)

    commits.record(0)

    error = outcome[0]
    assert (StoreError, True, [[0]], 1) == (
        type(error),
        "the disk is full" in str(error),
        writes.batches,
        commits.transactions,
    )


def test_an_unexpected_error_reaches_the_caller_that_ran_the_transaction() -> None:
    """A bug in the write is raised as itself to the caller whose thread ran it."""

    def broken(items: Sequence[int]) -> None:
        raise KeyError("bug")

    commits: GroupCommit[int] = GroupCommit(broken)

    with pytest.raises(KeyError, match="bug"):
        commits.record(1)

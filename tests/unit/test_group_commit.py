"""Group commit: a lone call is stored at once, concurrent calls share few flushes, and each
call gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from taskscheduler.adapters.postgres.group_commit import GroupCommit


class Outage(Exception):
    pass


class Store:
    """A flush that takes a little time, as a commit does, and records each group."""

    def __init__(self, fail_on: int | None = None, outage: bool = False) -> None:
        self.groups: list[list[int]] = []
        self.fail_on = fail_on
        self.outage = outage

    async def flush(self, items: list[int]) -> Sequence[str | Exception]:
        self.groups.append(items)
        await asyncio.sleep(0.01)
        if self.outage:
            raise Outage("down")
        if self.fail_on in items and len(items) > 1:
            raise RuntimeError("one bad row fails the statement")
        return [ValueError(n) if n == self.fail_on else f"stored {n}" for n in items]


def committer(store: Store) -> GroupCommit[int, str]:
    return GroupCommit(store.flush, most=100, outage=Outage)


async def test_a_lone_call_is_flushed_at_once() -> None:
    store = Store()
    assert await asyncio.wait_for(committer(store).submit(1), 0.5) == "stored 1"
    assert store.groups == [[1]]


async def test_calls_that_arrive_during_a_flush_share_the_next_one() -> None:
    store = Store()
    group = committer(store)
    first = asyncio.ensure_future(group.submit(0))
    await asyncio.sleep(0.001)  # its flush is under way
    results = await asyncio.gather(first, *(group.submit(n) for n in range(1, 16)))
    assert results == [f"stored {n}" for n in range(16)]
    assert store.groups == [[0], list(range(1, 16))]


async def test_an_error_meant_for_one_call_reaches_it_alone() -> None:
    store = Store(fail_on=7)
    group = committer(store)
    results = await asyncio.gather(*(group.submit(n) for n in range(10)), return_exceptions=True)
    assert [type(r) for r in results].count(ValueError) == 1
    assert isinstance(results[7], ValueError)
    assert all(results[n] == f"stored {n}" for n in range(10) if n != 7)


async def test_a_failed_group_is_tried_one_by_one() -> None:
    store = Store()

    async def failing_statement(items: list[int]) -> Sequence[str | Exception]:
        store.groups.append(items)
        if 7 in items:
            raise RuntimeError("bad row 7")
        return [f"stored {n}" for n in items]

    group = GroupCommit(failing_statement, most=100, outage=Outage)
    first = asyncio.ensure_future(group.submit(0))
    await asyncio.sleep(0.001)
    rest = await asyncio.gather(*(group.submit(n) for n in range(1, 10)), return_exceptions=True)
    assert await first == "stored 0"
    assert isinstance(rest[6], RuntimeError)
    assert [r for n, r in enumerate(rest, 1) if n != 7] == [
        f"stored {n}" for n in range(1, 10) if n != 7
    ]
    assert [1, 2, 3, 4, 5, 6, 7, 8, 9] in store.groups and [7] in store.groups


async def test_an_outage_reaches_every_caller_of_the_group() -> None:
    group = committer(Store(outage=True))
    results = await asyncio.gather(*(group.submit(n) for n in range(5)), return_exceptions=True)
    assert all(isinstance(r, Outage) for r in results)


async def test_groups_hold_at_most_the_limit() -> None:
    store = Store()
    group = GroupCommit(store.flush, most=4, outage=Outage)
    await asyncio.gather(*(group.submit(n) for n in range(11)))
    assert [len(g) for g in store.groups] == [4, 4, 3]


@pytest.mark.parametrize("count", [1, 3])
async def test_a_caller_that_gives_up_before_its_flush_stores_nothing(count: int) -> None:
    store = Store()
    group = committer(store)
    first = asyncio.ensure_future(group.submit(0))
    await asyncio.sleep(0.001)  # the first flush is under way; the next callers wait for it
    impatient = asyncio.ensure_future(group.submit(99))
    others = [asyncio.ensure_future(group.submit(n)) for n in range(1, count + 1)]
    await asyncio.sleep(0)
    impatient.cancel()
    assert await asyncio.gather(first, *others) == [f"stored {n}" for n in range(count + 1)]
    assert all(99 not in flushed for flushed in store.groups)
    with pytest.raises(asyncio.CancelledError):
        await impatient

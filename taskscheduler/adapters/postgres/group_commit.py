"""Group commit: concurrent writes of one process share one transaction and one commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

Flush = Callable[[list[Item]], Awaitable[Sequence[Result | Exception]]]
"""Stores a group in one transaction: for each item, its result or the error meant for its
caller alone (the others' are stored all the same)."""


class GroupCommit(Generic[Item, Result]):
    """Each item waits for the next flush. A flush starts at once when none is under way, so a
    lone caller waits for nothing; the items that arrive while one commits go in the next, so
    that N concurrent callers cost a few commits instead of N, without waiting for a group to
    fill. When a whole group fails for a reason that is not an outage, each of its items is
    tried alone, so that one item's fault reaches its own caller only."""

    def __init__(self, flush: Flush[Item, Result], most: int, outage: type[Exception]) -> None:
        self._flush = flush
        self._most = most
        self._outage = outage
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps weak references

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
                # A caller that gave up (its deadline) before its flush began stores nothing.
                group = [(item, future) for item, future in group if not future.done()]
                if group:
                    await self._store(group)
        except asyncio.CancelledError:  # the loop is closing: no caller may wait forever
            for _, future in self._waiting:
                future.cancel()
            self._waiting = []
            raise
        finally:
            self._drainer = None

    async def _store(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._flush([item for item, _ in group])
        except asyncio.CancelledError:
            for _, future in group:
                future.cancel()  # those already settled stay as they are
            raise
        except self._outage as exc:
            _settle(group, [exc] * len(group))
        except Exception as exc:
            if len(group) == 1:
                _settle(group, [exc])
                return
            for index, one in enumerate(group):
                try:
                    await self._store([one])
                except asyncio.CancelledError:
                    for _, future in group[index:]:
                        future.cancel()
                    raise
        else:
            _settle(group, results)


def _settle(
    group: list[tuple[Item, asyncio.Future[Result]]], results: Sequence[Result | Exception]
) -> None:
    for (_, future), result in zip(group, results, strict=True):
        if future.done():  # its caller gave up (a deadline); the item is stored all the same
            continue
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)

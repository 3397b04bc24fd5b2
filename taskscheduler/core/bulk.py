"""Bulk actions: cancel or retry up to MAX_BULK_IDS tasks named by id, or every task a filter
matches, page by page, each task as CancelTask or RetryTask would; the answer counts what was
done and names what was not, with why."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from taskscheduler.core.errors import (
    BrokerUnavailable,
    DomainError,
    InvalidArgument,
    StorageUnavailable,
)
from taskscheduler.core.limits import BULK_PAGE_SIZE, MAX_BULK_IDS, MAX_BULK_REPORTED
from taskscheduler.core.model import WRITE_SCOPE, Caller, PageCursor, Task, TaskFilter
from taskscheduler.core.permissions import require
from taskscheduler.core.ports import TaskRepository
from taskscheduler.core.tasks import TaskManager, check_filter, parse_task_id

RETRY_KEY_PREFIX = "batch-retry:"
"""A batch retry's copy of task X has the idempotency key `batch-retry:X`: the same batch
again (or another that matches X) finds that copy instead of making a second one."""


@dataclass(frozen=True)
class Selection:
    """The tasks a bulk action is for: ids, or a filter (exactly one of the two)."""

    task_ids: tuple[str, ...] = ()
    task_filter: TaskFilter | None = None
    dry_run: bool = False  # count the tasks, act on none


@dataclass(frozen=True)
class NotActed:
    task_id: str
    reason: str  # the DomainError's reason: TASK_NOT_FOUND, TASK_ALREADY_FINISHED, ...
    message: str


@dataclass
class BulkResult:
    """`acted`: tasks cancelled (or asked to stop, when running) or retried; `copies`: the
    new task of each retried one (first MAX_BULK_REPORTED); `not_acted` names the first
    MAX_BULK_REPORTED of the `not_acted_count` others."""

    matched: int = 0
    acted: int = 0
    not_acted_count: int = 0
    not_acted: list[NotActed] = field(default_factory=list)
    copies: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)

    def refused(self, task_id: str, error: DomainError) -> None:
        self.not_acted_count += 1
        if len(self.not_acted) < MAX_BULK_REPORTED:
            self.not_acted.append(NotActed(task_id, error.reason, str(error)))


class BulkActions:
    """BatchCancelTasks and BatchRetryTasks, tenant-scoped like every use case."""

    def __init__(self, tasks: TaskManager, repository: TaskRepository) -> None:
        self._tasks = tasks
        self._repository = repository

    async def cancel(self, caller: Caller, selection: Selection) -> BulkResult:
        async def cancel_one(task_id: str, result: BulkResult) -> None:
            await self._tasks.cancel(caller, task_id)
            result.acted += 1

        return await self._each(caller, selection, cancel_one)

    async def retry(self, caller: Caller, selection: Selection) -> BulkResult:
        async def retry_one(task_id: str, result: BulkResult) -> None:
            copy = await self._tasks.retry(caller, task_id, RETRY_KEY_PREFIX + task_id)
            result.acted += 1
            if len(result.copies) < MAX_BULK_REPORTED:
                result.copies.append((uuid.UUID(task_id), copy.id))

        return await self._each(caller, selection, retry_one)

    async def _each(
        self,
        caller: Caller,
        selection: Selection,
        act: Callable[[str, BulkResult], Awaitable[None]],
    ) -> BulkResult:
        require(caller, WRITE_SCOPE)
        result = BulkResult()
        async for task_id in self._selected(caller, selection):
            result.matched += 1
            if selection.dry_run:
                continue
            try:
                await act(task_id, result)
            except (StorageUnavailable, BrokerUnavailable):
                raise  # the whole call fails and may be repeated: what it did is idempotent
            except DomainError as error:  # not found, finished, not finished: named, not fatal
                result.refused(task_id, error)
        return result

    async def _selected(self, caller: Caller, selection: Selection) -> AsyncIterator[str]:
        if selection.task_filter is None:
            for task_id in checked_ids(selection.task_ids):
                yield task_id
            return
        if selection.task_ids:
            raise InvalidArgument("task_ids", "give task ids or a filter, not both")
        async for task in self._matching(caller.tenant, checked_filter(selection.task_filter)):
            yield str(task.id)

    async def _matching(self, tenant: str, task_filter: TaskFilter) -> AsyncIterator[Task]:
        """Every task the filter matches, newest first, page by page; only those created
        before the action began (its own retries, and tasks arriving meanwhile, are not)."""
        now = datetime.now(UTC)
        before = min(task_filter.created_before or now, now)
        bounded = replace(task_filter, created_before=before)
        cursor: PageCursor | None = None
        while True:
            page = await self._repository.list(tenant, bounded, BULK_PAGE_SIZE, cursor)
            for task in page.tasks:
                yield task
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


def checked_ids(task_ids: tuple[str, ...]) -> list[str]:
    if not task_ids:
        raise InvalidArgument("task_ids", "give task ids or a filter")
    if len(task_ids) > MAX_BULK_IDS:
        raise InvalidArgument("task_ids", f"must name at most {MAX_BULK_IDS} tasks")
    parsed = [str(parse_task_id(task_id, f"task_ids[{i}]")) for i, task_id in enumerate(task_ids)]
    return list(dict.fromkeys(parsed))  # each once, in order


def checked_filter(task_filter: TaskFilter) -> TaskFilter:
    check_filter(task_filter, "filter.")
    windows = (
        ("create_time", task_filter.created_after, task_filter.created_before),
        ("finish_time", task_filter.finished_after, task_filter.finished_before),
    )
    for name, after, before in windows:
        if after is not None and before is not None and after >= before:
            raise InvalidArgument(f"filter.{name}_before", f"must be after {name}_after")
    return task_filter
